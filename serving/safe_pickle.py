"""Unpickling that runs no one's code.

A pickle names the functions and classes it needs, and unpickling calls them: a pickle that
names `os.system` runs a command. A checksum only catches accidents. So model.pkl is read with
an unpickler that looks up only what a scikit-learn pipeline is made of, and refuses anything
else before it is called:

- scikit-learn's classes (estimators, transformers and their parts: trees, losses, ...), and the
  few of its functions a pipeline holds (feature selection's score functions) or that rebuild its
  compiled objects (`__pyx_unpickle_*`, `newObj`);
- numpy's arrays, dtypes, scalar types, ufuncs (np.log in a FunctionTransformer, say) and random
  generators; scipy's sparse matrices; joblib's array wrapper;
- a few builtins that hold data (slice, set, frozenset, complex, bytearray, range);
- anything in the bundle's own modules that model.json lists (a custom transformer's module).

Nothing else: not os, subprocess, builtins.eval or builtins.getattr, not numpy.load or
numpy.memmap (which touch files), not a class another package defines and scikit-learn merely
imports. joblib reads the arrays inside a pickle through the same lookup.

A pipeline served as data never comes here: serving/records.py reads its pickle without
unpickling anything. This is the path of a pipeline whose steps are not all read as data.
"""

import builtins
import importlib
import io
import pickle

from joblib.numpy_pickle import NumpyUnpickler

SKLEARN_FUNCTIONS = {
    # HistGradientBoosting with categorical features keeps FunctionTransformer(partial(check_array, ...)).
    "sklearn.utils.validation": {"check_array"},
    "sklearn.feature_selection._univariate_selection": {"chi2", "f_classif", "f_oneway", "f_regression", "r_regression"},
    "sklearn.feature_selection._mutual_info": {"mutual_info_classif", "mutual_info_regression"},
}
NUMPY_NAMES = {
    "numpy": {"dtype", "ndarray"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy.random._pickle": {"__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"},
    "numpy.ma.core": {"_mareconstruct", "MaskedArray"},
}
BUILTINS = {"slice", "set", "frozenset", "complex", "bytearray", "range"}
ALLOWED_ELSEWHERE = {("copyreg", "_reconstructor"), ("collections", "OrderedDict"), ("functools", "partial"),
                     ("joblib.numpy_pickle", "NumpyArrayWrapper")}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle asks for a function or class that is not allowed."""

    def __init__(self, module, name):
        super().__init__(f"it asks to load {module}.{name}, which is not allowed")
        self.module, self.name = module, name


def within(module, package):
    return module == package or module.startswith(package + ".")


def allowed(module, name, own_modules):
    """The object `module.name` if a pipeline may be made of it; else RefusedGlobal."""
    refused = RefusedGlobal(module, name)
    if "." in name:  # a dotted name walks attributes: sklearn.base.os.system
        raise refused
    if any(within(module, own) for own in own_modules) or (module, name) in ALLOWED_ELSEWHERE:
        return getattr(importlib.import_module(module), name)
    if module == "builtins" and name in BUILTINS:
        return getattr(builtins, name)
    if not any(within(module, package) for package in ("sklearn", "numpy", "scipy.sparse")):
        raise refused
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise refused from None
    if within(module, "sklearn"):
        defined_here = isinstance(found, type) and within(found.__module__, "sklearn")
        rebuilds = name.startswith("__pyx_unpickle_") or name == "newObj"
        if defined_here or rebuilds or name in SKLEARN_FUNCTIONS.get(module, ()):
            return found
    elif within(module, "scipy.sparse"):
        if isinstance(found, type) and within(found.__module__, "scipy.sparse"):
            return found
    else:
        import numpy as np

        names = NUMPY_NAMES.get(module, ())
        is_scalar_type = isinstance(found, type) and issubclass(found, np.generic)
        is_random = within(module, "numpy.random") and (isinstance(found, type) or name.startswith("__pyx_unpickle_"))
        if name in names or (module == "numpy" and (is_scalar_type or isinstance(found, np.ufunc))) or is_random:
            return found
    raise refused


class SafeUnpickler(NumpyUnpickler):
    """joblib's unpickler (which reads the arrays joblib.dump writes), with every lookup checked."""

    def __init__(self, content, own_modules=()):
        super().__init__("", io.BytesIO(content), ensure_native_byte_order=True)
        self.own_modules = tuple(own_modules)

    def find_class(self, module, name):
        return allowed(module, name, self.own_modules)


def check_protocol(content):
    if not content.startswith(b"\x80"):
        # joblib.dump and pickle.dump write protocol 2 or newer, which opens with this byte; a
        # compressed file (joblib.dump(..., compress=...)) does not.
        raise pickle.UnpicklingError("not a pickle of protocol 2 or newer (compressed?); save it with joblib.dump(pipeline, file)")


def load(content, own_modules=(), unpickler=SafeUnpickler):
    """The object pickled in `content` (bytes: joblib.dump's or pickle.dump's). RefusedGlobal if it
    asks for anything not allowed; the other errors a broken pickle raises, otherwise. `unpickler`
    is SafeUnpickler or one made from it."""
    check_protocol(content)
    return unpickler(content, own_modules).load()
