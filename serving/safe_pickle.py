"""Unpickling model.pkl, for a bundle someone said they trust.

Loading a pickle can run code: it names the functions and classes it needs, and unpickling calls
them (scikit-learn's own documentation says so:
https://scikit-learn.org/stable/model_persistence.html#security-maintainability-limitations).
An allow-list of classes does not make it safe either: unpickling, then calling a library's methods
on whatever state the file gave its objects, runs what the file chooses (a StackingClassifier calls
any method, named in its state, of any object in it).
So a bundle is read as data by default (serving/records.py: nothing in it runs), and comes here only
when model.json's `trust` names the libraries whose code it may run (make package TRUST=...), or
`modules` the bundle's own module files (MODULES=...).

Even then, each name the pickle gives is checked, before anything is imported, against a `Trust`:

- numpy's arrays, dtypes, scalar types and ufuncs, and its random generators' constructors, by
  exact name (numpy.random as a whole re-exports itertools.cycle); joblib's array wrapper,
  functools.partial, OrderedDict, defaultdict (LightGBM keeps its evaluation results in one),
  copyreg._reconstructor; and a few builtins that hold data;
- a class or function of a trusted library (its top-level packages, and scipy.sparse's matrices with
  scikit-learn's), or of one of the bundle's own module files, that is defined in the very module
  the pickle names, under that name: not a name the module merely imports (sklearn.base's copy);
  and, only as packaging probes a pickle whose every record passed its checks, the classes read as
  data (serving/scorers' kinds), by exact name;
- never anything in a module named `__main__`, or in a package's tests, f2py or distutils, whose
  import alone runs something (numpy.f2py.__main__ runs f2py's command line);
- and, where model.json lists them (`unpickles`, written by packaging), only the names it lists.

The bundle's own module is imported from the bundle's own file, never found on sys.path: `os.py`
beside main.py would otherwise be the standard library's os.
"""

import builtins
import importlib
import importlib.util
import io
import pickle
import re
import sys
from functools import cache
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

from joblib.numpy_pickle import NumpyUnpickler

# Modules whose import alone runs something, or that no pipeline is made of: refused in any package.
NEVER_IMPORTED = frozenset({"__main__", "tests", "test", "testing", "_testing", "conftest", "f2py", "distutils",
                            "_distutils", "_pytesttester", "setup"})
NUMPY_NAMES = {
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy.ma.core": {"_mareconstruct", "MaskedArray"},
    # The random generators a fitted estimator keeps, by exact name.
    "numpy.random._pickle": {"__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"},
    "numpy.random.bit_generator": {"SeedSequence", "__pyx_unpickle_SeedSequence"},
    "numpy.random.mtrand": {"RandomState"},
    "numpy.random._mt19937": {"MT19937"},
    "numpy.random._pcg64": {"PCG64", "PCG64DXSM"},
    "numpy.random._philox": {"Philox"},
    "numpy.random._sfc64": {"SFC64"},
}
# Containers that hold data, and the types a fitted step keeps as values (an encoder's dtype=float).
BUILTINS = frozenset({"slice", "set", "frozenset", "complex", "bytearray", "range", "object", "bool", "int", "float", "str"})
ALLOWED_ELSEWHERE = frozenset({("copyreg", "_reconstructor"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
                               ("functools", "partial"), ("joblib.numpy_pickle", "NumpyArrayWrapper")})
# Protocols 0-2 spell these modules as Python 2 did.
PYTHON2_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# What trusting a library also trusts: scikit-learn keeps scipy's sparse matrices in fitted state.
LIBRARY_EXTRAS = {"scikit-learn": ("scipy.sparse",)}
# What a pipeline needs of numpy is on its explicit list; trusting the rest (numpy.load, numpy.f2py,
# what numpy.random.bit_generator imports: itertools.cycle) would allow nothing a pipeline needs.
NEVER_TRUSTED = frozenset({"numpy"})


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asks for a function or class that is not allowed."""

    def __init__(self, module, name, why=""):
        super().__init__(f"it asks to load {module}.{name}, which is not allowed{': ' + why if why else ''}")
        self.module, self.name, self.why = module, name, why


class UnknownLibrary(ValueError):
    """A trusted library that is not installed here."""


def within(module, package):
    return module == package or module.startswith(package + ".")


def never_imported(module):
    return any(part in NEVER_IMPORTED for part in module.split("."))


def canonical(library):
    """A distribution's name as pip compares them: scikit_learn is scikit-learn."""
    return re.sub(r"[-_.]+", "-", library).lower()


@cache
def installed_library(library):
    """The installed distribution `library` names, as pip names it: by its own name, or by the module
    it is imported as, where a build of it under another name installed that (xgboost is xgboost-cpu
    where that build is installed rather than xgboost); UnknownLibrary if none is."""
    try:
        distribution(library)
        return canonical(library)
    except (PackageNotFoundError, ValueError):
        pass
    providers = {canonical(name) for name in packages_distributions().get(library, [])}
    if len(providers) != 1:
        raise UnknownLibrary(library)
    return providers.pop()


@cache
def library_modules(library):
    """The top-level packages an installed distribution (`library`, as pip names it) holds, and
    what trusting it also trusts; UnknownLibrary if it is not installed."""
    try:
        files = distribution(library).files or []
    except (PackageNotFoundError, ValueError):
        raise UnknownLibrary(library) from None
    if canonical(library) in NEVER_TRUSTED:
        return ()
    tops = {file.parts[0].removesuffix(".py") for file in files if file.parts and file.parts[0] != ".."}
    return tuple(sorted(top for top in tops if top.isidentifier() and not never_imported(top))) + \
        LIBRARY_EXTRAS.get(canonical(library), ())


def is_explicit(module, name):
    """Whether `module.name` is on numpy's, builtins' or the few others' explicit lists."""
    if module == "numpy":
        import numpy as np

        found = vars(np).get(name)  # vars, not getattr: numpy's __getattr__ imports numpy.f2py for "f2py"
        return name in ("dtype", "ndarray") or isinstance(found, np.ufunc) or (
            isinstance(found, type) and issubclass(found, np.generic))
    return name in NUMPY_NAMES.get(module, ()) or (module == "builtins" and name in BUILTINS) or (
        (module, name) in ALLOWED_ELSEWHERE)


class Trust:
    """What a pickle may name: the explicit lists, and the classes and functions defined in
    `modules` (trusted packages), in `own` ({module: its file}, the bundle's own modules) and, by
    exact "module.name", in `exact`; and if `only` is given, nothing it doesn't list."""

    def __init__(self, libraries=(), own=None, exact=(), only=None):
        self.libraries = tuple(installed_library(library) for library in libraries)
        self.modules = tuple(module for library in self.libraries for module in library_modules(library))
        self.own = {module: Path(path) for module, path in (own or {}).items()}
        self.exact, self.only = frozenset(exact), None if only is None else frozenset(only)

    def check(self, module, name):
        """Why `module.name` may be imported, before anything is; RefusedGlobal if it may not."""
        if not name.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
            raise RefusedGlobal(module, name)  # a dotted name walks attributes: sklearn.base.os.system
        if self.only is not None and f"{module}.{name}" not in self.only:
            raise RefusedGlobal(module, name, "model.json's unpickles doesn't list it")
        if never_imported(module):
            raise RefusedGlobal(module, name, "no pipeline is made of a command line, tests or build tools")
        if is_explicit(module, name):
            return "explicit"
        if module in self.own:
            return "own"
        if f"{module}.{name}" in self.exact or any(within(module, package) for package in self.modules):
            return "library"
        raise RefusedGlobal(module, name)

    def resolve(self, module, name):
        """The object `module.name`, once `check` allows it and it is defined there under that name."""
        rule = self.check(module, name)
        if rule == "explicit":
            return getattr(builtins, name) if module == "builtins" else getattr(importlib.import_module(module), name)
        try:
            imported = self.import_own(module, name) if rule == "own" else importlib.import_module(module)
        except ImportError:
            raise RefusedGlobal(module, name, f"there is no module {module} here") from None
        found = vars(imported).get(name)
        if not callable(found) or getattr(found, "__module__", None) != module or getattr(found, "__qualname__", None) != name:
            raise RefusedGlobal(module, name, f"it is not a class or function defined in {module}")
        return found

    def import_own(self, module, name):
        """The bundle's own module, from the bundle's own file and no other."""
        path = self.own[module].resolve()
        loaded = sys.modules.get(module)
        if loaded is not None:
            where = getattr(loaded, "__file__", None)
            if where is None or Path(where).resolve() != path:
                raise RefusedGlobal(module, name, f"{module} is imported from {where or 'Python itself'}, not from {path}")
            return loaded
        spec = importlib.util.spec_from_file_location(module, path)
        loaded = importlib.util.module_from_spec(spec)
        sys.modules[module] = loaded
        try:
            spec.loader.exec_module(loaded)
        except BaseException:
            del sys.modules[module]
            raise
        return loaded


class SafeUnpickler(NumpyUnpickler):
    """joblib's unpickler (which reads the arrays joblib.dump writes, nested object arrays through
    this same lookup), with every name checked by a Trust, and noted in `used`."""

    def __init__(self, content, trust, used):
        super().__init__("", io.BytesIO(content), ensure_native_byte_order=True)
        self.trust, self.used = trust, used

    def find_class(self, module, name):
        if self.proto < 3:
            module = PYTHON2_MODULES.get(module, module)
        found = self.trust.resolve(module, name)
        self.used.add(f"{module}.{name}")
        return found


def check_protocol(content):
    if not content.startswith(b"\x80"):
        # joblib.dump and pickle.dump write protocol 2 or newer, which opens with this byte; a
        # compressed file was decompressed before it came here (records.uncompressed).
        raise pickle.UnpicklingError("not a pickle of protocol 2 or newer; save it with joblib.dump(pipeline, file)")


def load(content, trust, used=None):
    """The object pickled in `content` (bytes: joblib.dump's or pickle.dump's), each name it gives
    allowed by `trust` (a Trust) and added to `used` (a set) if given. RefusedGlobal if one is not;
    the other errors a broken pickle raises, otherwise."""
    check_protocol(content)
    return SafeUnpickler(content, trust, set() if used is None else used).load()
