"""Run wrk against 127.0.0.1 with a Lua script whose `done()` prints a JSON summary."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

MARKER = "BENCH_JSON "

# Counts non-2xx responses itself (wrk's own `errors.status` only counts status > 399).
LUA_TEMPLATE = """
wrk.method = {method}
wrk.body = {body}
{headers}
local threads = {{}}
function setup(thread)
  table.insert(threads, thread)
end
function init(args)
  non2xx = 0
end
function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads) do
    bad = bad + (t:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '{marker}{{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"non2xx":%d}}\\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status, e.timeout, bad))
end
"""


@dataclass
class WrkResult:
    url: str
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ensure_wrk() -> str:
    """Path to wrk, installing the Debian package if it is missing."""
    path = shutil.which("wrk")
    if path is None:
        subprocess.run(["apt-get", "update"], check=True, timeout=300, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, timeout=300, stdout=subprocess.DEVNULL)
        path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return path


def wrk_version() -> str:
    out = subprocess.run([ensure_wrk(), "-v"], check=False, capture_output=True, text=True, timeout=10)
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "?"


def lua_string(value: str | None) -> str:
    """A Lua string literal (or nil) for any text."""
    if value is None:
        return "nil"
    out = []
    for ch in value:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= code < 127:
            out.append(ch)
        else:
            out.extend(f"\\{byte}" for byte in ch.encode())
    return '"' + "".join(out) + '"'


def lua_script(
    method: str = "GET", body: str | None = None, headers: dict[str, str] | None = None, extra_lua: str = ""
) -> str:
    """The summary script; `extra_lua` is appended (e.g. a `request()` that varies each request)."""
    lines = [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in (headers or {}).items()]
    script = LUA_TEMPLATE.format(
        method=lua_string(method), body=lua_string(body), headers="\n".join(lines), marker=MARKER
    )
    return script + ("\n" + extra_lua if extra_lua else "")


def run_wrk(
    url: str,
    *,
    duration_s: int = 10,
    connections: int = 32,
    threads: int = 1,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: int = 2,
    extra_lua: str = "",
) -> WrkResult:
    """One wrk run; raises if wrk fails or prints no summary. Only 127.0.0.1 is allowed."""
    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"benchmarks only target 127.0.0.1, not {url}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(lua_script(method, body, headers, extra_lua))
        script = fh.name
    cmd = [
        ensure_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        f"--timeout={timeout_s}s",
        "-s",
        script,
        url,
    ]
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=duration_s + 30)
    finally:
        os.unlink(script)
    summary = next((line[len(MARKER) :] for line in proc.stdout.splitlines() if line.startswith(MARKER)), None)
    if proc.returncode != 0 or summary is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    data = json.loads(summary)
    duration = data["duration_us"] / 1e6
    return WrkResult(
        url=url,
        requests=data["requests"],
        duration_s=round(duration, 3),
        rps=data["requests"] / duration if duration else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors={
            "connect": data["connect"],
            "read": data["read"],
            "write": data["write"],
            "non2xx": data["non2xx"],
            "timeout": data["timeout"],
        },
    )
