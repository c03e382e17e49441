"""The benchmark runner's plumbing on a trivial scenario: rows, table, JSON, skips and crashes.

No timing assertions: only that the runner measures, computes ratios and reports what it measured.
"""

from __future__ import annotations

import json

import pytest

import bench.scenarios
from bench.core import Row, Settings, Skip, Stats, percentile, ratio_row, table_lines, time_interleaved
from bench.run import main, run_scenario


def test_percentiles_interpolate_between_ranks():
    data = [float(x) for x in range(1, 11)]
    stats = Stats.of(data)
    assert stats.n == 10
    assert stats.median == 5.5
    assert stats.p90 == pytest.approx(9.1)
    assert percentile([3.0], 99) == 3.0
    with pytest.raises(ValueError):
        Stats.of([])


def test_interleaved_timing_calls_every_side_n_times_in_rotating_blocks():
    order: list[str] = []
    samples = time_interleaved(lambda: order.append("a"), lambda: order.append("b"), n=7, warmup=1, block=3)
    assert [len(s) for s in samples] == [7, 7]
    assert all(x >= 0 for s in samples for x in s)
    timed = order[2:]  # after one warm-up call of each
    # blocks of 3, 3, then 1; the side that goes first alternates each round
    assert timed == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3 + ["a"] + ["b"]


def trivial_scenario(settings: Settings) -> list[Row]:
    fast, slow = time_interleaved(lambda: None, lambda: sum(range(200)), n=settings.n(20), warmup=1)
    return [ratio_row("T1", "trivial", fast, slow, "sum of a range", limit=1e9, note="smoke")]


def test_a_trivial_scenario_becomes_a_judged_row_and_a_table_line():
    rows = run_scenario("T1", "trivial", trivial_scenario, Settings(scale=0.2))
    assert len(rows) == 1
    row = rows[0]
    assert row.status == "pass" and row.passed is True
    assert row.n == 4
    assert row.ratio == pytest.approx(row.median / row.baseline)
    lines = table_lines(rows)
    assert lines[0].split() == ["scenario", "median", "p90", "baseline", "ratio", "target", "result"]
    assert "T1 trivial" in lines[2] and "PASS" in lines[2] and "(sum of a range)" in lines[2]
    assert lines[3].strip() == "smoke"


def test_a_missing_prerequisite_is_one_skipped_row_and_a_crash_one_failed_row():
    def needs_docker(settings: Settings) -> list[Row]:
        raise Skip("no Docker engine answers")

    def broken(settings: Settings) -> list[Row]:
        raise RuntimeError("boom")

    (skip,) = run_scenario("P4", "docker", needs_docker, Settings())
    assert skip.status == "skip" and skip.passed is None
    assert skip.note == "skipped: no Docker engine answers"
    assert "skip" in table_lines([skip])[2]
    (fail,) = run_scenario("PX", "broken", broken, Settings())
    assert fail.status == "fail" and fail.note == "error: RuntimeError: boom"


def test_the_command_prints_the_table_and_writes_the_json_report(tmp_path, monkeypatch, capsys):
    scenarios = (
        bench.scenarios.Scenario("T1", "trivial", trivial_scenario),
        bench.scenarios.Scenario("T2", "needs a feature", lambda s: (_ for _ in ()).throw(Skip("not built"))),
    )
    monkeypatch.setattr(bench.scenarios, "SCENARIOS", scenarios)
    out = tmp_path / "results" / "latest.json"
    assert main(["--quick", "--only", "T1,T2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "T1 trivial" in printed and "skipped: not built" in printed
    assert "1 passed, 0 failed, 1 skipped" in printed
    data = json.loads(out.read_text())
    assert data["summary"] == {"pass": 1, "fail": 0, "skip": 1, "info": 0}
    assert data["settings"]["quick"] is True
    first, second = data["rows"]
    assert first["id"] == "T1" and first["passed"] is True and first["ratio"] > 0
    assert first["extra"]["subject"]["n"] == first["n"]
    assert second["status"] == "skip" and second["passed"] is None


def test_a_failed_row_makes_the_command_exit_non_zero(tmp_path, monkeypatch):
    def failing(settings: Settings) -> list[Row]:
        return [Row(id="T3", name="over target", status="fail", median=2.0, target="<= 1 ms")]

    monkeypatch.setattr(bench.scenarios, "SCENARIOS", (bench.scenarios.Scenario("T3", "x", failing),))
    assert main(["--only", "T3", "--json", str(tmp_path / "r.json")]) == 1


def test_the_strategies_benchmark_rates_become_info_rows(monkeypatch):
    import types

    import bench.run as runner

    calls = []

    def run(quick=False):
        calls.append(quick)
        return {"messages_per_second": 120.5, "raw_stream_per_second": 40.0, "examples": 60}

    fake = types.SimpleNamespace(run=run)
    monkeypatch.setattr(runner.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(runner.importlib, "import_module", lambda name: fake)
    rows = runner.strategies_rows(Settings(quick=True))
    assert calls == [True]
    assert [(r.name, r.median, r.unit, r.status) for r in rows] == [
        ("strategies: messages", 120.5, "ex/s", "info"),
        ("strategies: raw stream", 40.0, "ex/s", "info"),
    ]
    assert rows[0].note == "examples=60"
