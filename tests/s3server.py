"""A real S3 API over HTTP for tests: moto in server mode on 127.0.0.1, one per test session.

Use it from a test module with `from tests.s3server import s3_endpoint  # noqa: F401`.
Credentials are fake and passed to the boto3 client explicitly; os.environ is never touched.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.config import Config  # type: ignore[import-untyped]
from moto.server import ThreadedMotoServer

FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"  # a placeholder moto accepts, not a secret
REGION = "us-east-1"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on a kernel-chosen free port of 127.0.0.1; yield its base URL."""
    # port=0: the kernel picks the port at bind time, so there is no probe-then-bind race. (If the bind
    # failed, ThreadedMotoServer.start() would wait forever on its ready event.)
    access_log = logging.getLogger("werkzeug")  # moto logs every request at INFO; keep failure output readable
    previous_level = access_log.level
    access_log.setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        access_log.setLevel(previous_level)


@functools.lru_cache(maxsize=16)
def s3_client(endpoint_url: str, *, max_attempts: int = 3, connect_timeout: float = 5) -> Any:
    """A boto3 S3 client for `endpoint_url` with fake credentials (nothing read from the environment).

    Cached: building a client loads the service model (~0.2 s), and boto3 clients are thread-safe."""
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=30,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY_ID,
        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
        aws_session_token=None,
        config=config,
    )


def create_bucket(endpoint_url: str, name: str | None = None) -> tuple[Any, str]:
    """Create a fresh bucket (unique name unless given) on the server; return (client, bucket name)."""
    client = s3_client(endpoint_url)
    bucket = name or f"test-{uuid.uuid4().hex}"
    client.create_bucket(Bucket=bucket)  # us-east-1 takes no LocationConstraint
    return client, bucket
