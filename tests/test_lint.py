"""The code is ruff clean, with the settings in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_the_code_is_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--no-cache", str(ROOT)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
