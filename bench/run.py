"""`python -m bench`: run every scenario, print the table, write the JSON report.

python -m bench                 # everything, full iteration counts (a few minutes on 2 cores)
python -m bench --quick         # fewer iterations and a 5 s load test (about a minute)
python -m bench --only P1,P3    # some scenarios
python -m bench --scale 2       # twice the iterations
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.core import Row, Settings, Skip, report, skipped, table_lines, write_json

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few iterations, short load test")
    parser.add_argument("--scale", type=float, default=None, help="multiply iteration counts (default 1)")
    parser.add_argument("--only", default="", help="comma-separated scenario ids, e.g. P1,P3")
    parser.add_argument("--load-seconds", type=float, default=None, help="P8 duration (default 20, quick 5)")
    parser.add_argument(
        "--json", type=Path, default=DEFAULT_OUTPUT, help=f"report path (default {DEFAULT_OUTPUT})"
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    scale = args.scale if args.scale is not None else (0.2 if args.quick else 1.0)
    load = args.load_seconds if args.load_seconds is not None else (5.0 if args.quick else 20.0)
    return Settings(scale=scale, quick=args.quick, load_seconds=load)


def run_scenario(scenario_id: str, title: str, function: Any, settings: Settings) -> list[Row]:
    """Run one scenario; a `Skip` becomes one skipped row, a crash one failed row (the run goes on)."""
    try:
        return list(function(settings))
    except Skip as reason:
        return [skipped(scenario_id, title, str(reason))]
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        return [
            Row(id=scenario_id, name=title, status="fail", note=f"error: {type(error).__name__}: {error}")
        ]


def strategies_rows(settings: Settings) -> list[Row]:
    """`bench/bench_strategies.py` (the Hypothesis strategies' generation speed), when it exists: its
    `run()` returns rows (ours, or dicts with the same keys), or anything else, shown as an info row."""
    if importlib.util.find_spec("bench.bench_strategies") is None:
        return []
    module = importlib.import_module("bench.bench_strategies")
    run = module.run
    accepted = inspect.signature(run).parameters
    kwargs: dict[str, Any] = {}
    if "settings" in accepted:
        kwargs["settings"] = settings
    if "quick" in accepted:
        kwargs["quick"] = settings.quick
    result = run(**kwargs)
    items = result if isinstance(result, list | tuple) else [result]
    rows: list[Row] = []
    for item in items:
        if isinstance(item, Row):
            rows.append(item)
        elif isinstance(item, dict) and {"id", "name", "status"} <= item.keys():
            known = {k: v for k, v in item.items() if k in Row.__dataclass_fields__}
            rows.append(Row(**known))
        elif isinstance(item, dict):
            # a dict of rates: one info row per `<what>_per_second`, the rest as a note
            rates = {
                k: v for k, v in item.items() if k.endswith("_per_second") and isinstance(v, int | float)
            }
            rest = ", ".join(f"{k}={v}" for k, v in item.items() if k not in rates)
            for key, value in rates.items():
                name = "strategies: " + key.removesuffix("_per_second").replace("_", " ")
                rows.append(
                    Row(id="S", name=name, status="info", unit="ex/s", median=float(value), note=rest)
                )
        elif item is not None:
            rows.append(Row(id="S", name="hypothesis strategies", status="info", note=str(item)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    from bench.scenarios import SCENARIOS

    args = parse_args(argv)
    settings = settings_from(args)
    wanted = {part.strip().upper() for part in args.only.split(",") if part.strip()}
    started = time.time()
    rows: list[Row] = []
    for scenario in SCENARIOS:
        if wanted and scenario.id not in wanted:
            continue
        print(
            f"[{time.time() - started:6.1f}s] {scenario.id} {scenario.title} ...", file=sys.stderr, flush=True
        )
        rows.extend(run_scenario(scenario.id, scenario.title, scenario.run, settings))
    if not wanted or "S" in wanted:
        print(f"[{time.time() - started:6.1f}s] S hypothesis strategies ...", file=sys.stderr, flush=True)
        rows.extend(run_scenario("S", "hypothesis strategies", strategies_rows, settings))
    print("\n".join(table_lines(rows)))
    data = report(rows, settings, started)
    write_json(data, args.json)
    summary = data["summary"]
    print(
        f"\n{summary['pass']} passed, {summary['fail']} failed, {summary['skip']} skipped, "
        f"{summary['info']} info in {data['duration_s']:.0f} s; report: {args.json}"
    )
    return 1 if summary["fail"] else 0


if __name__ == "__main__":
    sys.exit(main())
