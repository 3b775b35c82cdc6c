"""The installed package's version, as the API reports it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def app_version() -> str:
    try:
        return version("megilance")
    except PackageNotFoundError:
        return "0.0.0"
