"""Which Cloud Functions Python runtimes can install requirements.txt?

Asks pip, without installing anything, whether every pin has a wheel for x86-64 Linux on
each runtime's Python (no source builds: Cloud Functions' build should not compile).

    python scripts/wheels.py requirements.txt

Prints a line per runtime; exits 1 if a supported runtime (SUPPORTED below) has lost its wheels.
"""

import subprocess
import sys
import tempfile

RUNTIMES = {"python310": "3.10", "python311": "3.11", "python312": "3.12", "python313": "3.13", "python314": "3.14"}
# The runtimes the README promises. scikit-learn 1.9 and numpy 2.4 need Python 3.11 or newer.
SUPPORTED = ["python311", "python312", "python313", "python314"]
PLATFORMS = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64"]


def has_wheels(requirements, python_version):
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                   "--only-binary=:all:", "--python-version", python_version, "--dest", folder, "-r", requirements]
        for platform in PLATFORMS:
            command += ["--platform", platform]
        result = subprocess.run(command, capture_output=True, text=True)
    missing = [line for line in result.stderr.splitlines() if "No matching distribution" in line]
    return result.returncode == 0, (missing[0] if missing else result.stderr.strip()[-300:])


def main():
    requirements = sys.argv[1] if len(sys.argv) > 1 else "requirements.txt"
    lost = []
    for runtime, version in RUNTIMES.items():
        ok, why = has_wheels(requirements, version)
        print(f"{runtime:10} Python {version}: {'wheels for every pin' if ok else 'NOT installable: ' + why}")
        if runtime in SUPPORTED and not ok:
            lost.append(runtime)
    if lost:
        print(f"FAIL: {', '.join(lost)} promised in the README but not installable")
        return 1
    print(f"supported: {', '.join(SUPPORTED)} (recommended: --runtime=python312)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
