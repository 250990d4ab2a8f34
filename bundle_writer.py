"""Writing a bundle: model.pkl and model.json, as serving reads and checks them.

train.py and package.py describe a fitted pipeline; `write_bundle` pickles it, records the
pickle's SHA-256, the versions that made it, the linear scorer where the pipeline has one (and
gives the same answers), and model.json's own SHA-256; then it checks the pair exactly as a
serving instance will, and only then replaces the old pair, both files at once.
"""

import datetime
import hashlib
import json
import os
import platform
import re
import tempfile
from pathlib import Path

import joblib
import numpy as np
import scipy
import sklearn

from model_loader import AffineSoftmax, affine_softmax, agrees, check_metadata, metadata_digest


def model_name(text):
    """A model's name, as the Open Inference Protocol and a Cloud Function name take it: "Penguins
    (2020).csv" -> "penguins-2020"."""
    name = re.sub(r"[^a-z0-9]+", "-", Path(str(text)).stem.lower()).strip("-")[:40].strip("-")
    return name if name[:1].isalpha() else f"model-{name}".strip("-")


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
            "trained_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **{key: value for key, value in description.items() if key not in ("name", "task")},
            "versions": {
                "python": platform.python_version(),
                "scikit-learn": sklearn.__version__,
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "joblib": joblib.__version__,
            },
        }
        # The numbers a new instance answers with until it has unpickled model.pkl itself;
        # written only if they give the pipeline's own answers.
        scorer = affine_softmax(pipeline)
        if scorer is not None and agrees(scorer, pipeline):
            metadata["scorer"] = scorer.as_json(pickle_sha256)
        metadata["metadata_sha256"] = metadata_digest(metadata)
        # What a serving instance checks first, checked here before anything is replaced.
        check_metadata(metadata, out_dir)
        AffineSoftmax.from_metadata(metadata)
        json_path = Path(staging) / "model.json"
        json_path.write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n")
        os.replace(pickle_path, out_dir / "model.pkl")
        os.replace(json_path, out_dir / "model.json")
    return metadata

