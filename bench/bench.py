"""make bench: this project's main.py against its floors, side by side, in one run.

Servers run as production runs them (functions-framework without --debug: gunicorn, its
defaults) on 127.0.0.1, from a venv built from requirements.txt alone. Load comes from wrk.

  floor        functions-framework + joblib.load(model.pkl), answering a constant
  parse floor  parses a batch's JSON and encodes an answer of the same size, no model
  tutorial     the original tutorial's design: unpickle per request, pandas DataFrame, predict
               (runs in .venv, since it needs pandas)

This machine's speed drifts by 10% and more over minutes, so figures are taken in rounds,
each function in turn within a round: for load, all servers run side by side and take turns
at short wrk runs (a turn starts once the last server has finished what wrk left in flight,
and each round starts with the next function); for cold starts and memory, each function is
started alone, in turn.
Memory is the instance's: gunicorn's master and worker, their proportional set sizes summed,
after load. With each warm run, the worker's CPU time per request is read from /proc: the
function's own cost, on top of the framework's, without the load generator's share of the
machine. A ratio is the median of the rounds' ratios, each between figures taken seconds apart,
so that drift falls on both sides alike. Prints a table (medians, and those ratios) with the targets, and writes every
round's figures to bench/results/bench.json. BENCH_ROUNDS sets the load rounds (default 15),
BENCH_SECONDS each wrk run's length (default 1).
"""

import contextlib
import datetime
import json
import os
import platform
import statistics
import sys
from importlib.metadata import version

import numpy as np

from servers import DEV_VENV, RESULTS, ROOT, SERVE_VENV, SINGLE, TUTORIAL_ROW, start, wrk

SECONDS = int(os.environ.get("BENCH_SECONDS", 1))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 15))
COLD_STARTS = 5
MEMORY_TURNS = 3
rows = np.random.default_rng(0).uniform([4, 2, 1, 0], [8, 4.5, 7, 2.6], size=(1000, 4)).round(1)
BATCH = json.dumps({"instances": [dict(zip(TUTORIAL_ROW, row)) for row in rows.tolist()]}).encode()

MAIN = ROOT / "main.py"
FLOOR = ROOT / "bench" / "functions" / "floor.py"
PARSE_FLOOR = ROOT / "bench" / "functions" / "parse_floor.py"
TUTORIAL = ROOT / "bench" / "functions" / "tutorial.py"
# The floor and the tutorial need joblib and scikit-learn, which a bundle served as data does not install.
VENVS = {MAIN: SERVE_VENV, FLOOR: DEV_VENV, PARSE_FLOOR: SERVE_VENV, TUTORIAL: DEV_VENV}


def cold_starts():
    """Seconds from process start to the first answer, each source in turn, COLD_STARTS times."""
    times = {source: [] for source in (MAIN, FLOOR, TUTORIAL)}
    for _ in range(COLD_STARTS):
        for source in times:
            server, seconds = start(source, SINGLE, VENVS[source])
            server.stop()
            times[source].append(seconds)
    return {source.stem: values for source, values in times.items()}


def start_warm(source, body):
    """A started server, loaded for 2 s, so that what is measured next is the function as it
    serves from then on."""
    server, _ = start(source, body, VENVS.get(source, SERVE_VENV))
    wrk(server.url, body, 8, 2)
    return server


def in_turns(sources, body, measure, label=lambda source: source.stem):
    """Every source served at once; ROUNDS rounds, each source measured in turn within a
    round by `measure(server)`. Returns every round's figures, by `label(source)`. A turn starts
    once the last one's server is idle, and each round starts with the next source, so that no
    source always follows the same one."""
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(start_warm(source, body)) for source in sources]
        runs = {label(source): [] for source in sources}
        for round_number in range(ROUNDS):
            first = round_number % len(servers)
            for server in servers[first:] + servers[:first]:
                runs[label(server.source)].append(measure(server))
                server.wait_idle()
    return runs


def memory():
    """Memory after load, each function served alone (other servers would share its library
    pages, and so its proportional set size), in turn, MEMORY_TURNS times."""
    figures = {source.stem: [] for source in (MAIN, FLOOR)}
    for _ in range(MEMORY_TURNS):
        for source in (MAIN, FLOOR):
            with start_warm(source, SINGLE) as server:
                wrk(server.url, SINGLE, 8, 2)  # load after the check, as the figures say
                figures[source.stem].append(
                    {"instance_pss": server.instance_pss_mib(), "worker_rss": server.worker_rss_mib()}
                )
    return figures


def warm(server):
    """Requests/s and latency, and the worker's CPU time per request: what the function costs
    on top of the framework, without the client's share of the machine."""
    figures = {}
    for connections in (1, 8):
        cpu_before = server.worker_cpu_seconds()
        figures[f"c{connections}"] = run = wrk(server.url, SINGLE, connections, SECONDS)
        run["cpu_us_per_request"] = (server.worker_cpu_seconds() - cpu_before) / run["requests"] * 1e6
    return figures


def batch(server):
    figures = wrk(server.url, BATCH, 1, SECONDS)
    figures["rows_per_s"] = figures["requests_per_s"] * 1000
    return figures


def per_round(runs, *keys):
    """One figure from each round: per_round(runs, "c1", "requests_per_s")."""
    values = []
    for run in runs:
        for key in keys:
            run = run[key]
        values.append(run)
    return values


def median_ratio(ours, floor):
    """The median of the rounds' ratios, each between figures taken in the same round."""
    return statistics.median(o / f for o, f in zip(ours, floor))


def row(name, ours, floor, target=None, higher_is_better=True, unit=""):
    """A table row from per-round figures: the medians, and the median of the rounds' ratios."""
    ratio = median_ratio(ours, floor)
    ours, floor = statistics.median(ours), statistics.median(floor)
    verdict = ""
    if target is not None:
        met = ratio >= target if higher_is_better else ratio <= target
        verdict = f"{'>=' if higher_is_better else '<='} {target:.2f}x  {'met' if met else 'MISSED'}"
    return f"| {name} | {ours:,.{3 if ours < 10 else 0}f}{unit} | {floor:,.{3 if floor < 10 else 0}f}{unit} | {ratio:.2f}x | {verdict} |"


def main():
    print(f"bench: {COLD_STARTS} cold starts of each function, then {ROUNDS} rounds of {SECONDS} s wrk runs "
          "at each server in turn; servers on 127.0.0.1", flush=True)
    cold = cold_starts()
    print("cold starts done", flush=True)
    memory_figures = memory()
    print("memory done", flush=True)
    warm_figures = in_turns((MAIN, FLOOR, TUTORIAL), SINGLE, warm)
    print("warm runs done", flush=True)
    batch_figures = in_turns((MAIN, PARSE_FLOOR), BATCH, batch)
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
        lines.append(row(f"warm requests/s, {connections} conn.", per_round(main_, c, "requests_per_s"),
                         per_round(floor, c, "requests_per_s"), 0.75))
        lines.append(row(f"p50 latency, {connections} conn.", per_round(main_, c, "p50_ms"), per_round(floor, c, "p50_ms"), unit=" ms"))
        lines.append(row(f"p99 latency, {connections} conn.", per_round(main_, c, "p99_ms"), per_round(floor, c, "p99_ms"), unit=" ms"))
        lines.append(row(f"worker CPU per request, {connections} conn. (no target)", per_round(main_, c, "cpu_us_per_request"),
                         per_round(floor, c, "cpu_us_per_request"), unit=" us"))
    lines.append(row("cold start (to first answer)", cold["main"], cold["floor"], 1.10, False, " s"))
    lines.append(row("1000-row batches, rows/s (floor: parse+encode)", per_round(batch_figures["main"], "rows_per_s"),
                     per_round(batch_figures["parse_floor"], "rows_per_s"), 0.80))
    lines.append(row("instance memory after load (PSS, master + worker)", per_round(memory_figures["main"], "instance_pss"),
                     per_round(memory_figures["floor"], "instance_pss"), 1.10, False, " MiB"))
    lines.append(row("worker RSS after load (no target)", per_round(memory_figures["main"], "worker_rss"),
                     per_round(memory_figures["floor"], "worker_rss"), unit=" MiB"))
    tutorial_c1 = per_round(tutorial, "c1", "requests_per_s")
    lines += [
        "",
        "| against the tutorial's design | main.py | tutorial | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        row("warm requests/s, 1 conn.", per_round(main_, "c1", "requests_per_s"), tutorial_c1),
        row("warm requests/s, 8 conn.", per_round(main_, "c8", "requests_per_s"), per_round(tutorial, "c8", "requests_per_s")),
        row("cold start (to first answer)", cold["main"], cold["tutorial"], 0.60, False, " s"),
        f"| tutorial vs floor, warm requests/s, 1 conn. | | | "
        f"{median_ratio(tutorial_c1, per_round(floor, 'c1', 'requests_per_s')):.2f}x | |",
    ]
    errors = sum(run[c]["errors"] for runs in warm_figures.values() for run in runs for c in ("c1", "c8"))
    errors += sum(run["errors"] for runs in batch_figures.values() for run in runs)
    lines.append(f"\nnon-2xx answers and socket errors during load: {errors}")
    print("\n".join(lines))

    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps({
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine, "seconds_per_run": SECONDS, "rounds": ROUNDS, "cold_start_s": cold,
        "memory_mib": memory_figures,
        "warm": warm_figures, "batch_1000_rows": batch_figures,
    }, indent=2))
    print(f"raw figures: {RESULTS / 'bench.json'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
