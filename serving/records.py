"""model.pkl read as data, without scikit-learn, scipy, pandas or joblib.

A pickle is a program: each class or function it names is looked up and called. `read` runs that
program with every name replaced by something that runs nobody's code:

- a class the caller covers (a name in `kinds`, such as a scikit-learn estimator), and the random
  generators a fitted estimator keeps, become a Record: the name, the arguments and the state it
  was pickled with, nothing else;
- numpy's array, dtype and scalar constructors become checked wrappers, whose sizes are bounded
  by the file's own;
- a few containers (set, frozenset, slice, OrderedDict), and numpy's ufuncs and scalar types as
  values (a FunctionTransformer's np.log1p, an encoder's dtype=np.float64), by exact name;
- anything else is refused, before anything is imported: nothing here ever imports a name the
  pickle gives.

Only the record types and the wrappers can be called; a ufunc or numpy.ndarray is a value only.
joblib.dump writes each numpy array as a NumpyArrayWrapper object followed by the array's raw
bytes (object arrays as a pickle of their own); `read` reads them as joblib's NumpyUnpickler does.
Memory is linear in the file's size (its bytes, and a bounded multiple for the objects its
opcodes make), and the file is at most MAX_PICKLE_BYTES.

A file joblib.dump compressed (compress=3, or ("gzip", 9), say) is the same stream wrapped by one of
the standard library's compressors: `uncompressed` unwraps it, and stops at MAX_PICKLE_BYTES of
output, so that a small file that decompresses to gigabytes is refused, not held.
"""

import builtins
import bz2
import io
import lzma
import math
import pickle
import struct
import sys
import zlib
from collections import OrderedDict

import numpy as np

MAX_PICKLE_BYTES = 500 * 1024 * 1024
DECOMPRESS_STEP = 8 * 1024 * 1024  # bytes a compressed model.pkl is decompressed by at a time
# Hashing a tuple walks all its parts, and a tuple can hold the same tuple twice at every level
# (2**depth parts from a few bytes): a dict key or set item may have at most this many parts.
MAX_KEY_PARTS = 10_000
ARRAY_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
# An lzma or xz file names the window its decompressor keeps (up to 4 GiB); joblib's, at its strongest
# preset, needs 65 MiB.
LZMA_MEMORY = 128 * 1024 * 1024
# joblib.dump(compress=...)'s formats, by the prefixes joblib's compressor.py detects them by, and
# the standard library's decompressor of each.
DECOMPRESSORS = {
    b"\x78": ("zlib", lambda: zlib.decompressobj(zlib.MAX_WBITS)),
    b"\x1f\x8b": ("gzip", lambda: zlib.decompressobj(16 + zlib.MAX_WBITS)),
    b"BZ": ("bz2", bz2.BZ2Decompressor),
    b"\xfd7zXZ": ("xz", lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=LZMA_MEMORY)),
    b"\x5d\x00": ("lzma", lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE, memlimit=LZMA_MEMORY)),
}
UNREAD_COMPRESSIONS = {
    b"\x04\x22\x4d\x18": "it is compressed with lz4, which Python's standard library does not read",
    b"ZF": "it is in the compressed format of joblib before 0.10, which joblib itself no longer writes",
}
# Random generators a fitted estimator keeps (GradientBoosting's _rng, say): no use for scoring,
# so they are records, never constructed.
RANDOM_STATE_KINDS = frozenset({
    "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor", "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence", "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64", "numpy.random._pcg64.PCG64DXSM", "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64", "numpy.random.mtrand.RandomState",
})
UFUNCS = (
    "absolute", "arcsinh", "cbrt", "exp", "exp2", "expm1", "log", "log10", "log1p", "log2", "negative",
    "reciprocal", "sign", "sqrt", "square", "tanh",
)
SCALAR_TYPES = (
    "bool", "bool_", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8",
    "uint16", "uint32", "uint64", "complex64", "complex128", "object_", "str_", "bytes_",
)
BUILTIN_TYPES = ("object", "bool", "int", "float", "complex", "str")
# Protocols 0-2 spell these modules as Python 2 did.
PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
PARTIAL_STATE = ("func", "args", "keywords", "namespace")


class RecordError(Exception):
    """model.pkl can't be read as data; the message is one line saying why."""


class Record:
    """One object of model.pkl read as data: the class it names, and what it was pickled with."""

    def __init__(self, kind, args=(), state=None):
        self.kind = kind  # "module.Name" as the pickle names it
        self.args = tuple(args)  # constructor arguments the pickle gave; () usually
        self.state = {} if state is None else state  # an estimator's __dict__, as pickled

    def __setstate__(self, state):
        self.state = _state_as_dict(self.kind, state)

    def __repr__(self):
        return f"<Record {self.kind}>"


class _MadeRecord(Record):
    """The base of the classes `read` hands the pickle for a kind: calling one makes a Record."""

    kind = ""

    def __new__(cls, *args, **kwargs):
        if kwargs:
            raise RecordError(f"it makes a {cls.kind} with keyword arguments, which a record does not keep")
        record = object.__new__(cls)
        Record.__init__(record, cls.kind, args)
        return record

    def __init__(self, *args, **kwargs):
        pass  # __new__ kept the arguments


def _record_type(kind):
    return type(kind.rpartition(".")[2], (_MadeRecord,), {"kind": kind, "__module__": __name__})


def _state_as_dict(kind, state):
    """The state BUILD gives a record, as a dict: an object's __dict__ as it is, (__dict__, slot values)
    merged, functools.partial's (func, args, keywords, namespace) by name, anything else (a Cython
    object's tuple, say) under "__state__"."""
    if type(state) is dict:
        return state
    if type(state) is tuple and kind == "functools.partial" and len(state) == 4:
        return dict(zip(PARTIAL_STATE, state))
    if type(state) is tuple and len(state) == 2 and all(part is None or type(part) is dict for part in state):
        merged = dict(state[0] or {})  # the slots are attributes too
        merged.update(state[1] or {})
        return merged
    return {"__state__": state}


def read(content: bytes, kinds) -> Record:
    """The object in joblib.dump's (or pickle.dump's) bytes, every class in it a Record. `kinds`
    says which classes may be read as records: "module.Name" in kinds (a set, or scorers.SERVED)."""
    if not isinstance(content, (bytes, bytearray)):
        raise RecordError(f"it should be bytes, not {type(content).__name__}")
    content = uncompressed(content)
    if not content.startswith(b"\x80"):
        raise RecordError("it is not a pickle of protocol 2 or later (it does not start with 0x80)")
    stream = io.BytesIO(content)
    try:
        found = _DataUnpickler(stream, kinds, nested=False, size=len(content)).load()
    except RecordError as error:  # its text may quote the pickle's (a dtype's field names): one line, short
        raise RecordError(_one_line(error, with_type=False)) from None
    except RecursionError:
        raise RecordError("it nests its objects too deeply to read") from None
    except Exception as error:  # a malformed stream fails in many ways; each is one line here
        raise RecordError(f"it can't be read: {_one_line(error)}") from None
    if not isinstance(found, Record):
        raise RecordError(f"it holds a {type(found).__name__}, not an object of a class read as data")
    return found


def uncompressed(content):
    """The pickle in `content`: the bytes themselves, or those joblib.dump compressed, decompressed;
    RecordError if it is over MAX_PICKLE_BYTES either way, or compressed otherwise."""
    if len(content) > MAX_PICKLE_BYTES:
        raise RecordError(f"it has {len(content)} bytes, over the {MAX_PICKLE_BYTES} read as data")
    if content.startswith(b"\x80"):
        return content
    for prefix, why in UNREAD_COMPRESSIONS.items():
        if content.startswith(prefix):
            raise RecordError(f"{why}: write it with joblib.dump(pipeline, file, compress=3) (zlib), or without compress")
    compression, decompressor = next(((name, make()) for prefix, (name, make) in DECOMPRESSORS.items()
                                      if content.startswith(prefix)), (None, None))
    if decompressor is None:
        return content  # not compressed either: `read` says what it is not
    try:
        found = _decompressed(decompressor, content, compression)
    except (OSError, ValueError, zlib.error, lzma.LZMAError) as error:
        raise RecordError(f"it is neither a pickle nor a {compression} stream as joblib.dump(compress=...) writes one "
                          f"({_one_line(error)})") from None
    if not decompressor.eof:
        raise RecordError(f"it is compressed ({compression}) but ends inside its compressed stream: is the file whole?")
    if decompressor.unused_data:
        raise RecordError(f"it is compressed ({compression}) and has bytes after its compressed stream, which joblib.dump "
                          "does not write")
    return found


def _decompressed(decompressor, content, compression):
    """What `decompressor` makes of `content`, DECOMPRESS_STEP bytes at a time, so that it stops just
    past MAX_PICKLE_BYTES: a single call could hold twice that before saying how much it made."""
    found, pending = bytearray(), content
    while not decompressor.eof:
        piece = decompressor.decompress(pending, DECOMPRESS_STEP)
        # zlib hands back the input it has not read yet; bz2 and lzma keep it, and ask for more when done
        pending = getattr(decompressor, "unconsumed_tail", b"")
        if not piece and not pending and getattr(decompressor, "needs_input", True):
            break  # the input is used up before the stream's end
        found += piece
        if len(found) > MAX_PICKLE_BYTES:
            raise RecordError(f"it is compressed ({compression}) and decompresses to over the {MAX_PICKLE_BYTES} bytes "
                              "read as data")
    return bytes(found)


def walk(record):
    """Every Record in `record` and nested in its state (in lists, tuples and dicts too), each once,
    however the pickle made them refer to each other."""
    seen, pending = set(), [record]
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, Record):
            yield value
            pending.extend(value.state.values() if isinstance(value.state, dict) else (value.state,))
            pending.extend(value.args)
        elif isinstance(value, (list, tuple)):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())


def _one_line(error, with_type=True):
    text = "".join(character if character.isprintable() else " " for character in str(error)[:300])
    return f"{type(error).__name__}: {text}" if with_type else text


def _names():
    """(module, name) -> what find_class gives for it, besides the caller's kinds: the whole list."""
    table = {}
    for kind in RANDOM_STATE_KINDS | {ARRAY_WRAPPER}:
        module, _, name = kind.rpartition(".")
        table[(module, name)] = _record_type(kind)
    for spelling in ("numpy._core", "numpy.core"):  # numpy 2 and numpy 1
        table[(f"{spelling}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{spelling}.multiarray", "scalar")] = _scalar
        table[(f"{spelling}.numeric", "_frombuffer")] = _frombuffer
    table[("numpy", "dtype")] = _dtype
    table[("numpy", "ndarray")] = np.ndarray
    for name in UFUNCS:
        table[("numpy", name)] = getattr(np, name)
    for name in SCALAR_TYPES:
        table[("numpy", name)] = getattr(np, name)
    for name in BUILTIN_TYPES:
        table[("builtins", name)] = getattr(builtins, name)
    table[("builtins", "set")] = _set
    table[("builtins", "frozenset")] = _frozenset
    table[("builtins", "slice")] = _slice
    table[("collections", "OrderedDict")] = _ordered_dict
    table[("copyreg", "_reconstructor")] = _reconstructor
    table[("_codecs", "encode")] = _encode
    table[("builtins", "bytes")] = _empty_bytes
    return table


def _is_size(value):
    return type(value) is int and value >= 0


def _check_shape(shape):
    if type(shape) is not tuple or not all(_is_size(size) for size in shape) or len(shape) > 32:
        raise RecordError("it gives an array a shape that is not a tuple of sizes")
    return math.prod(shape)


def _check_dtype(dtype):
    if not isinstance(dtype, np.dtype):
        raise RecordError(f"it gives an array a dtype of type {type(dtype).__name__}")
    if dtype.itemsize == 0:
        raise RecordError(f"it has an array of dtype {dtype}, whose items have no size")
    return dtype


def _check_key(key):
    """Refuse a dict key or set item whose hash would walk more than MAX_KEY_PARTS parts."""
    pending, parts = [key], 0
    while pending:
        part = pending.pop()
        parts += 1
        if parts > MAX_KEY_PARTS:
            raise RecordError(f"it has a dict key or set item of more than {MAX_KEY_PARTS} parts")
        if type(part) is tuple:
            pending.extend(part)


# The wrappers below stand for the few callables a pickle of a pipeline needs; each checks its
# arguments, so that no call can allocate more than the file holds or run for long.


def _reconstruct(subtype, shape, dtype):
    """numpy's pickles start an array as numpy._core.multiarray._reconstruct(ndarray, (0,), b'b'); BUILD fills it."""
    if subtype is not np.ndarray or type(shape) is not tuple or shape != (0,) or type(dtype) not in (bytes, str) or (
            dtype not in (b"b", "b")):
        raise RecordError("it starts an array other than numpy's pickles do")
    return np.ndarray((0,), np.int8)


def _frombuffer(buffer, dtype, shape, order, axis_order=None):
    """numpy._core.numeric._frombuffer, for arrays pickled with protocol 5: a view of bytes in the pickle."""
    if type(buffer) not in (bytes, bytearray):
        raise RecordError(f"it gives an array's data as a {type(buffer).__name__}")
    count = _check_shape(shape)
    if _check_dtype(dtype).hasobject or count * dtype.itemsize != len(buffer):
        raise RecordError(f"it gives an array of shape {shape} and dtype {dtype} {len(buffer)} bytes")
    if type(order) is not str:
        raise RecordError("it gives an array an order that is not a letter")
    array = np.frombuffer(buffer, dtype=dtype)
    if order == "K" and axis_order is not None:
        if type(axis_order) is not tuple or sorted(axis_order) != list(range(len(shape))):
            raise RecordError("it gives an array an axis order that is not one of its axes")
        return array.reshape(shape, order="C").transpose(axis_order)
    if order not in ("C", "F"):
        raise RecordError("it gives an array an order other than C or F")
    return array.reshape(shape, order=order)


def _scalar(dtype, data=None):
    """numpy._core.multiarray.scalar: a numpy number from its dtype and bytes."""
    if _check_dtype(dtype).kind == "O":
        return data
    if type(data) is not bytes or len(data) != dtype.itemsize:
        raise RecordError(f"it gives a numpy {dtype} scalar other than {dtype.itemsize} bytes")
    return np.frombuffer(data, dtype=dtype)[0]


def _dtype(spec, align=False, copy=True):
    """numpy.dtype(spec, align, copy); always a copy, so that BUILD can't change numpy's own dtypes."""
    if type(spec) is not str or len(spec) > 32 or type(align) is not bool:
        raise RecordError("it makes a numpy dtype from something other than a short name")
    return np.dtype(spec, align=align, copy=True)


def _set(items=()):
    if type(items) not in (list, tuple, set, frozenset):
        raise RecordError(f"it makes a set from a {type(items).__name__}")
    for item in items:
        _check_key(item)
    return set(items)


def _frozenset(items=()):
    return frozenset(_set(items))


def _slice(*bounds):
    if not 1 <= len(bounds) <= 3 or not all(bound is None or type(bound) is int for bound in bounds):
        raise RecordError("it makes a slice of something other than whole numbers")
    return slice(*bounds)


def _ordered_dict(items=()):
    if type(items) not in (list, tuple) or not all(type(pair) in (list, tuple) and len(pair) == 2 for pair in items):
        raise RecordError("it makes an OrderedDict from something other than pairs")
    for key, _ in items:
        _check_key(key)
    return OrderedDict(items)


def _reconstructor(cls, base, state):
    """copyreg._reconstructor, as protocols 0 and 1 make an object: only a record, from object."""
    if not (isinstance(cls, type) and issubclass(cls, _MadeRecord)) or base is not object or state is not None:
        raise RecordError("it asks copyreg._reconstructor for something other than a record")
    return cls.__new__(cls)


def _encode(text, encoding):
    """_codecs.encode(text, 'latin1'): how protocols 0-2 write bytes."""
    if type(text) is not str or type(encoding) is not str or encoding != "latin1":
        raise RecordError("it asks _codecs.encode for something other than bytes as latin1")
    return text.encode("latin-1")


def _empty_bytes(*args):
    """builtins.bytes(): how protocols 0-2 write b"" (other bytes go through _codecs.encode)."""
    if args:
        raise RecordError("it calls bytes with arguments")
    return b""


WRAPPERS = (
    _reconstruct, _frombuffer, _scalar, _dtype, _set, _frozenset, _slice, _ordered_dict, _reconstructor, _encode,
    _empty_bytes,
)


def _check_callable(func):
    # By identity: `func in a set` would hash whatever the pickle put there.
    if isinstance(func, type) and issubclass(func, _MadeRecord):
        return
    if not any(func is wrapper for wrapper in WRAPPERS):
        raise RecordError(f"it calls a {type(func).__name__}, which is read as a value only")


def _check_array_state(state):
    """What BUILD gives a numpy array: (1, shape, dtype, is_fortran, data), data the right size."""
    if type(state) is not tuple or len(state) != 5 or type(state[0]) is not int or state[0] != 1 or (
            type(state[3]) is not bool):
        raise RecordError("it fills an array with a state other than numpy's")
    _, shape, dtype, _, data = state
    count = _check_shape(shape)
    if _check_dtype(dtype).hasobject:
        if type(data) is not list or len(data) != count:
            raise RecordError(f"it fills an object array of shape {shape} with other than {count} objects")
    elif type(data) not in (bytes, bytearray) or len(data) != count * dtype.itemsize:
        raise RecordError(f"it fills an array of shape {shape} and dtype {dtype} with the wrong bytes")


def _check_dtype_state(dtype, state):
    """numpy's dtype.__setstate__ trusts its state (a field past the end of an item would be read past
    the end of the array): it must be the very state numpy gives the dtype its public constructor
    makes of the same description, a simple dtype in a byte order, or a record of simple fields."""
    if type(state) is not tuple or len(state) != 8 or state[2] is not None or type(state[1]) is not str:
        raise RecordError("it sets a numpy dtype's state to other than numpy's")
    names, fields, itemsize = state[3], state[4], state[5]
    if names is None:
        expected = dtype.newbyteorder(state[1]) if state[1] in ("<", ">") else dtype
    else:
        expected = _record_dtype(names, fields, itemsize)
    if expected.__reduce__()[2] != state:
        raise RecordError("it sets a numpy dtype's state to other than numpy's")


def _record_dtype(names, fields, itemsize):
    """numpy's own dtype of these fields (names, and name: (simple dtype, offset)), which it checks."""
    if type(names) is not tuple or not all(type(name) is str for name in names) or type(fields) is not dict or (
            len(fields) != len(names)) or type(itemsize) is not int:
        raise RecordError("it describes a numpy record dtype other than numpy does")
    formats, offsets = [], []
    for name in names:
        field = fields.get(name)
        if type(field) is not tuple or len(field) != 2 or not isinstance(field[0], np.dtype) or (
                field[0].fields is not None or field[0].subdtype is not None or type(field[1]) is not int):
            raise RecordError(f"it gives the numpy record field {name[:100]!r} other than a dtype and offset")
        formats.append(field[0])
        offsets.append(field[1])
    return np.dtype({"names": list(names), "formats": formats, "offsets": offsets, "itemsize": itemsize})


def _byte_order_differs(dtype):
    """joblib's _is_numpy_array_byte_order_mismatch: the array was written on a machine of the other endianness."""
    other = ">" if sys.byteorder == "little" else "<"
    if dtype.byteorder == other:
        return True
    fields = dtype.fields
    return dtype.byteorder == "|" and bool(fields) and all(field[0].byteorder == other for field in fields.values())


class _DataUnpickler(pickle._Unpickler):
    """pickle's pure-Python unpickler (as joblib uses) with every way to call or change an object checked."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, stream, kinds, nested, size):
        super().__init__(stream)
        self._stream = stream
        self._size = size  # of the whole file (BytesIO.getbuffer would copy it)
        self._kinds = kinds
        self._names = _names()
        self._nested = nested  # inside an object array's own pickle, where joblib writes no arrays of its own

    def find_class(self, module, name):
        if self.proto < 3:
            module = PYTHON2_MODULES.get(module, module)
        found = self._names.get((module, name))
        if found is None and f"{module}.{name}" in self._kinds:  # a string looked up: nothing is imported
            found = self._names[(module, name)] = _record_type(f"{module}.{name}")
        if found is None:
            raise RecordError(f"it asks for {module[:100]}.{name[:100]}, which is not read as data")
        return found

    def _instantiate(self, klass, args):  # INST and OBJ, protocols 0 and 1
        _check_callable(klass)
        self.append(klass(*args))

    def load_reduce(self):
        args = self.stack.pop()
        _check_callable(self.stack[-1])
        if type(args) is not tuple:
            raise RecordError(f"it calls with arguments in a {type(args).__name__}")
        self.stack[-1] = self.stack[-1](*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self._append_new(cls, args, {})

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        self._append_new(cls, args, kwargs)

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _append_new(self, cls, args, kwargs):
        if not (isinstance(cls, type) and issubclass(cls, _MadeRecord)):
            raise RecordError(f"it makes a new {type(cls).__name__} object, which is read as a value only")
        if type(args) is not tuple or type(kwargs) is not dict:
            raise RecordError(f"it makes a {cls.kind} with arguments other than a tuple and a dict")
        self.append(cls.__new__(cls, *args, **kwargs))

    def load_build(self):
        state = self.stack.pop()
        target = self.stack[-1]
        if isinstance(target, Record):
            target.__setstate__(state)
            if target.kind == ARRAY_WRAPPER:
                self.stack[-1] = self._read_wrapped_array(target)
        elif type(target) is np.ndarray:
            _check_array_state(state)
            target.__setstate__(state)
        elif isinstance(target, np.dtype):
            _check_dtype_state(target, state)
            target.__setstate__(state)
        else:
            raise RecordError(f"it sets the state of a {type(target).__name__}, which is read as a value only")

    dispatch[pickle.BUILD[0]] = load_build

    def load_append(self):
        value = self.stack.pop()
        self._list_on_top().append(value)

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self):
        items = self.pop_mark()
        self._list_on_top().extend(items)

    dispatch[pickle.APPENDS[0]] = load_appends

    def _list_on_top(self):
        if type(self.stack[-1]) is not list:
            raise RecordError(f"it appends to a {type(self.stack[-1]).__name__}")
        return self.stack[-1]

    def load_setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items([key, value])

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        self._set_items(self.pop_mark())

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def _set_items(self, items):
        mapping = self.stack[-1]
        if type(mapping) not in (dict, OrderedDict):
            raise RecordError(f"it sets items of a {type(mapping).__name__}")
        for index in range(0, len(items), 2):
            _check_key(items[index])
            mapping[items[index]] = items[index + 1]

    def load_dict(self):
        items = self.pop_mark()
        self.append({})
        self._set_items(items)

    dispatch[pickle.DICT[0]] = load_dict

    def load_additems(self):
        items = self.pop_mark()
        if type(self.stack[-1]) is not set:
            raise RecordError(f"it adds items to a {type(self.stack[-1]).__name__}")
        self.stack[-1].update(_set(items))

    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_frozenset(self):
        self.append(_frozenset(self.pop_mark()))

    dispatch[pickle.FROZENSET[0]] = load_frozenset

    def load_bytearray8(self):
        # pickle's own allocates the announced size before reading it: at most the file's size here.
        (size,) = struct.unpack("<Q", self.read(8))
        if size > self._size:
            raise RecordError("it announces a bytearray larger than itself")
        data = bytearray(size)
        if self.readinto(data) != size:
            raise RecordError("it ends inside a bytearray")
        self.append(data)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def _read_wrapped_array(self, wrapper):
        """The array joblib wrote right after this NumpyArrayWrapper (joblib's NumpyArrayWrapper.read_array)."""
        if self._nested:
            raise RecordError("it has a joblib array inside an object array's pickle")
        state = wrapper.state
        shape, order, dtype = state.get("shape"), state.get("order"), state.get("dtype")
        alignment = state.get("numpy_array_alignment_bytes")  # absent in joblib <= 1.1's files
        count = _check_shape(shape)
        if state.get("subclass") is not np.ndarray or order not in ("C", "F") or alignment not in (None, 16):
            raise RecordError("it has a joblib array wrapper other than joblib.dump writes")
        if _check_dtype(dtype).hasobject:  # written as a pickle of its own, whose names are checked the same
            array = _DataUnpickler(self._stream, self._kinds, nested=True, size=self._size).load()
            if type(array) is not np.ndarray:
                raise RecordError(f"it has a {type(array).__name__} where an object array was announced")
            return array
        self._check_frame_finished()
        if alignment is not None:  # one byte saying how many padding bytes follow it
            padding = self._read_raw(1)[0]
            self._read_raw(padding)
        data = self._read_raw(count * dtype.itemsize)
        array = np.frombuffer(data, dtype=dtype, count=count)
        array = array.reshape(shape[::-1]).transpose() if order == "F" else array.reshape(shape)
        if _byte_order_differs(dtype):
            array = array.byteswap().view(dtype.newbyteorder("="))
        return array

    def _check_frame_finished(self):
        # joblib ends the pickle frame before an array's bytes: they are read from the file itself.
        frame = self._unframer.current_frame
        if frame is not None and frame.read(1):
            raise RecordError("it has a joblib array's bytes inside a pickle frame")

    def _read_raw(self, size):
        if size > self._size - self._stream.tell():
            raise RecordError("it ends inside an array's data")
        data = bytearray(size)  # writable, like the arrays joblib reads
        self._stream.readinto(data)
        return data
