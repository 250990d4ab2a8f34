"""make bench-tiers: each function started as Cloud Functions' tiers start it, with their CPU and
memory, for every kind of model the bundle serves.

A Cloud Functions instance is small: 128 MiB comes with 0.083 of a vCPU, 256 MiB (the default)
with 0.167, 512 MiB with 0.333, 1 GiB with 0.583. Each server here is started inside a cgroup (v1)
with that CPU quota (a 100 ms period) and memory limit; it runs from a virtual environment built
from its bundle's requirements.txt alone. For each tier (BENCH_TIERS, by default 128 and 256 MiB,
where the targets are) and each kind of model:

  ours          main.py serving the bundle as data (no scikit-learn in the process)
  scikit-learn  main.py serving the same model.pkl unpickled by scikit-learn (its twin bundle,
                "served_as": "pipeline", with scikit-learn, scipy and joblib pinned)
  constant      functions-framework answering a constant, loading nothing (started beside each model)
  numpy floor   the same, importing numpy and orjson: the floor of anything scoring with numpy (beside each)

Every function's source is compiled first, as Cloud Functions' build compiles it. Time to first
answer is the median of TIER_STARTS starts (default 3), the three functions in turn, and a model's
ratio is to the constant function's starts taken beside its own. From
one start of each, one request every 50 ms for TIER_LATENCY_SECONDS (30) after its first answer:
median, p99 and maximum latency; on 256 MiB, then, a 1000-row batch (rows made from the model's
fields, as make package proves them) five times: the median seconds. The cgroup tells the peak
memory (page cache included, as the kernel counts it against the limit), how often usage reached
the limit and whether it killed a process. Models: iris; penguins and a diabetes regression as
train.py fits them; and, fitted in a notebook on pandas DataFrames and packaged with package.py, a
random forest, a HistGradientBoosting with categorical features, a GradientBoosting and an
ExtraTrees. Writes bench/results/tiers.json and prints a table with the targets.
"""

import datetime
import hashlib
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

ALL_TIERS = [("128 MiB", 128, 0.083), ("256 MiB", 256, 0.167), ("512 MiB", 512, 0.333), ("1 GiB", 1024, 0.583)]
TIERS = [tier for tier in ALL_TIERS if tier[0] in os.environ.get("BENCH_TIERS", "128 MiB,256 MiB").split(",")]
STARTS = int(os.environ.get("TIER_STARTS", 3))
BATCH_ROWS, BATCH_CALLS = 1000, 5
LATENCY_SECONDS = int(os.environ.get("TIER_LATENCY_SECONDS", 30))
CGROUP = Path("/sys/fs/cgroup")
BUNDLES = RESULTS / "tiers"
CONSTANT = ROOT / "bench" / "functions" / "constant.py"
NUMPY_FLOOR = ROOT / "bench" / "functions" / "numpy_floor.py"


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


PACKAGED = ("notebook-forest", "hgb-categorical", "gradient-boosting", "extra-trees")


def bundles():
    """Each kind of model's bundle folder, made fresh (the function's code, model.pkl, model.json,
    requirements.txt and a batch of rows), and its scikit-learn twin beside it."""
    shutil.rmtree(BUNDLES, ignore_errors=True)
    made = {}
    for name in ("iris", "penguins", "diabetes", *PACKAGED):
        made[name] = BUNDLES / name
        made[name].mkdir(parents=True)
        copy_function_code(ROOT, made[name])
        shutil.copy(ROOT / "requirements.txt", made[name])
    for served in ("model.pkl", "model.json"):
        shutil.copy(ROOT / served, made["iris"])
    python("-c", "import palmerpenguins, sys; palmerpenguins.load_penguins().to_csv(sys.argv[1], index=False)",
           BUNDLES / "penguins.csv")
    python("train.py", "--data", BUNDLES / "penguins.csv", "--target", "species", "--out", made["penguins"])
    python("-c", "import sys; from sklearn.datasets import load_diabetes; d = load_diabetes(as_frame=True); "
           "d.data.assign(progression=d.target).to_csv(sys.argv[1], index=False)", BUNDLES / "diabetes.csv")
    python("train.py", "--data", BUNDLES / "diabetes.csv", "--target", "progression", "--out", made["diabetes"])
    for name in PACKAGED:
        python("-c", NOTEBOOK, name, BUNDLES / "penguins.csv", BUNDLES / f"{name}.pkl")
        python("package.py", BUNDLES / f"{name}.pkl", "--data", BUNDLES / "penguins.csv", "--target", "species",
               "--out", made[name])
    for name, folder in made.items():
        python("-c", TWIN_AND_BATCH, folder, BUNDLES / f"{name}-scikit-learn", BATCH_ROWS)
    # Cloud Functions' build compiles the function's source (its functions_framework buildpack runs
    # `python3 -m compileall -f -q .`), so an instance starts from bytecode: so do these.
    for folder in (*BUNDLES.iterdir(), CONSTANT.parent):
        if folder.is_dir():
            subprocess.run([SERVE_VENV / "bin" / "python", "-m", "compileall", "-f", "-q", folder], check=True)
    return made


# Notebooks' pipelines on penguins as pandas reads them: text one-hot encoded (or categorical, for
# the HistGradientBoosting), gaps filled where the estimator needs it.
NOTEBOOK = """
import sys, joblib, pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (ExtraTreesClassifier, GradientBoostingClassifier, HistGradientBoostingClassifier,
                              RandomForestClassifier)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder
kind, table = sys.argv[1], pd.read_csv(sys.argv[2])
X, y = table.drop(columns=["species"]), table["species"]
if kind == "hgb-categorical":
    pipe = HistGradientBoostingClassifier(categorical_features=["island", "sex"], random_state=0)
    X = X.astype({"island": "category", "sex": "category"})
    pipe = pipe.fit(X, y)
else:
    prep = ColumnTransformer([
        ("numbers", SimpleImputer(strategy="median"), ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]),
        ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), ["island", "sex"]),
    ])
    model = {"notebook-forest": RandomForestClassifier(n_estimators=100, random_state=0),
             "gradient-boosting": GradientBoostingClassifier(random_state=0),
             "extra-trees": ExtraTreesClassifier(n_estimators=100, random_state=0)}[kind]
    pipe = Pipeline([("prep", prep), ("model", model)]).fit(X, y)
with open(sys.argv[3], "wb") as f:
    joblib.dump(pipe, f)
"""

# The twin: the same model.pkl served through scikit-learn, as package.py writes a bundle it can't
# serve as data; and a batch of rows a caller could send, as make package proves them.
TWIN_AND_BATCH = """
import json, shutil, sys
from pathlib import Path
from bundling.proof import generated_rows
from bundling.writer import pin_libraries, trusted
folder, twin, rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
metadata = json.loads((folder / "model.json").read_text())
(folder / "batch.json").write_text(json.dumps({"instances": generated_rows(metadata["fields"], rows, seed=1)}))
shutil.copytree(folder, twin)
metadata.update(served_as="pipeline", proof={"not_served_as_data": "the bench's twin, served through scikit-learn"},
                **trusted((folder / "model.pkl").read_bytes(), "the bench's twin", ["scikit-learn"], ()))
(twin / "model.json").write_text(json.dumps(metadata))
pin_libraries(twin / "requirements.txt", metadata)
"""


def serving_venv(folder):
    """A virtual environment built from the bundle's requirements.txt alone, as Cloud Functions
    builds one: the project's serving venv when they are the same file, else one for those pins."""
    requirements = (folder / "requirements.txt").read_text()
    if requirements == (ROOT / "requirements.txt").read_text():
        return SERVE_VENV
    venv = RESULTS / f"venv-{hashlib.sha256(requirements.encode()).hexdigest()[:12]}"
    if not (venv / "requirements.txt").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        subprocess.run([venv / "bin" / "pip", "install", "--quiet", "-r", folder / "requirements.txt"], check=True)
        (venv / "requirements.txt").write_text(requirements)
    return venv


def batch_seconds(url, body):
    """The median seconds of BATCH_CALLS calls with a batch; None if one is not answered."""
    taken = []
    for _ in range(BATCH_CALLS):
        sent = time.perf_counter()
        status, _, _ = call(url, body, timeout=120)
        if status != 200:
            return None
        taken.append(time.perf_counter() - sent)
    return statistics.median(taken)


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


def one_start(source, body, venv, tier, env=None, latency=False, batch=None):
    """A start inside a fresh cgroup: seconds to the first answer, the latency figures and a
    batch's seconds if asked, and the cgroup's memory figures; an instance the kernel killed is
    reported as such."""
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
            if batch is not None:
                figures["batch_s"] = batch_seconds(server.url, batch)
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
        results[label] = {}
        for index, (name, folder) in enumerate(made.items()):
            body = json.dumps(json.loads((folder / "model.json").read_text())["example"]).encode()
            batch = (folder / "batch.json").read_bytes() if label == "256 MiB" else None
            runs = {"constant": [], "numpy floor": [], "ours": [], "scikit-learn": []}
            for i in range(STARTS):  # in turn, the floors beside each model, so that drift falls on all alike
                runs["constant"].append(one_start(CONSTANT, b"{}", SERVE_VENV, tier, latency=(i == 0 and index == 0)))
                runs["numpy floor"].append(one_start(NUMPY_FLOOR, b"{}", SERVE_VENV, tier))
                for who, source in (("ours", folder), ("scikit-learn", BUNDLES / f"{name}-scikit-learn")):
                    measured = i == 0 and (who == "ours" or batch is not None)
                    runs[who].append(one_start(source / "main.py", body, serving_venv(source), tier, latency=measured,
                                               batch=batch if i == 0 else None))
            results[label][name] = runs
            print(f"{label} {name} done", flush=True)
    return results


def median_first(runs):
    times = [run["first_answer_s"] for run in runs]
    return None if None in times else statistics.median(times)


def worst_memory(runs):
    return {"peak_mib": max(r["peak_mib"] for r in runs), "failcnt": max(r["failcnt"] for r in runs),
            "oom_kills": max(r["oom_kills"] for r in runs), "alive": all(r["alive"] for r in runs)}


def checks(name, label, ours, constant, sklearn):
    """The targets of serving as data, each (what, met)."""
    first = median_first(ours)
    ratio = first / constant if first and constant else None
    target = 1.5 if name == "iris" else 1.6
    found = [("answered to the end", worst_memory(ours)["alive"] and not worst_memory(ours)["oom_kills"])]
    if label == "256 MiB":
        latency, batch = ours[0].get("latency_ms", {}), ours[0].get("batch_s")
        sklearn_batch = sklearn[0].get("batch_s")
        found += [(f"first answer <= {target}x constant", ratio is not None and ratio <= target),
                  ("peak <= 100 MiB", worst_memory(ours)["peak_mib"] <= 100),
                  ("p99 <= 20 ms", latency.get("p99", float("inf")) <= 20),
                  ("1000-row batch no slower than scikit-learn's",
                   batch is not None and (sklearn_batch is None or batch <= sklearn_batch))]
    return ratio, found


def table(results):
    """The tier table: for each tier the constant function, then for each model ours and its
    scikit-learn twin, each row with its figures and, for ours, the targets met or missed."""
    lines = ["| tier | function | first answer | ratio to constant | latency p50 / p99 / max, first 30 s "
             "| 1000-row batch | peak memory | limit hit | verdict |", "| --- " * 9 + "|"]
    met_all = True
    for label, memory_mib, _ in TIERS:
        for which in ("constant", "numpy floor"):
            starts = [run for runs in results[label].values() for run in runs[which]]
            everyone = median_first([run for runs in results[label].values() for run in runs["constant"]])
            lines.append(row(label, f"{which} (every start)", starts, memory_mib, f"{median_first(starts) / everyone:.2f}x"))
        for name, runs in results[label].items():
            constant = median_first(runs["constant"])  # the starts beside this model's
            ratio, found = checks(name, label, runs["ours"], constant, runs["scikit-learn"])
            met_all &= all(ok for _, ok in found)
            verdict = "; ".join(f"{what} {'met' if ok else 'MISSED'}" for what, ok in found)
            floor = median_first(runs["numpy floor"]) / constant if constant and median_first(runs["numpy floor"]) else None
            ratios = (f"{ratio:.2f}x" if ratio else "-") + (f" (numpy floor beside it: {floor:.2f}x)" if floor else "")
            lines.append(row(label, f"{name}: ours", runs["ours"], memory_mib, ratios, verdict))
            sklearn_first = median_first(runs["scikit-learn"])
            lines.append(row(label, f"{name}: scikit-learn", runs["scikit-learn"], memory_mib,
                             f"{sklearn_first / constant:.2f}x" if sklearn_first and constant else "-"))
    return "\n".join(lines), met_all


def limit_hit(runs):
    memory = worst_memory(runs)
    return memory["failcnt"] > 0 or memory["oom_kills"] > 0


def row(label, function, runs, memory_mib, ratio="", verdict=""):
    memory = worst_memory(runs)
    hit = (f"yes: {memory['failcnt']} times, {memory['oom_kills']} killed" if limit_hit(runs) else "no")
    batch = runs[0].get("batch_s")
    return (f"| {label} | {function} | {seconds(median_first(runs))} | {ratio} | "
            f"{latency_text(runs[0].get('latency_ms', {}))} | {'' if batch is None else f'{batch * 1000:.0f} ms'} | "
            f"{memory['peak_mib']:.0f} / {memory_mib} MiB | {hit} | {verdict} |")


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
