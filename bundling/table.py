"""A CSV read as train.py and package.py take it: a table, or one DataError saying in a line why
the file isn't one (no such file, a folder, empty, not text, a header without rows, a column name
given twice, a number the function would refuse to be sent)."""

import codecs
import lzma
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

from bundling.fields import DataError
from serving.fields import MAX_MAGNITUDE

# pandas opens these itself, by their name: compressed, they are not text to check here.
COMPRESSED = {".gz", ".bz2", ".zip", ".xz", ".zst", ".tar", ".tgz"}
CHUNK_BYTES = 1 << 20
LIKELY_SEPARATORS = (";", "\t", "|")


def existing_file(path):
    """`path` as a Path, if it names a file; else a DataError saying what it names instead."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    return path


def check_text(path):
    """That the file is UTF-8 text (a BOM allowed), else where it isn't: an image, a zip or a
    spreadsheet named .csv, or text saved in another encoding, would otherwise come out as
    pandas' error, or as columns of garbage (NUL bytes are valid UTF-8)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(CHUNK_BYTES), b""):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as err:
                # err.object is the decoder's undecoded tail (part of one character, no newline) and this chunk.
                where = line + err.object[:err.start].count(b"\n")
                raise DataError(f"{path}: not a text file: byte 0x{err.object[err.start]:02x} on line {where} isn't UTF-8 "
                                f"(save it as CSV UTF-8)") from None
            if "\0" in text:
                where = line + text[:text.index("\0")].count("\n")
                raise DataError(f"{path}: not a text file: it holds a NUL byte on line {where}")
            line += text.count("\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text file: it ends in the middle of a UTF-8 character") from None


def read_csv(path, sep=","):
    """The CSV at `path` as a pandas DataFrame, its lines in order (line i + 2 of the file is row i)."""
    import pandas as pd

    path = existing_file(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    if path.suffix.lower() not in COMPRESSED:
        check_text(path)
    # index_col=False: else a line with one value more than the header makes pandas take the first
    # column for an index, and every value moves one column left; it warns instead, an error here.
    options = {"sep": sep, "index_col": False}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, **options)
            header = pd.read_csv(path, header=None, nrows=1, dtype=str, na_filter=False, **options).iloc[0].tolist()
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: holds no header and no rows") from None
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: a line has more values than the header has names") from None
    # pandas says why it read no table in a ValueError (its ParserError too); a broken archive, in its own error.
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError) as err:
        raise DataError(f"{path}: not a readable CSV ({type(err).__name__}: {err})") from None
    if table.empty:
        raise DataError(f"{path}: has a header but no rows")
    named_twice(path, header)
    return table


def named_twice(path, header):
    """A DataError if two columns have the same name: pandas would call the second "name.1",
    a column nobody named, and train or describe it as one."""
    seen = {}
    for position, name in enumerate(header, start=1):
        if name and name in seen:
            raise DataError(f"{path}: columns {seen[name]} and {position} are both named {name!r}; rename one")
        seen.setdefault(name, position)


def separator_hint(table, sep=","):
    """What to say of a table read as a single column whose name holds another likely separator."""
    if table.shape[1] == 1:
        found = [other for other in LIKELY_SEPARATORS if other != sep and other in str(table.columns[0])]
        if found:
            return f"its one column is named {str(table.columns[0])!r}: is it separated by {found[0]!r} rather than {sep!r}?"
    return ""


def check_numbers(path, table, columns):
    """That every number in `columns` is one a request may hold, finite and within serving's
    MAX_MAGNITUDE: the bundle's example and ranges come from them, and the function refuses to
    start on, or be sent, any beyond."""
    from pandas.api.types import is_float_dtype

    for column in columns:
        if not is_float_dtype(table[column]):
            continue  # 64-bit integers are all well within MAX_MAGNITUDE
        values = table[column].to_numpy(dtype=float, na_value=np.nan)
        beyond = np.flatnonzero(np.abs(values) > MAX_MAGNITUDE)  # false for a gap (NaN), true for the infinities
        if beyond.size:
            value, line = values[beyond[0]], table.index[beyond[0]] + 2
            if np.isinf(value):
                raise DataError(f"{path}: column {column!r} holds an infinite value, on line {line}")
            raise DataError(f"{path}: column {column!r} holds {value:g} on line {line}, beyond {MAX_MAGNITUDE:g}, the "
                            f"largest magnitude the function takes; correct or remove that line")
