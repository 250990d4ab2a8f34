"""make bench-tiers: each function started as Cloud Functions' tiers start it, with their CPU and
memory, for every kind of model the bundle serves.

A Cloud Functions instance is small: 128 MiB comes with 0.083 of a vCPU, 256 MiB (the default)
with 0.167, 512 MiB with 0.333, 1 GiB with 0.583. Each server here is started inside a cgroup (v1) with that CPU quota
(a 100 ms period) and memory limit; it runs from a virtual environment built from the bundle's
requirements.txt alone. For each tier and model:

  ours        main.py serving the model's bundle
  load floor  functions-framework + joblib.load of the same model.pkl at import, answering a constant
  constant    functions-framework answering a constant, loading nothing (once per tier)

Time to first answer is the median of TIER_STARTS starts (default 5), each function in turn. From
one start of ours (and of the constant function), one request every 50 ms for the
TIER_LATENCY_SECONDS (30) after its first answer: median, p99 and maximum latency. The cgroup tells
the peak memory (page cache included, as the kernel counts it against the limit), how often usage
reached the limit (failcnt: the kernel had to reclaim or refuse memory) and whether it killed a
process. Models: iris; penguins as train.py fits them (text, gaps); a diabetes regression; and a
random forest on penguins fitted on a pandas DataFrame in a notebook, packaged with package.py.
Writes bench/results/tiers.json and prints a table with the targets.
"""

import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from servers import DEV_VENV, RESULTS, ROOT, SERVE_VENV, call, start

sys.path.insert(0, str(ROOT / "scripts"))
from localserver import copy_function_code  # noqa: E402

TIERS = [("128 MiB", 128, 0.083), ("256 MiB", 256, 0.167), ("512 MiB", 512, 0.333), ("1 GiB", 1024, 0.583)]
STARTS = int(os.environ.get("TIER_STARTS", 5))
LATENCY_SECONDS = int(os.environ.get("TIER_LATENCY_SECONDS", 30))
CGROUP = Path("/sys/fs/cgroup")
BUNDLES = RESULTS / "tiers"
FLOOR = ROOT / "bench" / "functions" / "floor.py"
CONSTANT = ROOT / "bench" / "functions" / "constant.py"


class Cgroup:
    """A cpu and a memory cgroup (v1) with a tier's quota and limit; a process is put in both
    before it execs (`enter`), so that all it starts is counted too."""

    def __init__(self, name, memory_mib, vcpu):
        self.cpu, self.memory = CGROUP / "cpu" / name, CGROUP / "memory" / name
        for group in (self.cpu, self.memory):
            group.mkdir(exist_ok=True)
        (self.cpu / "cpu.cfs_period_us").write_text("100000")
        (self.cpu / "cpu.cfs_quota_us").write_text(str(round(vcpu * 100000)))
        (self.memory / "memory.limit_in_bytes").write_text(str(memory_mib * 2**20))
        (self.memory / "memory.max_usage_in_bytes").write_text("0")  # writing resets the peak

    def enter(self):
        for group in (self.cpu, self.memory):
            (group / "tasks").write_text(str(os.getpid()))

    def figures(self):
        oom = dict(line.split() for line in (self.memory / "memory.oom_control").read_text().splitlines())
        return {"peak_mib": int((self.memory / "memory.max_usage_in_bytes").read_text()) / 2**20,
                "failcnt": int((self.memory / "memory.failcnt").read_text()),
                "oom_kills": int(oom.get("oom_kill", 0))}

    def remove(self):
        for group in (self.cpu, self.memory):
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except OSError:  # its last process is still exiting
                    time.sleep(0.1)


def cgroups_writable():
    try:
        probe = Cgroup(f"bench-probe-{os.getpid()}", 64, 1.0)
        probe.remove()
        return True
    except OSError as err:
        print(f"bench-tiers: cgroups can't be written here ({err}); no tier can be simulated, so none is measured")
        return False


def python(*args, **kwargs):
    return subprocess.run([str(DEV_VENV / "bin" / "python"), *map(str, args)], check=True, capture_output=True,
                          text=True, cwd=ROOT, **kwargs)


def bundles():
    """Each kind of model's bundle folder, made fresh: the served files, model.pkl and model.json."""
    shutil.rmtree(BUNDLES, ignore_errors=True)
    made = {}
    for name in ("iris", "penguins", "diabetes", "notebook-forest"):
        folder = BUNDLES / name
        folder.mkdir(parents=True)
        copy_function_code(ROOT, folder)
        made[name] = folder
    for served in ("model.pkl", "model.json"):
        shutil.copy(ROOT / served, made["iris"])
    python("-c", "import palmerpenguins, sys; palmerpenguins.load_penguins().to_csv(sys.argv[1], index=False)",
           BUNDLES / "penguins.csv")
    python("train.py", "--data", BUNDLES / "penguins.csv", "--target", "species", "--out", made["penguins"])
    python("-c", "import sys; from sklearn.datasets import load_diabetes; d = load_diabetes(as_frame=True); "
           "d.data.assign(progression=d.target).to_csv(sys.argv[1], index=False)", BUNDLES / "diabetes.csv")
    python("train.py", "--data", BUNDLES / "diabetes.csv", "--target", "progression", "--out", made["diabetes"])
    python("-c", NOTEBOOK_FOREST, BUNDLES / "penguins.csv", BUNDLES / "forest.pkl")
    python("package.py", BUNDLES / "forest.pkl", "--data", BUNDLES / "penguins.csv", "--target", "species",
           "--out", made["notebook-forest"])
    return made


# A notebook's random forest: penguins as pandas reads them, text one-hot encoded, gaps filled.
NOTEBOOK_FOREST = """
import sys, joblib, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
table = pd.read_csv(sys.argv[1])
X, y = table.drop(columns=["species"]), table["species"]
prep = ColumnTransformer([
    ("numbers", SimpleImputer(strategy="median"), ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]),
    ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), ["island", "sex"]),
])
pipe = Pipeline([("prep", prep), ("model", RandomForestClassifier(n_estimators=100, random_state=0))]).fit(X, y)
with open(sys.argv[2], "wb") as f:
    joblib.dump(pipe, f)
"""


def serving_venv(folder):
    """A virtual environment built from the bundle's requirements.txt alone, as Cloud Functions
    builds one: the project's serving venv when they are the same file, else one of its own."""
    requirements = (folder / "requirements.txt").read_text()
    if requirements == (ROOT / "requirements.txt").read_text():
        return SERVE_VENV
    venv = RESULTS / "venv-dataframe"
    if not (venv / "requirements.txt").is_file() or (venv / "requirements.txt").read_text() != requirements:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([venv / "bin" / "pip", "install", "--quiet", "-r", folder / "requirements.txt"], check=True)
        (venv / "requirements.txt").write_text(requirements)
    return venv


def latencies(url, body, seconds):
    """One request every 50 ms for `seconds`, each timed, milliseconds."""
    taken, began = [], time.perf_counter()
    for k in range(int(seconds / 0.05)):
        wait = began + k * 0.05 - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        sent = time.perf_counter()
        status, _, _ = call(url, body, timeout=30)
        taken.append((time.perf_counter() - sent) * 1000 if status == 200 else float("inf"))
    return taken


def one_start(source, body, venv, tier, env=None, latency=False):
    """A start inside a fresh cgroup: seconds to the first answer, the latency figures if asked,
    and the cgroup's memory figures; an instance the kernel killed is reported as such."""
    _, memory_mib, vcpu = tier
    group = Cgroup(f"bench-{os.getpid()}-{memory_mib}", memory_mib, vcpu)
    figures = {}
    try:
        # A tenth of a core imports scikit-learn in some 20 s: give a start three minutes.
        server, figures["first_answer_s"] = start(source, body, venv, env=env, preexec_fn=group.enter, timeout=180)
        with server:
            if latency:
                taken = sorted(latencies(server.url, body, LATENCY_SECONDS))
                figures["latency_ms"] = {"median": statistics.median(taken), "p99": taken[int(len(taken) * 0.99) - 1],
                                         "max": taken[-1]}
            figures["alive"] = server.process.poll() is None and call(server.url, body, timeout=30)[0] == 200
    except RuntimeError as err:
        figures.update(first_answer_s=None, alive=False, failure=str(err).splitlines()[0])
    finally:
        figures.update(group.figures())
        group.remove()
    return figures


def run():
    if not cgroups_writable():
        return None
    made = bundles()
    results = {}
    for tier in TIERS:
        label = tier[0]
        results[label] = {"constant": [one_start(CONSTANT, b"{}", SERVE_VENV, tier, latency=(i == 0)) for i in range(STARTS)]}
        for name, folder in made.items():
            body = json.dumps(json.loads((folder / "model.json").read_text())["example"]).encode()
            venv = serving_venv(folder)
            runs = {"ours": [], "load_floor": []}
            for i in range(STARTS):  # in turn, so that drift falls on both alike
                runs["ours"].append(one_start(folder / "main.py", body, venv, tier, latency=(i == 0)))
                runs["load_floor"].append(one_start(FLOOR, b"{}", venv, tier, env={"BENCH_BUNDLE": str(folder)},
                                                    latency=(i == 0)))
            results[label][name] = runs
            print(f"{label} {name} done", flush=True)
    return results


def median_first(runs):
    times = [run["first_answer_s"] for run in runs]
    return None if None in times else statistics.median(times)


def worst_memory(runs):
    return {"peak_mib": max(r["peak_mib"] for r in runs), "failcnt": max(r["failcnt"] for r in runs),
            "oom_kills": max(r["oom_kills"] for r in runs), "alive": all(r["alive"] for r in runs)}


def table(results):
    """The tier table: for each tier the constant function, then for each model ours and its
    import + load floor, each row with its figures and, for ours, the targets met or missed."""
    lines = ["| tier | function | first answer | ratio | target | latency p50 / p99 / max, first 30 s "
             "| peak memory | limit hit | verdict |", "| --- " * 9 + "|"]
    met_all = True
    for label, memory_mib, _ in TIERS:
        constant = median_first(results[label]["constant"])
        lines.append(row(label, "constant answer", results[label]["constant"], memory_mib))
        for name, runs in results[label].items():
            if name == "constant":
                continue
            ours, load = median_first(runs["ours"]), median_first(runs["load_floor"])
            # iris is held to the constant function (it never imports scikit-learn), every
            # other model to its own import + joblib.load, which it can't avoid.
            floor, target, floor_name = (constant, 1.5, "constant") if name == "iris" else (load, 1.15, "import + load")
            ratio = ours / floor if ours and floor else None
            checks = []
            if name != "iris" or label == "256 MiB":
                checks.append((f"first answer <= {target}x {floor_name}", ratio is not None and ratio <= target))
            if name == "iris" and label == "256 MiB":
                checks.append(("p99 <= 100 ms", runs["ours"][0].get("latency_ms", {}).get("p99", float("inf")) <= 100))
            checks.append(("memory under the limit", not limit_hit(runs["ours"])))
            checks.append(("answered to the end", worst_memory(runs["ours"])["alive"]))
            met_all &= all(ok for _, ok in checks)
            verdict = "; ".join(f"{what} {'met' if ok else 'MISSED'}" for what, ok in checks)
            lines.append(row(label, f"{name}: ours", runs["ours"], memory_mib,
                             f"{ratio:.2f}x {floor_name}" if ratio else "-", f"{target}x", verdict))
            lines.append(row(label, f"{name}: import + load", runs["load_floor"], memory_mib))
    return "\n".join(lines), met_all


def limit_hit(runs):
    memory = worst_memory(runs)
    return memory["failcnt"] > 0 or memory["oom_kills"] > 0


def row(label, function, runs, memory_mib, ratio="", target="", verdict=""):
    memory = worst_memory(runs)
    hit = (f"yes: {memory['failcnt']} times, {memory['oom_kills']} killed" if limit_hit(runs) else "no")
    return (f"| {label} | {function} | {seconds(median_first(runs))} | {ratio} | {target} | "
            f"{latency_text(runs[0].get('latency_ms', {}))} | {memory['peak_mib']:.0f} / {memory_mib} MiB | {hit} | {verdict} |")


def seconds(value):
    return "did not start" if value is None else f"{value:.2f} s"


def latency_text(figures):
    return " / ".join(f"{figures[k]:.0f} ms" for k in ("median", "p99", "max")) if figures else ""


def main():
    started = datetime.datetime.now(datetime.UTC)
    print(f"bench-tiers: {STARTS} starts of each function on each tier, {LATENCY_SECONDS} s of requests "
          f"every 50 ms after one start of each", flush=True)
    results = run()
    if results is None:
        return 0
    text, met = table(results)
    machine = f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, {started:%Y-%m-%d}"
    print(f"\n{machine}\n\n{text}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tiers.json").write_text(json.dumps({"date": started.isoformat(timespec="seconds"), "machine": machine,
                                                    "starts": STARTS, "results": results}, indent=2))
    print(f"raw figures: {RESULTS / 'tiers.json'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
