"""make bench: this project's main.py against its floors, side by side, in one run.

Servers run as production runs them (functions-framework without --debug: gunicorn, its
defaults) on 127.0.0.1, from a venv built from requirements.txt alone. Load comes from wrk.

  floor        functions-framework + joblib.load(model.pkl), answering a constant
  parse floor  parses a batch's JSON and encodes an answer of the same size, no model
  tutorial     the original tutorial's design: unpickle per request, pandas DataFrame, predict
               (runs in .venv, since it needs pandas)

Prints a table of each figure as a ratio to its floor, with the targets, and writes the raw
figures to bench/results/bench.json. BENCH_SECONDS sets each load run's length (default 5),
BENCH_ROUNDS the rounds (default 3).
"""

import datetime
import json
import os
import platform
import statistics
import sys
from importlib.metadata import version

import numpy as np

from serving import DEV_VENV, RESULTS, ROOT, SERVE_VENV, TUTORIAL_ROW, Server, wrk

SECONDS = int(os.environ.get("BENCH_SECONDS", 5))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
COLD_RUNS = 5
SINGLE = json.dumps(TUTORIAL_ROW).encode()
rows = np.random.default_rng(0).uniform([4, 2, 1, 0], [8, 4.5, 7, 2.6], size=(1000, 4)).round(1)
BATCH = json.dumps({"instances": [dict(zip(TUTORIAL_ROW, row)) for row in rows.tolist()]}).encode()

MAIN = ROOT / "main.py"
FLOOR = ROOT / "bench" / "functions" / "floor.py"
PARSE_FLOOR = ROOT / "bench" / "functions" / "parse_floor.py"
TUTORIAL = ROOT / "bench" / "functions" / "tutorial.py"
VENVS = {MAIN: SERVE_VENV, FLOOR: SERVE_VENV, PARSE_FLOOR: SERVE_VENV, TUTORIAL: DEV_VENV}


def cold_starts():
    """Seconds from process start to first answer, median of COLD_RUNS, taken in turns."""
    times = {source: [] for source in (MAIN, FLOOR, TUTORIAL)}
    for _ in range(COLD_RUNS):
        for source in times:
            with Server(source, VENVS[source]) as server:
                times[source].append(server.start(SINGLE))
    return {source.stem: statistics.median(values) for source, values in times.items()}


def median_figures(runs):
    """Figure by figure, the median over rounds."""
    if isinstance(runs[0], dict):
        return {key: median_figures([run[key] for run in runs]) for key in runs[0]}
    return statistics.median(runs)


def warm(source):
    with Server(source, VENVS[source]) as server:
        server.start(SINGLE)
        wrk(server.url, SINGLE, 8, 2)  # warm-up
        figures = {f"c{connections}": wrk(server.url, SINGLE, connections, SECONDS) for connections in (1, 8)}
        figures["rss_mib"] = server.worker_rss_mib()
    return figures


def batch(source):
    with Server(source, VENVS[source]) as server:
        server.start(BATCH)
        wrk(server.url, BATCH, 1, 2)
        figures = wrk(server.url, BATCH, 1, SECONDS)
    figures["rows_per_s"] = figures["requests_per_s"] * 1000
    return figures


def in_turns(measure, sources):
    """ROUNDS rounds, each source in turn within a round, so that the machine's drift over
    the run falls on all of them alike; the median of each figure."""
    runs = {source: [] for source in sources}
    for _ in range(ROUNDS):
        for source in sources:
            runs[source].append(measure(source))
    return {source.stem: median_figures(values) for source, values in runs.items()}


def row(name, ours, floor, target=None, higher_is_better=True, unit=""):
    ratio = ours / floor
    verdict = ""
    if target is not None:
        met = ratio >= target if higher_is_better else ratio <= target
        verdict = f"{'>=' if higher_is_better else '<='} {target:.2f}x  {'met' if met else 'MISSED'}"
    return f"| {name} | {ours:,.{3 if ours < 10 else 0}f}{unit} | {floor:,.{3 if floor < 10 else 0}f}{unit} | {ratio:.2f}x | {verdict} |"


def main():
    print(f"bench: {ROUNDS} rounds of {SECONDS} s load runs (medians), {COLD_RUNS} cold starts each (median); "
          "servers on 127.0.0.1", flush=True)
    cold = cold_starts()
    print("cold starts done", flush=True)
    warm_figures = in_turns(warm, (MAIN, FLOOR, TUTORIAL))
    print("warm runs done", flush=True)
    batch_figures = in_turns(batch, (MAIN, PARSE_FLOOR))
    main_, floor, tutorial = (warm_figures[name] for name in ("main", "floor", "tutorial"))

    machine = (f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
               f"Python {platform.python_version()}, functions-framework {version('functions-framework')}")
    lines = [
        f"{datetime.date.today().isoformat()}, {machine}",
        "",
        "| figure | main.py | floor | ratio | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    for connections in (1, 8):
        c = f"c{connections}"
        lines.append(row(f"warm requests/s, {connections} conn.", main_[c]["requests_per_s"], floor[c]["requests_per_s"], 0.90))
        lines.append(row(f"p50 latency, {connections} conn.", main_[c]["p50_ms"], floor[c]["p50_ms"], unit=" ms"))
        lines.append(row(f"p99 latency, {connections} conn.", main_[c]["p99_ms"], floor[c]["p99_ms"], unit=" ms"))
    lines.append(row("cold start (to first answer)", cold["main"], cold["floor"], 1.10, False, " s"))
    lines.append(row("1000-row batches, rows/s (floor: parse+encode)", batch_figures["main"]["rows_per_s"],
                     batch_figures["parse_floor"]["rows_per_s"], 0.80))
    lines.append(row("worker memory after warm-up", main_["rss_mib"], floor["rss_mib"], 1.10, False, " MiB"))
    lines += [
        "",
        "| against the tutorial's design | main.py | tutorial | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        row("warm requests/s, 1 conn.", main_["c1"]["requests_per_s"], tutorial["c1"]["requests_per_s"]),
        row("warm requests/s, 8 conn.", main_["c8"]["requests_per_s"], tutorial["c8"]["requests_per_s"]),
        row("cold start (to first answer)", cold["main"], cold["tutorial"], 0.60, False, " s"),
        f"| tutorial vs floor, warm requests/s, 1 conn. | | | {tutorial['c1']['requests_per_s'] / floor['c1']['requests_per_s']:.2f}x | |",
    ]
    errors = sum(figures[c]["errors"] for figures in warm_figures.values() for c in ("c1", "c8"))
    errors += sum(figures["errors"] for figures in batch_figures.values())  # medians: >0 means most rounds had some
    lines.append(f"\nnon-2xx answers and socket errors during load: {errors}")
    print("\n".join(lines))

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine, "seconds_per_run": SECONDS, "cold_start_s": cold,
        "warm": warm_figures, "batch_1000_rows": batch_figures,
    }, indent=2))
    print(f"raw figures: {RESULTS / 'bench.json'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
