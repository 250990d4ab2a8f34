"""Writing a bundle: model.pkl and model.json, as serving reads and checks them.

train.py and package.py describe a fitted pipeline; `write_bundle` pickles it, records the
pickle's SHA-256 and the versions that made it, and whether it is served as data (its numbers
scored with numpy, proven here to give the pipeline's own answers, and `"trust": []`: no code from
it runs), or else unpickled, and then whose code it trusts (`trust`: the libraries TRUST= named
that it needs; train.py's own pipeline is scikit-learn's) and the very names it may load
(`unpickles`, read back from the pickle under that trust). Then it checks model.json exactly as a
serving instance will, and only then replaces the old files, the pair and the bundle's own modules.
"""

import datetime
import hashlib
import json
import os
import platform
import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path

import joblib
import numpy as np
import scipy
import sklearn

from bundling.fields import DataError
from bundling.loading import WARNED, library_of, refused
from bundling.proof import NotProven, prove
from serving import safe_pickle
from serving.bundle import check_metadata, trust_line

# train.py fits its pipeline itself, of scikit-learn's classes: a pickle it made, of scikit-learn's code.
MADE_BY_TRAIN = ("scikit-learn",)


def write_bundle(pipeline, description, out_dir, sample_rows, trust=MADE_BY_TRAIN, module_files=()):
    """Pickle `pipeline` into out_dir/model.pkl and write out_dir/model.json from `description`
    (what the caller knows: name, task, data, fields, input, classes, class_names, pipeline,
    metrics, example, modules), served as data if it is proven on `sample_rows` (and rows made
    from the fields) to answer so as scikit-learn does; else unpickled, trusting what it needs of
    the libraries in `trust`. `module_files` are the files of description's modules, copied in
    beside it. Returns the metadata written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as staging:
        pickle_path = Path(staging) / "model.pkl"
        joblib.dump(pipeline, pickle_path)
        pickle_sha256 = hashlib.sha256(pickle_path.read_bytes()).hexdigest()
        metadata = {
            "name": description["name"],
            "task": description["task"],
            "model_file": "model.pkl",
            "model_sha256": pickle_sha256,
            "trained_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            **{key: value for key, value in description.items() if key not in ("name", "task")},
            "versions": {
                "python": platform.python_version(),
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "joblib": joblib.__version__,
            },
        }
        # Served as data (without scikit-learn) only where its numpy form gives the pipeline's own answers.
        try:
            metadata["proof"] = prove(pickle_path.read_bytes(), pipeline, metadata, sample_rows)
            metadata["served_as"], metadata["trust"] = "data", []
        except NotProven as why:
            metadata["proof"] = {"not_served_as_data": str(why)}
            metadata["served_as"] = "pipeline"
            metadata.update(trusted(pickle_path.read_bytes(), why, trust, module_files))
            # The other libraries whose code it runs, by version as scikit-learn is: serving checks it has the same.
            metadata["versions"].update({library: version(library) for library in metadata["trust"]
                                         if library not in metadata["versions"]})
        for module in module_files:
            shutil.copy(module, Path(staging) / Path(module).name)
        # What a serving instance checks first, checked here before anything is replaced.
        check_metadata(metadata, staging)
        json_path = Path(staging) / "model.json"
        json_path.write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        for module in module_files:
            os.replace(Path(staging) / Path(module).name, out_dir / Path(module).name)
        os.replace(pickle_path, out_dir / "model.pkl")
        os.replace(json_path, out_dir / "model.json")
    if (out_dir / "requirements.txt").is_file():
        pin_libraries(out_dir / "requirements.txt", metadata)
    return metadata


def trusted(content, why, trust, module_files):
    """model.json's trust and unpickles for a pickle served through its libraries' code: the names
    it gives, read back under the libraries and module files trusted, and those libraries it needs."""
    if not trust and not module_files:
        raise DataError(f"{why}, so it would be served through scikit-learn, unpickled at start, and {WARNED}: only if "
                        "you made this file yourself, package it with TRUST=scikit-learn")
    used, trusting = set(), safe_pickle.Trust(trust, {Path(module).stem: Path(module) for module in module_files})
    try:
        safe_pickle.load(content, trusting, used)
    except safe_pickle.RefusedGlobal as err:
        raise DataError(refused("model.pkl, as written", err, trusting)) from None
    needed = {library_of(kind.rpartition(".")[0]) for kind in used if not safe_pickle.is_explicit(*kind.rsplit(".", 1))}
    return {"trust": [library for library in trusting.libraries if library in needed], "unpickles": sorted(used)}


def served_as(metadata):
    """The line train.py and package.py print about how the bundle is served."""
    proof = metadata["proof"]
    if metadata["served_as"] == "data":
        return (f"served as data, without scikit-learn: its answers proven on {proof['rows']:,} rows to be "
                f"scikit-learn {metadata['versions']['scikit-learn']}'s ({proof['floats']})")
    through = " and ".join(["scikit-learn"] + [library for library in metadata["trust"] if library != "scikit-learn"])
    return f"served through {through}, which requirements.txt pins: {proof['not_served_as_data']}; {trust_line(metadata)}"


PINS_NOTE = "# model.pkl is unpickled by scikit-learn at run time (these pins and this note are the bundle writer's)"


def pin_libraries(requirements, metadata):
    """requirements.txt pins scikit-learn, scipy and joblib (and pandas, for a pipeline that takes a
    DataFrame), the versions installed here, exactly when the function unpickles model.pkl: a bundle
    served as data needs none of them, and deployed, each costs a cold start its import and memory."""
    lines = requirements.read_text().splitlines()
    if PINS_NOTE in lines:
        at = lines.index(PINS_NOTE)
        end = next((i for i in range(at + 1, len(lines)) if not lines[i] or lines[i].startswith("#")), len(lines))
        del lines[at:end]
    if metadata["served_as"] == "pipeline":
        needed = ["scikit-learn", "scipy", "joblib"] + (["pandas"] if metadata["input"] == "dataframe" else [])
        needed += [library for library in metadata.get("trust", []) if library not in needed]  # xgboost (or xgboost-cpu), say
        lines += [PINS_NOTE, *(f"{package}=={version(package)}" for package in needed)]
    text = "\n".join(lines) + "\n"
    if text != requirements.read_text():  # unchanged, it keeps its time: make reinstalls nothing
        requirements.write_text(text)
