"""Deploy archive.zip with gcloud: the one deploy source, entry point `predict`.

    FUNCTION=iris-function REGION=us-central1 RUNTIME=python312 MEMORY=256Mi python scripts/deploy.py archive.zip

FUNCTION defaults to the model's name from model.json, and "-function": iris-function. MEMORY is
the instance's memory, which also sets its CPU (make bench measures each tier).

The function requires authentication unless PUBLIC=1. With DRY_RUN=1, or without gcloud
installed, it prints the command instead of running it.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

# gcloud uploads a folder (or a zip already in Cloud Storage): archive.zip, unzipped here, is that folder.
STAGING = Path("build/function-source")


def deploy_command(function, region, runtime, memory, source, public):
    return [
        "gcloud", "functions", "deploy", function,
        "--gen2", f"--runtime={runtime}", f"--region={region}", f"--memory={memory}", f"--source={source}",
        "--entry-point=predict", "--trigger-http",
        "--allow-unauthenticated" if public else "--no-allow-unauthenticated",
    ]


def main(archive):
    env = os.environ.get
    function = env("FUNCTION") or json.loads(Path("model.json").read_text())["name"] + "-function"
    gcloud = shutil.which("gcloud")
    shutil.rmtree(STAGING, ignore_errors=True)
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(STAGING)
    command = deploy_command(function, env("REGION") or "us-central1", env("RUNTIME") or "python312",
                             env("MEMORY") or "256Mi", STAGING, env("PUBLIC") == "1")
    printable = shlex.join(command)
    if env("DRY_RUN") == "1" or not gcloud:
        print(printable)
        print(f"{STAGING}: {archive} unzipped, {sum(1 for path in STAGING.rglob('*') if path.is_file())} files")
        if not gcloud:
            print("not deployed: gcloud is not installed (https://cloud.google.com/sdk/docs/install); "
                  "install it, then `gcloud auth login` and `gcloud config set project PROJECT_ID`")
        else:
            print("not deployed: DRY_RUN=1")
        return 0
    print(f"+ {printable}", flush=True)
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "archive.zip"))
