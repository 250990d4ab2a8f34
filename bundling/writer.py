"""Writing a bundle: model.pkl and model.json, as serving reads and checks them.

train.py and package.py describe a fitted pipeline; `write_bundle` pickles it, records the
pickle's SHA-256 and the versions that made it, and whether it is served as data (its numbers
scored with numpy, proven here to give the pipeline's own answers); then it checks model.json
exactly as a serving instance will, and only then replaces the old pair, both files at once.
"""

import datetime
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

import joblib
import numpy as np
import scipy
import sklearn

from serving.affine_softmax import affine_softmax
from serving.bundle import check_metadata


def write_bundle(pipeline, description, out_dir):
    """Pickle `pipeline` into out_dir/model.pkl and write out_dir/model.json from `description`
    (what the caller knows: name, task, data, fields, input, classes, class_names, pipeline,
    metrics, example, modules). Returns the metadata written."""
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
        # Served as data (without scikit-learn) only where the numpy scorer gives the pipeline's own answers.
        scorer = affine_softmax(pipeline)
        metadata["served_as"] = "data" if scorer is not None and agrees(scorer, pipeline) else "pipeline"
        # What a serving instance checks first, checked here before anything is replaced.
        check_metadata(metadata, out_dir)
        json_path = Path(staging) / "model.json"
        json_path.write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        os.replace(pickle_path, out_dir / "model.pkl")
        os.replace(json_path, out_dir / "model.json")
    if (out_dir / "requirements.txt").is_file():
        pin_pandas(out_dir / "requirements.txt", metadata["input"] == "dataframe")
    return metadata


def agrees(scorer, pipeline, count=512):
    """Whether the scorer gives the pipeline's classes, and its probabilities within 1e-9, on
    points spread well beyond the training data."""
    scaler = pipeline.steps[0][1]
    mean = scaler.mean_ if scaler.mean_ is not None else 0.0  # None: StandardScaler(with_mean=False, with_std=False)
    scale = scaler.scale_ if scaler.scale_ is not None else 1.0
    probe = mean + scale * np.random.default_rng(0).normal(scale=3.0, size=(count, scaler.n_features_in_))
    fast, exact = scorer.predict_proba(probe), pipeline.predict_proba(probe)
    return (np.allclose(fast, exact, rtol=0, atol=1e-9)
            and np.array_equal(pipeline.classes_[fast.argmax(axis=1)], pipeline.predict(probe)))


PANDAS_NOTE = "# model.pkl's pipeline takes a pandas DataFrame (this pin and note are the bundle writer's)"


def pin_pandas(requirements, needed):
    """requirements.txt pins pandas (the version installed here) exactly when the model needs it:
    deployed, it costs a model that doesn't a cold start's import and its memory."""
    lines = requirements.read_text().splitlines()
    if PANDAS_NOTE in lines:
        at = lines.index(PANDAS_NOTE)
        del lines[at:at + 2]
    if needed:
        from importlib.metadata import version

        lines += [PANDAS_NOTE, f"pandas=={version('pandas')}"]
    requirements.write_text("\n".join(lines) + "\n")

