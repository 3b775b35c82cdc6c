"""How many processes `megilance serve` starts: WORKERS (or --workers) on a primary, one where only one can serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import load_settings
from ops.cli import worker_count

SECRET = "s" * 40


def test_a_primary_starts_what_it_is_asked_for(tmp_path: Path) -> None:
    settings = load_settings(DATA_DIR=tmp_path, SECRET_KEY=SECRET, WORKERS=3)
    assert settings.workers == 3
    assert worker_count(settings, None) == 3
    assert worker_count(settings, 2) == 2  # --workers wins over WORKERS


def test_the_default_is_the_cpu_count_at_most_eight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORKERS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 32)
    assert load_settings(DATA_DIR=tmp_path, SECRET_KEY=SECRET).workers == 8
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert load_settings(DATA_DIR=tmp_path, SECRET_KEY=SECRET).workers == 2


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"REGION": "syd", "PRIMARY_REGION": "iad"}, "an edge applies its primary's feed in one process"),
        ({"DATABASE_URL": "http://127.0.0.1:9"}, "a primary whose log is on a libSQL server runs one process"),
    ],
)
def test_an_edge_or_a_remote_primary_runs_one_process_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, str], reason: str
) -> None:
    settings = load_settings(DATA_DIR=tmp_path, SECRET_KEY=SECRET, **overrides)
    assert worker_count(settings, 4) == 1
    assert capsys.readouterr().err.strip() == f"megilance serve: one worker, not 4: {reason}"
