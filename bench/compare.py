"""make bench-compare COMMITS="c0fa469 71e4f70": main.py as it was at other commits, served beside
today's and the floors and measured as bench.py measures (rounds, each server in turn), to find
which commit moved a ratio.

Each commit is checked out into a temporary git worktree (its own model.pkl, model.json and
modules), served from the same venv as today's code, and removed afterwards. Prints each
version's warm and batch ratios against the floors, medians of the rounds' ratios.
"""

import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import bench
from servers import ROOT, SINGLE


def worktree(commit, folder):
    """main.py of `commit`, checked out into `folder`."""
    done = subprocess.run(["git", "worktree", "add", "--detach", str(folder), commit], cwd=ROOT,
                          capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench-compare: can't check out {commit}: {done.stderr.strip()}")
    return folder / "main.py"


def median(runs, *path):
    """A figure's median across the rounds: median(runs, "c1", "requests_per_s")."""
    return statistics.median(bench.per_round(runs, *path))


def cell(ours, floor, *path):
    """A figure's median across the rounds, and the median of its ratios to the floor's."""
    ratio = bench.median_ratio(bench.per_round(ours, *path), bench.per_round(floor, *path))
    return f"{median(ours, *path):,.0f} ({ratio:.2f}x)"


def main():
    commits = os.environ.get("COMMITS", "").split()
    if not commits:
        sys.exit('name the commits to compare: make bench-compare COMMITS="abc1234 def5678"')
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as temporary:
        sources = {"HEAD": bench.MAIN}
        try:
            for commit in commits:
                sources[commit] = worktree(commit, Path(temporary) / commit)
            names = {source: name for name, source in sources.items()}

            def label(source):  # every version's source is a main.py: told apart by commit; the floors by name
                return names.get(source, source.stem)

            print(f"bench-compare: {', '.join(sources)}; {bench.ROUNDS} rounds of {bench.SECONDS} s wrk runs", flush=True)
            warm = bench.in_turns([bench.FLOOR, *sources.values()], SINGLE, bench.warm, label)
            batch = bench.in_turns([bench.PARSE_FLOOR, *sources.values()], bench.BATCH, bench.batch, label)
        finally:
            for commit in commits:
                subprocess.run(["git", "worktree", "remove", "--force", str(Path(temporary) / commit)], cwd=ROOT,
                               capture_output=True)
            subprocess.run(["git", "worktree", "prune"], cwd=ROOT, capture_output=True)
    print("\n| main.py at | warm requests/s, 1 conn. | warm requests/s, 8 conn. | 1000-row batches, rows/s |")
    print("| --- | --- | --- | --- |")
    for name in sources:
        print(f"| {name} | {cell(warm[name], warm['floor'], 'c1', 'requests_per_s')} | "
              f"{cell(warm[name], warm['floor'], 'c8', 'requests_per_s')} | "
              f"{cell(batch[name], batch['parse_floor'], 'rows_per_s')} |")
    print(f"\nfloors: warm {median(warm['floor'], 'c1', 'requests_per_s'):,.0f} and "
          f"{median(warm['floor'], 'c8', 'requests_per_s'):,.0f} requests/s; batches "
          f"{median(batch['parse_floor'], 'rows_per_s'):,.0f} rows/s")


if __name__ == "__main__":
    main()
