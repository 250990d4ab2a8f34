"""What ships in archive.zip, from the one list of it: .gcloudignore, which gcloud reads too.

    python scripts/shipped.py                   one path a line, in the order they are zipped
    python scripts/shipped.py --zip archive.zip  archive.zip made of them, each at its path

.gcloudignore ignores everything (`*`), then lets through each `!name` (a file) and each
`!folder/` with `!folder/**` (a folder, shipped whole); `**/__pycache__/` stays out, wherever
that line stands (make package appends a model's own modules after it). Only that
much of gcloud's syntax is used, and only that much is read here: anything else is an error.
Standard library only: it runs under any Python, outside the project's virtual environments.
"""

import sys
import zipfile
from pathlib import Path

LIST = ".gcloudignore"
NEVER = "**/__pycache__/"


def shipped_files(root="."):
    """The files .gcloudignore lets through, relative to `root`, in its order (a folder's sorted)."""
    root = Path(root)
    lines = [line.strip() for line in (root / LIST).read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if lines[:1] != ["*"] or NEVER not in lines:
        raise ValueError(f"{LIST} must open with * and hold {NEVER}")
    files = []
    for line in lines[1:]:
        if line == NEVER:
            continue
        if not line.startswith("!"):
            raise ValueError(f"{LIST}: {line!r} is not a !name line")
        name = line[1:]
        if name.endswith("/**"):
            continue  # the folder's contents, listed with the folder itself
        if name.endswith("/"):
            folder = root / name
            files += sorted(str(path.relative_to(root)) for path in folder.rglob("*")
                            if path.is_file() and "__pycache__" not in path.parts)
        else:
            files.append(name)
    return files


def write_archive(path, root="."):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in shipped_files(root):
            archive.write(Path(root) / name, name)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--zip"]:
        write_archive(sys.argv[2])
    else:
        print("\n".join(shipped_files()))
