"""How notebooks save a pipeline, beyond joblib.dump(pipe, f): a compressed file (every compression
joblib writes with Python's standard library) is packaged, written back uncompressed, served, and
answers as the pipeline does; one that decompresses past the limit is refused holding no more than
the limit; a lambda or a function of the notebook's own is refused saying to move it into a module;
a model of several outputs is refused in one line. And a sample is probed and proven in batches, the
row a pipeline fails on still named by its line."""

import hashlib
import json
import lzma
import subprocess
import sys
import tracemalloc
import zlib

import joblib
import numpy as np
import pandas as pd
import pytest
import requests
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.multioutput import MultiOutputClassifier, MultiOutputRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler, TargetEncoder

import package
from bundling import loading, probe, proof
from bundling.fields import DataError
from serving import records
from serving.bundle import ModelError, load_model
from serving.scorers import build, kinds

from conftest import ROOT, Server, as_requests, copy_function_code, dumped

NOTHING = " (nothing written; the existing model is unchanged)"
# joblib.dump's compress= values whose files Python's standard library decompresses (all but lz4).
COMPRESSIONS = [3, True, ("zlib", 1), ("gzip", 9), ("bz2", 3), ("lzma", 3), ("xz", 6)]
LZ4_FRAME = b"\x04\x22\x4d\x18"  # how an lz4 frame, and so joblib.dump(compress="lz4"), starts
NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]


def package_py(*args):
    """package.py as make package runs it."""
    return subprocess.run([sys.executable, str(ROOT / "package.py"), *map(str, args)], cwd=ROOT, capture_output=True, text=True)


def refusal(result):
    """The one line a failed package.py printed, and nothing else."""
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("package.py: ") and line.endswith(NOTHING), line
    return line.removeprefix("package.py: ").removesuffix(NOTHING)


def penguins_pipeline(encoder, estimator):
    """A pipeline of the penguins table as a notebook fits one: imputed numbers, encoded categories."""
    table = load_penguins()
    X, y = table.drop(columns=["species"]), table["species"]
    prep = ColumnTransformer([("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMBERS),
                              ("categories", make_pipeline(SimpleImputer(strategy="most_frequent"), encoder), ["island", "sex"])])
    return Pipeline([("prep", prep), ("model", estimator)]).fit(X, y), table


@pytest.fixture(scope="module")
def penguins_files(tmp_path_factory):
    """A penguins forest (read as data) dumped with compress=3, and its sample."""
    folder = tmp_path_factory.mktemp("penguins")
    pipe, table = penguins_pipeline(OneHotEncoder(handle_unknown="ignore"), RandomForestClassifier(n_estimators=30, random_state=0))
    joblib.dump(pipe, folder / "forest.pkl", compress=3)
    table.to_csv(folder / "penguins.csv", index=False)
    return folder, pipe, table


# Compressed files.


@pytest.mark.parametrize("compress", COMPRESSIONS, ids=str)
def test_every_compression_the_standard_library_reads_is_read_as_data(compress):
    X, y = load_wine(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0)).fit(X, y)
    content = dumped(pipe, compress=compress)
    assert not content.startswith(b"\x80")  # compressed: not a pickle as it stands
    step = build(records.read(content, kinds()))
    assert np.array_equal(step.predict_proba(X), pipe.predict_proba(X)) and step.predict(X).tolist() == pipe.predict(X).tolist()


def test_a_compressed_pickle_is_packaged_uncompressed_and_answers_as_the_pipeline(penguins_files, tmp_path):
    folder, pipe, table = penguins_files
    result = package_py(folder / "forest.pkl", "--data", folder / "penguins.csv", "--target", "species", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    metadata = json.loads((tmp_path / "model.json").read_text())
    written = (tmp_path / "model.pkl").read_bytes()
    assert written.startswith(b"\x80") and metadata["model_sha256"] == hashlib.sha256(written).hexdigest()
    assert metadata["served_as"] == "data"
    copy_function_code(ROOT, tmp_path)
    with Server(tmp_path / "main.py").wait_ready() as server:
        batch = requests.post(server.url, json={"instances": as_requests(table, metadata)}).json()["predictions"]
    assert [answer["predicted_class"] for answer in batch] == pipe.predict(table).tolist()
    probabilities = [list(answer["probabilities"].values()) for answer in batch]
    assert np.array_equal(probabilities, pipe.predict_proba(table))  # a forest's, bit for bit


def compressed_bundle(source, bundle, compress):
    """The bundle in `source` with its model.pkl as joblib.dump(compress=...) writes it, and model.json
    describing that file (its SHA-256), as someone may put one together by hand."""
    for name in ("model.pkl", "model.json"):
        (bundle / name).write_bytes((source / name).read_bytes())
    joblib.dump(joblib.load(source / "model.pkl"), bundle / "model.pkl", compress=compress)
    metadata = json.loads((bundle / "model.json").read_text())
    metadata["model_sha256"] = hashlib.sha256((bundle / "model.pkl").read_bytes()).hexdigest()
    (bundle / "model.json").write_text(json.dumps(metadata))
    return metadata


@pytest.mark.parametrize("served_as", ["data", "pipeline"])
def test_serving_reads_a_compressed_model_pkl_whose_file_is_the_one_model_json_seals(tmp_path, penguins_files, served_as):
    folder, _, table = penguins_files
    if served_as == "data":
        pipe = joblib.load(folder / "forest.pkl")
        package.package(folder / "forest.pkl", folder / "penguins.csv", out=tmp_path / "packaged")
    else:  # a TargetEncoder is not read as data: unpickled, trusting scikit-learn
        pipe, _ = penguins_pipeline(TargetEncoder(), LogisticRegression(max_iter=1000))
        joblib.dump(pipe, tmp_path / "target.pkl")
        package.package(tmp_path / "target.pkl", folder / "penguins.csv", out=tmp_path / "packaged", trust=["scikit-learn"])
    (tmp_path / "bundle").mkdir()
    metadata = compressed_bundle(tmp_path / "packaged", tmp_path / "bundle", ("gzip", 3))
    assert metadata["served_as"] == served_as
    model = load_model(tmp_path / "bundle")
    X = table[[field["column"] for field in metadata["fields"]]]
    labels, _ = model.answers([model.schema.row(row)[0] for row in as_requests(table, metadata)])
    assert labels == pipe.predict(X).tolist()
    content = bytearray((tmp_path / "bundle" / "model.pkl").read_bytes())
    content[len(content) // 2] ^= 1  # the SHA-256 is the file's, compressed as it is
    (tmp_path / "bundle" / "model.pkl").write_bytes(bytes(content))
    with pytest.raises(ModelError, match="model.pkl: its SHA-256 is"):
        load_model(tmp_path / "bundle")


def test_lz4_and_a_cut_compressed_file_are_refused_in_one_line(tmp_path, penguins_files):
    folder = penguins_files[0]
    (tmp_path / "lz4.pkl").write_bytes(LZ4_FRAME + bytes(64))
    assert refusal(package_py(tmp_path / "lz4.pkl", "--out", tmp_path / "bundle")) == (
        f"{tmp_path / 'lz4.pkl'}: it is compressed with lz4, which Python's standard library does not read: write it with "
        "joblib.dump(pipeline, file, compress=3) (zlib), or without compress")
    content = (folder / "forest.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(content[:len(content) // 2])
    assert refusal(package_py(tmp_path / "cut.pkl", "--out", tmp_path / "bundle")) == (
        f"{tmp_path / 'cut.pkl'}: it is compressed (zlib) but ends inside its compressed stream: is the file whole?")
    assert not (tmp_path / "bundle").exists()


def bomb(compressor, size):
    """A pickle's first bytes and then `size` zeros, compressed a MiB at a time: a few KB that decompress to `size`."""
    parts = [compressor.compress(b"\x80\x04")] + [compressor.compress(bytes(2**20)) for _ in range(size // 2**20)]
    return b"".join(parts) + compressor.flush()


@pytest.mark.parametrize("compressor", [lambda: zlib.compressobj(9), lambda: zlib.compressobj(9, wbits=31),
                                        lambda: lzma.LZMACompressor(lzma.FORMAT_XZ, preset=0)], ids=["zlib", "gzip", "xz"])
def test_a_file_that_decompresses_past_the_limit_is_refused_holding_no_more_than_it(monkeypatch, compressor):
    monkeypatch.setattr(records, "MAX_PICKLE_BYTES", 2**20)
    monkeypatch.setattr(records, "DECOMPRESS_STEP", 2**16)
    content = bomb(compressor(), 64 * 2**20)
    assert len(content) < 2**20 // 4
    tracemalloc.start()
    try:
        with pytest.raises(records.RecordError) as refused:
            records.read(content, kinds())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(refused.value).endswith(f"decompresses to over the {2**20} bytes read as data")
    assert peak < 3 * 2**20  # the limit and a step (and xz's window of 256 KiB), not the 64 MiB it would make


def test_an_lzma_file_that_asks_for_a_window_of_gigabytes_is_refused():
    content = lzma.compress(dumped(StandardScaler().fit(load_wine().data)), format=lzma.FORMAT_ALONE, preset=0)
    assert records.read(content, kinds()).kind == "sklearn.preprocessing._data.StandardScaler"
    # Its header: the window's size, whose lowest byte stays 0, as joblib's prefix (5d 00) has it.
    asks_for_4_gib = content[:1] + (2**32 - 256).to_bytes(4, "little") + content[5:]
    with pytest.raises(records.RecordError, match=r"^it is neither a pickle nor an? lzma stream .* \(LZMAError: Memory"):
        records.read(asks_for_4_gib, kinds())


def test_serving_refuses_a_model_pkl_that_decompresses_past_the_limit_in_one_line(tmp_path, bundle, monkeypatch):
    monkeypatch.setattr(records, "MAX_PICKLE_BYTES", 2**20)
    (bundle / "model.pkl").write_bytes(bomb(zlib.compressobj(9), 8 * 2**20))
    metadata = json.loads((bundle / "model.json").read_text())
    metadata["model_sha256"] = hashlib.sha256((bundle / "model.pkl").read_bytes()).hexdigest()
    (bundle / "model.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelError) as refused:
        load_model(bundle)
    assert str(refused.value) == f"model.pkl: it is compressed (zlib) and decompresses to over the {2**20} bytes read as data"


# Functions a module can't import.

MOVE_IT = ("move it into a module of its own (my_steps.py, say; a lambda becomes a def there), import it from there in the "
           "notebook, fit and dump the pipeline again, and package it with MODULES=my_steps.py")


def test_a_cloudpickled_lambda_is_refused_saying_to_move_it_into_a_module(tmp_path):
    cloudpickle = pytest.importorskip("cloudpickle")
    X, y = load_wine(return_X_y=True, as_frame=True)
    pipe = make_pipeline(FunctionTransformer(lambda X: np.log1p(X)), LogisticRegression(max_iter=2000)).fit(X, y)
    (tmp_path / "lambda.pkl").write_bytes(cloudpickle.dumps(pipe))
    X.to_csv(tmp_path / "wine.csv", index=False)
    line = refusal(package_py(tmp_path / "lambda.pkl", "--data", tmp_path / "wine.csv", "--out", tmp_path / "b"))
    assert line == (f"{tmp_path / 'lambda.pkl'}: it holds a function pickled with its code (cloudpickle.cloudpickle."
                    f"_make_function: a lambda, or a function defined in the notebook), which only runs by running that "
                    f"code: {MOVE_IT}")
    assert not (tmp_path / "b").exists()
    with pytest.raises(DataError) as trusting:  # no trust lets a function's own code in
        loading.load_pipeline(tmp_path / "lambda.pkl", trust=["scikit-learn", "cloudpickle"])
    assert str(trusting.value) == line


@pytest.mark.parametrize("module, name", [("joblib.externals.cloudpickle.cloudpickle", "_make_function"),
                                          ("cloudpickle.cloudpickle_fast", "_function_setstate"), ("dill._dill", "_create_function")])
def test_other_picklers_of_a_functions_code_get_the_same_advice(tmp_path, module, name):
    (tmp_path / "model.pkl").write_bytes(b"\x80\x02" + f"c{module}\n{name}\n.".encode())  # a pickle that names it
    with pytest.raises(DataError) as refused:
        loading.load_pipeline(tmp_path / "model.pkl", trust=["scikit-learn"])
    assert str(refused.value).endswith(f"({module}.{name}: a lambda, or a function defined in the notebook), which only runs "
                                       f"by running that code: {MOVE_IT}")


NOTEBOOK = '''
import sys
import joblib, numpy as np
from sklearn.datasets import load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
{define}

X, y = load_wine(return_X_y=True, as_frame=True)
joblib.dump(make_pipeline(FunctionTransformer(shrink), LogisticRegression(max_iter=2000)).fit(X, y), sys.argv[1])
'''
SHRINK = "def shrink(X):\n    return np.log1p(X)\n"


def test_a_notebooks_own_function_is_refused_and_packaged_once_moved_into_a_module(tmp_path):
    X, y = load_wine(return_X_y=True, as_frame=True)
    X.to_csv(tmp_path / "wine.csv", index=False)
    subprocess.run([sys.executable, "-c", NOTEBOOK.format(define=SHRINK), tmp_path / "notebook.pkl"], check=True, cwd=tmp_path)
    assert refusal(package_py(tmp_path / "notebook.pkl", "--data", tmp_path / "wine.csv", "--trust", "scikit-learn")) == (
        f"{tmp_path / 'notebook.pkl'}: it uses shrink, a function defined in the notebook itself (__main__), which a function "
        "can't import: move shrink into a module of its own (my_steps.py, say), import it from there in the notebook, fit "
        "and dump the pipeline again, and package it with MODULES=my_steps.py")
    (tmp_path / "my_steps.py").write_text("import numpy as np\n\n\n" + SHRINK)
    subprocess.run([sys.executable, "-c", NOTEBOOK.format(define="from my_steps import shrink"), tmp_path / "moved.pkl"],
                   check=True, cwd=tmp_path)
    result = package_py(tmp_path / "moved.pkl", "--data", tmp_path / "wine.csv", "--trust", "scikit-learn",
                        "--modules", tmp_path / "my_steps.py", "--out", tmp_path / "bundle")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "bundle" / "model.json").read_text())["modules"] == ["my_steps"]


# Several outputs.


def several_outputs():
    """Penguins' measures, and two targets: two numbers, and two yes-or-no labels."""
    table = load_penguins().dropna()
    X = table[["bill_length_mm", "bill_depth_mm", "flipper_length_mm"]]
    numbers = table[["body_mass_g", "year"]]
    labels = np.column_stack([table["sex"] == "male", table["island"] == "Biscoe"]).astype(int)
    return X, numbers, labels


MULTI_OUTPUT = {
    "ridge": (lambda: Ridge(), "numbers"),
    "forest regressor": (lambda: RandomForestRegressor(n_estimators=5, random_state=0), "numbers"),
    "MultiOutputRegressor": (lambda: MultiOutputRegressor(Ridge()), "numbers"),
    "multilabel forest": (lambda: RandomForestClassifier(n_estimators=5, random_state=0), "labels"),
    "MultiOutputClassifier": (lambda: MultiOutputClassifier(LogisticRegression(max_iter=1000)), "labels"),
}


@pytest.mark.parametrize("name", list(MULTI_OUTPUT))
def test_a_model_of_several_outputs_is_refused_in_one_line(tmp_path, name):
    make, target = MULTI_OUTPUT[name]
    X, numbers, labels = several_outputs()
    joblib.dump(make_pipeline(SimpleImputer(), make()).fit(X, numbers if target == "numbers" else labels), tmp_path / "model.pkl")
    X.to_csv(tmp_path / "sample.csv", index=False)
    with pytest.raises(DataError) as refused:
        package.package(tmp_path / "model.pkl", tmp_path / "sample.csv", out=tmp_path / "bundle", trust=["scikit-learn"])
    assert str(refused.value) == f"{tmp_path / 'model.pkl'}: it predicts 2 outputs per row; only one is served: fit one model per output"
    assert not (tmp_path / "bundle").exists()


def test_a_forest_of_several_outputs_is_refused_so_without_trust_too(tmp_path):
    X, _, labels = several_outputs()
    joblib.dump(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, labels), tmp_path / "model.pkl")
    X.to_csv(tmp_path / "sample.csv", index=False)
    with pytest.raises(DataError) as refused:
        package.package(tmp_path / "model.pkl", tmp_path / "sample.csv", out=tmp_path / "bundle")
    assert str(refused.value) == (f"{tmp_path / 'model.pkl'}: it predicts several outputs per row; only one is served: "
                                  "fit one model per output")


def test_a_model_fitted_on_a_one_column_table_says_to_fit_it_on_the_column(tmp_path):
    X, numbers, _ = several_outputs()
    joblib.dump(LinearRegression().fit(X, numbers[["body_mass_g"]]), tmp_path / "model.pkl")  # it predicts (n, 1)
    X.to_csv(tmp_path / "sample.csv", index=False)
    line = refusal(package_py(tmp_path / "model.pkl", "--data", tmp_path / "sample.csv", "--trust", "scikit-learn"))
    assert line == (f"{tmp_path / 'model.pkl'}: it predicts a column of one value per row, as a model fitted on a table of "
                    "one column does: fit it on the column itself (y = table['target'], not table[['target']])")


# Batches.


def test_first_failure_finds_the_row_in_a_few_batches():
    calls = []

    def score(indices):
        calls.append(len(indices))
        if 4321 in indices:
            raise ValueError("Input X contains NaN.")

    failure = probe.first_failure("sample.csv", 5000, score)
    assert str(failure) == "the pipeline fails on line 4323 of sample.csv: ValueError: Input X contains NaN."
    assert len(calls) < 40 and sum(calls) < 7500  # 5,000 calls of a row each, before
    assert calls[0] == 1  # a row alone first, as a request of one row is answered


def test_first_failure_names_rows_that_fail_only_together_and_a_row_that_fails_only_alone():
    together = probe.first_failure("sample.csv", 1000, lambda indices: not {10, 400} <= set(indices))
    assert str(together) == ("the pipeline fails on lines 2 to 501 of sample.csv taken together: ValueError: its answer is not "
                             "a finite number")
    alone = probe.first_failure("sample.csv", 1000, lambda indices: 1 / (len(indices) - 1))
    assert str(alone) == "the pipeline fails on line 2 of sample.csv: ZeroDivisionError: division by zero"
    assert probe.first_failure("sample.csv", 1000, lambda indices: True) is None


@pytest.fixture(scope="module")
def big_sample(tmp_path_factory):
    """5,000 penguins: the table resampled, its measures with noise, as a sample of a notebook's data."""
    folder = tmp_path_factory.mktemp("big")
    rng = np.random.default_rng(0)
    table = load_penguins().sample(5000, replace=True, random_state=0).reset_index(drop=True)
    for column in NUMBERS[:4]:
        table[column] = table[column] + rng.normal(0, table[column].std() * 0.05, len(table))
    table.to_csv(folder / "sample.csv", index=False)
    return folder, table


def test_a_5000_row_sample_of_a_target_encoder_pipeline_is_probed_in_batches(tmp_path, big_sample, monkeypatch):
    folder, table = big_sample
    pipe, _ = penguins_pipeline(TargetEncoder(), LogisticRegression(max_iter=1000))
    joblib.dump(pipe, tmp_path / "target.pkl")
    rows_answered = []
    answers = probe.Probe.answers
    monkeypatch.setattr(probe.Probe, "answers", lambda self, rows: rows_answered.append(len(rows)) or answers(self, rows))
    metadata, _ = package.package(tmp_path / "target.pkl", folder / "sample.csv", "species", out=tmp_path / "bundle",
                                  trust=["scikit-learn"])
    assert len(rows_answered) < 40  # a probe per row before: 5,000
    assert metadata["data"]["rows"] == 5000 and metadata["metrics"]["sample_accuracy"] == round(
        float(np.mean(pipe.predict(table.drop(columns=["species"])) == table["species"])), 4)


def test_the_line_a_pipeline_fails_on_is_named_in_a_5000_row_sample(tmp_path):
    data = load_breast_cancer(as_frame=True)
    pipe = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=5000)).fit(data.data, data.target)
    joblib.dump(pipe, tmp_path / "model.pkl")
    sample = pd.concat([data.data] * 9, ignore_index=True).iloc[:5000]
    sample.loc[4321, "mean radius"] = -2.0  # log1p of which is NaN, which LogisticRegression refuses
    sample.to_csv(tmp_path / "sample.csv", index=False)
    line = refusal(package_py(tmp_path / "model.pkl", "--data", tmp_path / "sample.csv", "--out", tmp_path / "bundle"))
    assert line.startswith("the pipeline fails on line 4323 of sample.csv: ValueError: Input X contains NaN.")


class RefusesNegatives:
    """A pipeline that refuses a row whose first value is below zero, as a check of its own would."""

    def __init__(self, pipeline):
        self.pipeline = pipeline

    def predict(self, X):
        if (np.asarray(X)[:, 0] < 0).any():
            raise ValueError("a negative first value")
        return self.pipeline.predict(X)

    def predict_proba(self, X):
        self.predict(X)
        return self.pipeline.predict_proba(X)


def breast_cancer_proof(rows_refused):
    """A breast-cancer LogisticRegression's pickle, 5,000 sample rows (every 50th refused by a log of a
    negative value when `rows_refused`), and model.json's fields."""
    X, y = load_breast_cancer(return_X_y=True)
    pipe = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y)
    sample = np.tile(X, (9, 1))[:5000]
    if rows_refused:
        sample[::50, 0] = -5.0
    fields = [{"name": f"x{i}", "column": f"x{i}", "type": "number", "nullable": False,
               "range": [float(X[:, i].min()), float(X[:, i].max())]} for i in range(X.shape[1])]
    return pipe, dumped(pipe), {"fields": fields, "input": "array"}, sample.tolist()


def test_the_proof_halves_a_batch_scikit_learn_refuses_and_the_numpy_form_refuses_the_same_rows(monkeypatch):
    pipe, content, metadata, sample = breast_cancer_proof(rows_refused=True)
    calls = []
    answers = proof.answers
    monkeypatch.setattr(proof, "answers", lambda predictor, X: calls.append(len(X)) or answers(predictor, X))
    assert proof.prove(content, pipe, metadata, sample)["rows"] == 5000 + proof.GENERATED_ROWS
    assert len(calls) < 2000  # each row of a refused batch alone, on both sides, before: 10,000 and more


def test_the_proof_still_finds_a_row_the_numpy_form_answers_and_scikit_learn_refuses():
    pipe, content, metadata, sample = breast_cancer_proof(rows_refused=False)
    sample[4321][0] = -0.5  # log1p answers it: only the pipeline's own check refuses it
    with pytest.raises(proof.NotProven, match=r"scikit-learn refuses the row \[-0\.5, .*\], and its numpy form does not"):
        proof.prove(content, RefusesNegatives(pipe), metadata, sample)
