"""Loading a pickle can run code: a bundle is read as data unless whoever packages it says whose code
it trusts (make package TRUST=, MODULES=). Hostile pickles, crafted here, are refused before anything
of theirs runs or is imported, and in one line; their loading at packaging is bounded in time and
memory; and a bundle unpickled at start must record its trust, and loads only what it records."""

import hashlib
import json
import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.datasets import load_iris
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import StackingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

import package
from bundling import loading, writer
from bundling.fields import DataError
from bundling.proof import NotProven
from serving import safe_pickle, scorers
from serving.bundle import ModelError, load_model

from conftest import FUNCTIONS_FRAMEWORK, ROOT, TUTORIAL_ROW, Server, copy_function_code

NOTHING = " (nothing written; the existing model is unchanged)"
WARNED = "loading a pickle can run any code it names (scikit-learn's documentation warns so too)"


def package_py(*args, cwd=ROOT):
    """package.py run as make package runs it, from `cwd`."""
    return subprocess.run([sys.executable, str(ROOT / "package.py"), *map(str, args)], cwd=cwd, capture_output=True, text=True)


def refusal(result):
    """The one line a failed run printed, and nothing else."""
    assert result.returncode == 1, result.stdout
    [line] = result.stderr.strip().splitlines()
    return line


def names(*pairs):
    """A pickle (protocol 2) that names each (module, name) in turn and holds the last: find_class
    is asked for every one of them, and nothing else happens."""
    return b"\x80\x02" + b"0".join(f"c{module}\n{name}\n".encode() for module, name in pairs) + b"."


@pytest.fixture(scope="module")
def iris_files(tmp_path_factory):
    """The iris sample as a notebook writes it, and pipelines of it dumped with joblib."""
    folder = tmp_path_factory.mktemp("iris")
    data = load_iris()
    X, y = pd.DataFrame(data.data, columns=data.feature_names), pd.Series(data.target, name="class")
    pd.concat([X, y], axis=1).to_csv(folder / "sample.csv", index=False)
    fitted = {"knn": make(KNeighborsClassifier()), "svc": make(SVC()), "logistic": make(LogisticRegression(C=0.05))}
    for name, estimator in fitted.items():
        joblib.dump(estimator.fit(X, y), folder / f"{name}.pkl")
    return folder, fitted, X


def make(estimator):
    return Pipeline([("scaler", StandardScaler()), ("model", estimator)])


def stacking_gadget():
    """A pipeline of names the allow-list of classes took: FunctionTransformer(numpy.str_) turns the
    rows into a file name, then a StackingRegressor calls, on each of its fitted "estimators", the
    method its state names: here an array's tofile, which writes that file."""
    stack = StackingRegressor.__new__(StackingRegressor)
    stack.__dict__.update(estimators=[], final_estimator=DummyRegressor(), final_estimator_=DummyRegressor(),
                          estimators_=[np.array([7.0])], stack_method_=["tofile"], passthrough=False)
    return Pipeline([("name", FunctionTransformer(np.str_)), ("stack", stack)])


def test_a_gadget_of_allowed_names_is_refused_before_anything_of_it_runs(tmp_path, iris_files, monkeypatch):
    folder, _, X = iris_files
    joblib.dump(stacking_gadget(), tmp_path / "gadget.pkl")
    ran = tmp_path / "ran"
    ran.mkdir()
    monkeypatch.chdir(ran)
    with pytest.raises(AttributeError):
        joblib.load(tmp_path / "gadget.pkl").predict(X.to_numpy()[:1])
    assert [path.name for path in ran.iterdir()] == ["[[5.1 3.5 1.4 0.2]]"]  # unpickled and asked, it writes a file
    clean = tmp_path / "clean"
    clean.mkdir()
    result = package_py(tmp_path / "gadget.pkl", "--data", folder / "sample.csv", "--out", tmp_path / "bundle", cwd=clean)
    assert refusal(result) == (
        f"package.py: {tmp_path / 'gadget.pkl'}: it asks for sklearn.ensemble._stacking.StackingRegressor, which is "
        f"not read as data, so it would be unpickled, and {WARNED}: only if you made this file yourself, package it "
        f"with TRUST=scikit-learn{NOTHING}")
    assert not list(clean.iterdir()) and not (tmp_path / "bundle").exists()
    # Unpickled only as packaging unpickles a pickle read as data, StackingRegressor is refused by name.
    with pytest.raises(safe_pickle.RefusedGlobal, match="StackingRegressor, which is not allowed$"):
        safe_pickle.load((tmp_path / "gadget.pkl").read_bytes(), safe_pickle.Trust(exact=scorers.kinds()))


@pytest.fixture
def side_effect_library(tmp_path, monkeypatch):
    """A library installed on sys.path (a package and its dist-info) whose __main__ and tests write
    a file when imported, and whose steps module imports os.system beside a class of its own."""
    library = tmp_path / "sideeffect_lib"
    (library / "tests").mkdir(parents=True)
    writes = f"open({str(tmp_path / 'imported')!r}, 'a').write(__name__ + '\\n')\n"
    for name, text in {"__init__.py": "", "__main__.py": writes, "tests/__init__.py": writes,
                       "steps.py": "from os import system\n\n\nclass Step:\n    pass\n"}.items():
        (library / name).write_text(text)
    info = tmp_path / "sideeffect_lib-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sideeffect-lib\nVersion: 1.0\n")
    (info / "RECORD").write_text("".join(f"sideeffect_lib/{name},,\n" for name in ("__init__.py", "__main__.py", "steps.py")))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path / "imported"
    for module in [module for module in sys.modules if module.startswith("sideeffect_lib")]:
        del sys.modules[module]


def test_a_module_whose_import_runs_code_is_never_imported(side_effect_library):
    trust = safe_pickle.Trust(["sideeffect-lib"])
    assert trust.modules == ("sideeffect_lib",)
    refused = []
    for module, name in [("sideeffect_lib.__main__", "main"), ("sideeffect_lib.tests", "Case"), ("numpy.f2py.__main__", "main"),
                         ("sideeffect_lib.steps", "system"), ("numpy.random.bit_generator", "cycle")]:
        with pytest.raises(safe_pickle.RefusedGlobal) as caught:
            safe_pickle.load(names((module, name)), trust)
        refused.append(str(caught.value))
    tools = "no pipeline is made of a command line, tests or build tools"
    assert refused == [
        f"it asks to load sideeffect_lib.__main__.main, which is not allowed: {tools}",
        f"it asks to load sideeffect_lib.tests.Case, which is not allowed: {tools}",
        f"it asks to load numpy.f2py.__main__.main, which is not allowed: {tools}",
        "it asks to load sideeffect_lib.steps.system, which is not allowed: it is not a class or function defined in "
        "sideeffect_lib.steps",  # a name the module imports is not the module's
        "it asks to load numpy.random.bit_generator.cycle, which is not allowed",  # itertools.cycle, which numpy.random imports
    ]
    assert not side_effect_library.exists()
    assert not {"sideeffect_lib.__main__", "sideeffect_lib.tests", "numpy.f2py.__main__"} & set(sys.modules)
    assert safe_pickle.load(names(("sideeffect_lib.steps", "Step")), trust).__qualname__ == "Step"  # what it defines loads


@pytest.mark.parametrize("content, why", [
    (b"\x80\x02cbuiltins\nset\ncnumpy.random.bit_generator\ncycle\n]K\x01a\x85R\x85R.",  # set(cycle([1])): never ends
     "it asks for numpy.random.bit_generator.cycle, which is none of numpy's arrays, dtypes, scalar types, ufuncs and "
     "random generators that a pipeline is made of, and no TRUST= allows it"),
    (names(("numpy.f2py.__main__", "main")), "it asks for numpy.f2py.__main__.main, of a command line, tests or build tools, "
                                        "whose import alone runs code and which no pipeline is made of; no TRUST= allows it"),
    (names(("posix", "system")), "it asks for posix.system, of Python's standard library, which no pipeline is made of: loading "
                            "it would run that code, and no TRUST= allows it"),
], ids=["numpy.random's cycle", "f2py's command line", "os.system"])
def test_a_name_no_trust_allows_is_refused_whatever_trust_says(tmp_path, content, why):
    (tmp_path / "model.pkl").write_bytes(content)
    result = package_py(tmp_path / "model.pkl", "--trust", "scikit-learn", "--out", tmp_path / "bundle")
    assert refusal(result) == f"package.py: {tmp_path / 'model.pkl'}: {why}{NOTHING}"
    assert not (tmp_path / "bundle").exists()


def test_a_pickle_that_hangs_as_it_loads_is_stopped(tmp_path, monkeypatch, capsys):
    """A class of one's own module (MODULES= trusts it) whose __setstate__ never returns: only
    the child that loads it first runs it, and it is stopped after LOAD_SECONDS of CPU."""
    (tmp_path / "hang_steps.py").write_text("class Hang:\n    def __setstate__(self, state):\n        while True:\n            pass\n")
    (tmp_path / "hang.pkl").write_bytes(b"\x80\x02chang_steps\nHang\n)\x81}b.")  # Hang(), given a state
    monkeypatch.setattr(loading, "LOAD_SECONDS", 2)
    assert package.main([str(tmp_path / "hang.pkl"), "--modules", str(tmp_path / "hang_steps.py"),
                         "--out", str(tmp_path / "bundle")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"package.py: {tmp_path / 'hang.pkl'}: loading it took over 2 s of CPU, so it was stopped; a pipeline loads in "
        f"seconds, and a pickle can make any work for itself as it loads{NOTHING}"]
    assert not (tmp_path / "bundle").exists() and "hang_steps" not in sys.modules


class Calls:
    """What pickles as a call of `function` on `args`, as a hostile file would hold it."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


@pytest.mark.parametrize("bomb", [Calls(frozenset, Calls(range, 10**9)), Calls(bytearray, 10**12)],
                         ids=["frozenset(range(10**9))", "bytearray(10**12)"])
def test_a_pickle_that_asks_for_all_the_memory_is_stopped(tmp_path, monkeypatch, capsys, bomb):
    (tmp_path / "bomb.pkl").write_bytes(pickle.dumps(bomb, protocol=4))
    monkeypatch.setattr(loading, "LOAD_GIB", 1)
    assert package.main([str(tmp_path / "bomb.pkl"), "--out", str(tmp_path / "bundle")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"package.py: {tmp_path / 'bomb.pkl'}: loading it took more than 1 GiB of memory, so it was stopped; a pipeline "
        f"takes about its file's size, and a pickle can ask for any amount as it loads{NOTHING}"]
    assert not (tmp_path / "bundle").exists()


def test_modules_must_be_files_nothing_else_answers_to(tmp_path, iris_files):
    import importlib.util

    folder, _, _ = iris_files
    lines = []
    for name in ("os", "numpy", "palmerpenguins"):
        (tmp_path / f"{name}.py").write_text("class Step:\n    pass\n")
        result = package_py(folder / "logistic.pkl", "--modules", tmp_path / f"{name}.py", "--out", tmp_path / "bundle")
        lines.append(refusal(result).removesuffix(NOTHING))
    assert lines == [
        f"package.py: MODULES={tmp_path / 'os.py'}: os is a standard-library module; name your module something else",
        f"package.py: MODULES={tmp_path / 'numpy.py'}: numpy is already imported here, from {np.__file__}; name your "
        "module something else",
        f"package.py: MODULES={tmp_path / 'palmerpenguins.py'}: palmerpenguins is an installed package's module "
        f"({importlib.util.find_spec('palmerpenguins').origin}); name your module something else",
    ]
    assert not (tmp_path / "bundle").exists()


def with_pickle(bundle, content, **changes):
    """model.pkl replaced by `content`, and model.json changed to describe it, served unpickled."""
    (bundle / "model.pkl").write_bytes(content)
    metadata = json.loads((bundle / "model.json").read_text())
    metadata.update(served_as="pipeline", model_sha256=hashlib.sha256(content).hexdigest(), **changes)
    (bundle / "model.json").write_text(json.dumps(metadata))


def test_a_bundle_s_own_module_is_its_own_file_or_nothing(bundle):
    """model.json may list os among its modules, and the bundle hold an os.py: what would load is
    the standard library's os, so nothing does."""
    (bundle / "os.py").write_text("def system(command):\n    pass\n")
    with_pickle(bundle, names(("os", "system")), modules=["os"], trust=[])
    with pytest.raises(ModelError) as caught:
        load_model(bundle)
    assert str(caught.value) == (f"model.pkl: it asks to load os.system, which is not allowed: os is imported from "
                                 f"{os.__file__}, not from {(bundle / 'os.py').resolve()}")


def test_a_bundle_naming_f2py_s_command_line_stops_the_instance_with_one_line(served_bundle):
    """Even trusted, and listed in model.json's unpickles, numpy.f2py.__main__ is never imported
    (its import runs f2py's command line, which exits 0)."""
    with_pickle(served_bundle, names(("numpy.f2py.__main__", "main")), trust=["scikit-learn"],
                unpickles=["numpy.f2py.__main__.main"])
    result = start(served_bundle)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "cannot serve: model.pkl: it asks to load numpy.f2py.__main__.main, which is not allowed: no pipeline is made of "
        "a command line, tests or build tools"]


def start(folder):
    """functions-framework started on a bundle's folder, for as long as it takes to stop."""
    return subprocess.run([str(FUNCTIONS_FRAMEWORK), "--target", "predict", "--source", str(folder / "main.py"), "--port", "0"],
                          capture_output=True, text=True, timeout=60, cwd=folder)


def test_a_pipeline_not_read_as_data_is_refused_then_served_with_trust(tmp_path, iris_files):
    folder, fitted, X = iris_files
    out = tmp_path / "knn"
    for name, kind in (("svc", "sklearn.svm._classes.SVC"), ("knn", "sklearn.neighbors._classification.KNeighborsClassifier")):
        untrusted = package_py(folder / f"{name}.pkl", "--data", folder / "sample.csv", "--out", out)
        assert refusal(untrusted) == (
            f"package.py: {folder / f'{name}.pkl'}: it asks for {kind}, which is not read as data, so it would be "
            f"unpickled, and {WARNED}: only if you made this file yourself, package it with TRUST=scikit-learn{NOTHING}")
        assert not out.exists()
    result = package_py(folder / "knn.pkl", "--data", folder / "sample.csv", "--target", "class", "--trust", "scikit-learn",
                        "--name", "knn", "--out", out)
    assert result.returncode == 0, result.stderr
    metadata = json.loads((out / "model.json").read_text())
    assert (metadata["served_as"], metadata["trust"]) == ("pipeline", ["scikit-learn"])
    assert "sklearn.neighbors._classification.KNeighborsClassifier" in metadata["unpickles"]
    assert result.stdout.strip().splitlines()[-1].endswith(
        "; model.pkl is unpickled, trusting the code of scikit-learn (model.json's trust), which it may run")
    copy_function_code(ROOT, out)
    with Server(out / "main.py").wait_ready() as server:
        batch = requests.post(server.url, json={"instances": X.to_numpy().tolist()}).json()["predictions"]
        [started] = server.log_lines(lambda line: line["message"].startswith("serving "))
    assert [answer["predicted_class"] for answer in batch] == fitted["knn"].predict(X).tolist()
    assert np.array_equal([list(answer["probabilities"].values()) for answer in batch], fitted["knn"].predict_proba(X))
    assert started["message"] == "serving knn: model.pkl is unpickled, trusting the code of scikit-learn (model.json's " \
                                 "trust), which it may run"
    unlisted = {**metadata, "unpickles": [name for name in metadata["unpickles"] if not name.endswith("KDTree")]}
    (out / "model.json").write_text(json.dumps(unlisted))
    with pytest.raises(ModelError, match="^model.pkl: it asks to load sklearn.neighbors._kd_tree.KDTree, which is not "
                                         "allowed: model.json's unpickles doesn't list it$"):
        load_model(out)
    (out / "model.json").write_text(json.dumps({key: value for key, value in metadata.items() if key != "trust"}))
    stopped = start(out)
    assert stopped.returncode != 0
    assert stopped.stderr.strip().splitlines() == [
        "cannot serve: model.json: model.pkl is served as a pipeline, unpickled here, and loading a pickle can run any "
        "code it names, but trust records no library whose code it may run; package it again with make package "
        "TRUST=..., and only if you made it"]


def test_a_pipeline_read_as_data_but_not_proven_needs_trust_to_be_served_unpickled(tmp_path, iris_files, monkeypatch):
    folder, _, _ = iris_files
    def differs(content, pipeline, metadata, rows):  # as a numpy form that gave other answers would be found
        raise NotProven("its numpy form gives other probabilities than scikit-learn on [5.1, 3.5, 1.4, 0.2]")

    monkeypatch.setattr(writer, "prove", differs)
    with pytest.raises(DataError) as caught:
        package.package(folder / "logistic.pkl", folder / "sample.csv", "class", out=tmp_path / "bundle")
    assert str(caught.value) == (
        "its numpy form gives other probabilities than scikit-learn on [5.1, 3.5, 1.4, 0.2], so it would be served "
        f"through scikit-learn, unpickled at start, and {WARNED}: only if you made this file yourself, package it with "
        "TRUST=scikit-learn")
    assert not (tmp_path / "bundle" / "model.json").exists()
    metadata, notes = package.package(folder / "logistic.pkl", folder / "sample.csv", "class", out=tmp_path / "bundle",
                                      trust=["scikit-learn"])
    assert (metadata["served_as"], metadata["trust"]) == ("pipeline", ["scikit-learn"])
    assert load_model(tmp_path / "bundle").predict([list(TUTORIAL_ROW.values())])[0] == [0]


def test_trust_is_not_recorded_where_nothing_is_unpickled(tmp_path, iris_files):
    folder, _, _ = iris_files
    result = package_py(folder / "logistic.pkl", "--data", folder / "sample.csv", "--trust", "scikit-learn",
                        "--out", tmp_path / "bundle")
    assert result.returncode == 0, result.stderr
    assert "note: TRUST=scikit-learn not needed: every object in it is read as data, and no code from it runs" in result.stdout
    metadata = json.loads((tmp_path / "bundle" / "model.json").read_text())
    assert (metadata["served_as"], metadata["trust"], "unpickles" in metadata) == ("data", [], False)
    unknown = package_py(folder / "logistic.pkl", "--trust", "scikit-lern", "--out", tmp_path / "other")
    assert refusal(unknown) == ("package.py: TRUST=scikit-lern: no library of that name is installed; name each library "
                                f"by its pip name (scikit-learn, xgboost, lightgbm), installed here{NOTHING}")
