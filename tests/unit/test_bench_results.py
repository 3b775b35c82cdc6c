"""Benchmark results are dated JSON files in bench/results/, one name per run, never overwritten."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from bench.run import Alternation, dated_path
from bench.wrk import WrkResult

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})-([a-z]+)(?:-(\d+))?\.json$")


def test_a_run_gets_the_first_free_name_of_its_day(tmp_path: Path) -> None:
    started = datetime(2026, 11, 25, 23, 59, tzinfo=UTC)
    first = dated_path(tmp_path / "results", "marketplace", started)
    assert first.name == "2026-11-25-marketplace.json"
    first.write_text("{}")
    second = dated_path(tmp_path / "results", "marketplace", started)
    assert second.name == "2026-11-25-marketplace-2.json"
    second.write_text("{}")
    assert dated_path(tmp_path / "results", "marketplace", started).name == "2026-11-25-marketplace-3.json"
    assert dated_path(tmp_path / "results", "regions", started).name == "2026-11-25-regions.json"


def test_kept_results_are_dated_json_that_says_when_and_on_what() -> None:
    files = sorted(RESULTS.glob("*"))
    assert files, "bench/results/ holds the measured figures docs/performance.md reports"
    for path in files:
        named = NAME.match(path.name)
        assert named, f"{path.name}: not <YYYY-MM-DD>-<name>[-N].json"
        record = json.loads(path.read_text(encoding="utf-8"))
        when = record.get("date") or record["started_at"][:10]
        assert when == named.group(1), path.name
        assert record["machine"]["nproc"], path.name


def run(rps: float) -> WrkResult:
    return WrkResult("http://127.0.0.1/", int(rps), 1.0, rps, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_each_round_is_against_the_baseline_runs_either_side_and_the_median_round_is_the_ratio() -> None:
    alternation = Alternation([run(100), run(120), run(80), run(100)], [run(55), run(99), run(72)])
    assert alternation.ratios == [0.5, 0.99, 0.8]
    assert alternation.ratio == 0.8  # one round disturbed either way does not move it
    assert alternation.median_app().rps == 72
    assert alternation.spread == (120 - 80) / 100
    assert alternation.rounds_note() == "rounds 0.50, 0.99, 0.80"
