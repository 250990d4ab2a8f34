"""Deploy the bundle with gcloud: exactly the archive's files, entry point `predict`.

    FUNCTION=iris-function REGION=us-central1 RUNTIME=python312 python scripts/deploy.py FILE...

FUNCTION defaults to the model's name from model.json, and "-function": iris-function.

The function requires authentication unless PUBLIC=1. With DRY_RUN=1, or without gcloud
installed, it prints the command instead of running it.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def deploy_command(function, region, runtime, source, public):
    return [
        "gcloud", "functions", "deploy", function,
        "--gen2", f"--runtime={runtime}", f"--region={region}", f"--source={source}",
        "--entry-point=predict", "--trigger-http",
        "--allow-unauthenticated" if public else "--no-allow-unauthenticated",
    ]


def main(files):
    function = os.environ.get("FUNCTION") or json.loads(Path("model.json").read_text())["name"] + "-function"
    region = os.environ.get("REGION") or "us-central1"
    runtime = os.environ.get("RUNTIME") or "python312"
    public = os.environ.get("PUBLIC") == "1"
    dry_run = os.environ.get("DRY_RUN") == "1"
    gcloud = shutil.which("gcloud")
    # A folder holding exactly what archive.zip holds: gcloud uploads the whole --source.
    staging = Path("build/function-source")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in files:
        shutil.copy(name, staging / Path(name).name)
    command = deploy_command(function, region, runtime, staging, public)
    printable = shlex.join(command)
    if dry_run or not gcloud:
        print(printable)
        print(f"{staging}: {', '.join(sorted(path.name for path in staging.iterdir()))}")
        if not gcloud:
            print("not deployed: gcloud is not installed (https://cloud.google.com/sdk/docs/install); "
                  "install it, then `gcloud auth login` and `gcloud config set project PROJECT_ID`")
        else:
            print("not deployed: DRY_RUN=1")
        return 0
    print(f"+ {printable}", flush=True)
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
