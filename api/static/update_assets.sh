#!/usr/bin/env bash
# Refresh the vendored docs assets from the npm registry (pinned versions), so the docs pages
# need no CDN. Run by hand when bumping a version; the files are committed.
set -euo pipefail
SWAGGER_UI=5.35.0
REDOC=2.5.4
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "swagger-ui-dist@$SWAGGER_UI" "redoc@$REDOC" >/dev/null
mkdir -p swagger redoc "$here/swagger-ui" "$here/redoc"
tar -xzf "swagger-ui-dist-$SWAGGER_UI.tgz" -C swagger
tar -xzf "redoc-$REDOC.tgz" -C redoc
cp swagger/package/swagger-ui-bundle.js swagger/package/swagger-ui.css swagger/package/LICENSE "$here/swagger-ui/"
cp redoc/package/bundles/redoc.standalone.js redoc/package/LICENSE "$here/redoc/"
printf 'swagger-ui-dist %s\nredoc %s\n' "$SWAGGER_UI" "$REDOC" > "$here/VERSIONS"
