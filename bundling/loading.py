"""The pickle make package is given, read as data first, unpickled only when that is safe or the
user trusts it, and then in a child process bounded in time and memory.

Loading a pickle can run any code it names, and scikit-learn's documentation says so
(https://scikit-learn.org/stable/model_persistence.html#security-maintainability-limitations):
only load a file you trust. An allow-list of classes is not enough: a StackingClassifier calls any
method, named in its pickled state, of any object in it, which writes a file with numpy's tofile.
So:

1. The pickle is read as data (serving/records.py, serving/scorers/): every object a record of a
   class read as data, each checked, and nothing runs. Only if all of them pass may it be unpickled
   without a word from the user (to probe it, and to prove its numpy form against scikit-learn).
2. Otherwise it is unpickled only if the user trusts it: TRUST= names the libraries whose code it may
   run (scikit-learn for its own classes not read as data, xgboost, lightgbm...; each pinned in
   requirements.txt at the version installed here, and allowed only its own classes), MODULES= their own
   module files. Without them it is refused, in one line saying which class and what to add.
3. Either way, the unpickling runs first in a child process limited to LOAD_SECONDS of CPU and
   LOAD_GIB of memory: a pickle that hangs or asks for all the memory stops there, with one line,
   and nothing written. Only a load that finished there is done again here.
"""

import importlib
import importlib.util
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import sysconfig
import time
import warnings
from functools import cache
from importlib.metadata import packages_distributions, version
from pathlib import Path

from bundling.fields import DataError
from serving import records, safe_pickle, scorers

ROOT = Path(__file__).resolve().parent.parent
LOAD_SECONDS = 120
LOAD_GIB = 4
ASKS_FOR = re.compile(r"it asks for (\S+), which is not read as data")
MAX_NAMES = 500  # distinct classes and functions a pickle may name before its names stop being listed
WARNED = "loading a pickle can run any code it names (scikit-learn's documentation warns so too)"
# Picklers that write a function's code itself into the file (a lambda, a notebook's function), where
# pickle and joblib write the name of a function that a module defines.
BY_VALUE = frozenset({"cloudpickle", "dill"})
MOVED = "import it from there in the notebook, fit and dump the pipeline again, and package it with MODULES=my_steps.py"


def load_pipeline(path, modules=(), trust=()):
    """(the pipeline in the pickle at `path`, its own module files {name: Path}); DataError saying
    what to do if it can't be served, or isn't trusted."""
    own = own_module_files(modules)
    libraries = trusted_libraries(trust)
    content = pickle_in(path)
    reason = not_read_as_data(content)
    if reason is None:  # every object checked: scikit-learn's own covered classes, unpickled to be probed
        spec = {"libraries": [], "own": {}, "covered": True}
    else:
        needed = libraries_needed(path, names_in(content), own)
        if not needed <= set(libraries):
            if "fitted on several outputs" in reason:  # a tree's n_outputs_: no trust would get it served
                raise DataError(f"{path}: it predicts several outputs per row; only one is served: fit one model per output")
            raise DataError(trust_refusal(path, reason, needed | set(libraries)))
        spec = {"libraries": libraries, "own": {name: str(file) for name, file in own.items()}, "covered": False}
    load_in_child(path, spec)
    pipeline, _ = load_checked(path, content, trust_of(spec))
    return pipeline, own


def own_module_files(modules):
    """{module name: file} for MODULES=: each a .py file whose name nothing else answers to, so that
    the module that loads is this file (MODULES=os.py would otherwise be the standard library's os)."""
    files = {}
    for module in modules:
        path = Path(module)
        name, given = path.stem, f"MODULES={module}"
        if path.suffix != ".py" or not name.isidentifier():
            raise DataError(f"{given}: not a Python module file (a name like my_steps.py)")
        if not path.is_file():
            raise DataError(f"{given}: file not found")
        if name in sys.stdlib_module_names or safe_pickle.never_imported(name):
            raise DataError(f"{given}: {name} is a standard-library module; name your module something else")
        loaded = sys.modules.get(name)
        if loaded is not None:
            raise DataError(f"{given}: {name} is already imported here, from {getattr(loaded, '__file__', None) or 'Python itself'}; "
                            "name your module something else")
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin and Path(spec.origin).resolve() != path.resolve():
            installed = spec.origin.startswith((sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]))
            what = "an installed package's module" if installed else "another module"
            raise DataError(f"{given}: {name} is {what} ({spec.origin}); name your module something else")
        files[name] = path.resolve()
    return files


def trusted_libraries(trust):
    """TRUST='s libraries as pip names the distributions installed here (xgboost may be xgboost-cpu)."""
    found = []
    for library in trust:
        try:
            installed = safe_pickle.installed_library(library)
        except safe_pickle.UnknownLibrary:
            raise DataError(f"TRUST={library}: no library of that name is installed; name each library by its pip name "
                            "(scikit-learn, xgboost, lightgbm), installed here") from None
        if installed in safe_pickle.NEVER_TRUSTED:
            raise DataError(f"TRUST={library}: numpy's arrays, dtypes, scalar types, ufuncs and random generators are "
                            "allowed without it, and nothing else of numpy is, whatever TRUST= says")
        found.append(installed)
    return sorted(set(found))


def pickle_in(path):
    """The pickle in the file at `path`: its bytes, decompressed if joblib.dump compressed them
    (bundling/writer.py writes the bundle's model.pkl uncompressed again, as it writes every pickle)."""
    try:
        return records.uncompressed(Path(path).read_bytes())
    except records.RecordError as err:
        raise DataError(f"{path}: {err}") from None


def not_read_as_data(content):
    """None if every object in the pickle is a checked record of a class read as data; else why not."""
    try:
        scorers.build(records.read(content, scorers.kinds()))
    except records.RecordError as err:
        return str(err)
    return None


def names_in(content):
    """Each class or function the pickle names (beyond those serving/records.py reads as values),
    read as data, nothing run: records.read names the first it doesn't read as data; read again with
    that one a record too, until none is left, the file can't be read further, or LOAD_SECONDS
    have passed (what is not listed by then, the unpickler still refuses unless it is trusted)."""
    found, deadline = [], time.monotonic() + LOAD_SECONDS
    while len(found) < MAX_NAMES and time.monotonic() < deadline:
        try:
            records.read(content, set(found))
            return
        except records.RecordError as err:
            asked = ASKS_FOR.fullmatch(str(err))
            if asked is None or asked[1] in found:
                return
            found.append(asked[1])
            yield asked[1]  # a name no trust allows stops the reading here


@cache
def distributions_of():
    return packages_distributions()


def library_of(module):
    """The library (as pip names it) whose code `module` is, if one installed here holds it."""
    for library, packages in safe_pickle.LIBRARY_EXTRAS.items():
        if any(safe_pickle.within(module, package) for package in packages):
            return library
    top = module.split(".")[0]
    owners = [safe_pickle.canonical(owner) for owner in distributions_of().get(top, [])]
    # Two builds of one library installed at once (xgboost and xgboost-cpu): the one named as its module, as TRUST= finds it.
    return next((owner for owner in owners if owner == safe_pickle.canonical(top)), owners[0] if owners else None)


def by_value(module):
    """Whether `module` is a by-value pickler's (cloudpickle's, joblib's or another library's copy of it, dill's)."""
    return any(part in BY_VALUE for part in module.split("."))


def library_to_trust(module):
    """The library whose trust would allow names from `module`, or None if no TRUST= would."""
    top = module.split(".")[0]
    if top == "__main__" or by_value(module) or top in sys.stdlib_module_names or safe_pickle.never_imported(module):
        return None
    library = library_of(module)
    return None if library in safe_pickle.NEVER_TRUSTED else library


def libraries_needed(path, names, own):
    """The libraries whose code unpickling `names` runs; DataError for a name no trust allows."""
    needed = set()
    for kind in names:
        module, _, name = kind.rpartition(".")
        if safe_pickle.is_explicit(module, name) or module in own:
            continue
        library = library_to_trust(module)
        if library is None:
            raise DataError(untrusted(path, module, name))
        needed.add(library)
    return needed


def trust_name(library):
    """What TRUST= calls an installed library: its pip name, or for a build of it under a name of its
    own (xgboost-cpu, whose module is xgboost), the library's: TRUST=xgboost finds either build."""
    return next((top for top in safe_pickle.library_modules(library) if library.startswith(safe_pickle.canonical(top) + "-")),
                library)


def trust_refusal(path, reason, libraries):
    names = sorted(set(map(trust_name, libraries)), key=lambda name: (name != "scikit-learn", name))  # the pipeline's own first
    return (f"{path}: {reason}, so it would be unpickled, and {WARNED}: only if you made this file yourself, "
            f"package it with TRUST={','.join(names)}")


def untrusted(path, module, name):
    """Why no TRUST= allows `module.name`, and what to do instead."""
    top = module.split(".")[0]
    if top == "__main__":
        what = "a class" if name[:1].isupper() else "a function"  # as Python names them
        return (f"{path}: it uses {name}, {what} defined in the notebook itself (__main__), which a function "
                f"can't import: move {name} into a module of its own (my_steps.py, say), {MOVED}")
    if by_value(module):
        return (f"{path}: it holds a function pickled with its code ({module}.{name}: a lambda, or a function defined in "
                f"the notebook), which only runs by running that code: move it into a module of its own (my_steps.py, "
                f"say; a lambda becomes a def there), {MOVED}")
    if safe_pickle.never_imported(module):
        return (f"{path}: it asks for {module}.{name}, of a command line, tests or build tools, whose import alone runs "
                "code and which no pipeline is made of; no TRUST= allows it")
    if top in sys.stdlib_module_names:
        return (f"{path}: it asks for {module}.{name}, of Python's standard library, which no pipeline is made of: "
                "loading it would run that code, and no TRUST= allows it")
    if library_of(module) in safe_pickle.NEVER_TRUSTED:
        return (f"{path}: it asks for {module}.{name}, which is none of numpy's arrays, dtypes, scalar types, ufuncs "
                "and random generators that a pipeline is made of, and no TRUST= allows it")
    if "." in module:  # a package's module: a library not installed here, never a module file of one's own (MODULES=)
        return (f"{path}: it uses {module}.{name}, from {top}, a library not installed here: install the version the "
                f"notebook has (.venv/bin/pip install {top}==that version), then package with TRUST={top}")
    return (f"{path}: it uses {module}.{name}, from the module {top}, which the bundle doesn't hold: add it "
            f"with MODULES=path/to/{top}.py (the file is copied next to main.py, shipped in archive.zip, and allowed to load), "
            f"or if {top} is a library, install it here and package with TRUST={top}")


def refused(path, err, trust):
    """The line for a name the unpickler refused, saying what would allow it, if anything does."""
    if err.why:  # refused for what it is, not for want of trust
        return f"{path}: {err}"
    library = library_to_trust(err.module)
    if library is None:
        return untrusted(path, err.module, err.name)
    return trust_refusal(path, f"it asks for {err.module}.{err.name}, which is not read as data", {library, *trust.libraries})


def trust_of(spec):
    """The Trust a load at packaging runs under: scikit-learn's covered classes, checked as data; or the user's."""
    return safe_pickle.Trust(spec["libraries"], spec["own"], exact=scorers.kinds() if spec["covered"] else ())


def load_checked(path, content, trust):
    """(the pipeline, the names it used), unpickled under `trust`; DataError if it can't be served."""
    from sklearn.exceptions import InconsistentVersionWarning

    used = set()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InconsistentVersionWarning)
            pipeline = safe_pickle.load(content, trust, used)
    except safe_pickle.RefusedGlobal as err:
        raise DataError(refused(path, err, trust)) from None
    except pickle.UnpicklingError as err:
        raise DataError(f"{path}: not a pickle this can read ({err})") from None
    except MemoryError:
        raise  # the child that loads it first says so
    except Exception as err:
        raise DataError(f"{path}: failed to load ({type(err).__name__}: {err}){versions_hint()}") from None
    made_with = {w.message.original_sklearn_version for w in caught if issubclass(w.category, InconsistentVersionWarning)}
    if made_with:
        raise DataError(other_versions(path, "scikit-learn", ", ".join(sorted(made_with)), version("scikit-learn")))
    if any(kind.startswith("numpy.core.") for kind in used):
        raise DataError(other_versions(path, "numpy", "1.x (it names numpy.core, which numpy 2 calls numpy._core)",
                                       version("numpy")))
    if not hasattr(pipeline, "predict"):
        raise DataError(f"{path}: holds a {type(pipeline).__name__}, which has no predict; pickle the fitted pipeline itself")
    return pipeline, used


def versions_hint():
    return f"; was it made with another scikit-learn than {version('scikit-learn')}? Retrain it with that version"


def other_versions(path, package, made_with, pinned):
    return (f"{path}: made with {package} {made_with}, but requirements.txt pins {package} {pinned}; a pickle is only "
            f"sure to load, and to answer the same, with the versions that made it. Either retrain it with "
            f"{package} {pinned} (in the notebook: pip install {package}=={pinned}, then fit and dump again), or pin "
            f"the versions it was made with in requirements.txt (which the tools install too), and package again")


def load_in_child(path, spec, seconds=None, gib=None):
    """Load the pickle at `path` in a child process limited to `seconds` of CPU and `gib` GiB of
    memory (LOAD_SECONDS and LOAD_GIB); DataError, one line, if it fails, or goes beyond either."""
    seconds, gib = seconds or LOAD_SECONDS, gib or LOAD_GIB
    order = {**spec, "path": str(Path(path).resolve()), "shown": str(path), "seconds": seconds, "gib": gib}
    try:  # a load that waits rather than computes is stopped by the clock, at twice the CPU's limit and start-up
        done = subprocess.run([sys.executable, "-m", "bundling.loading", json.dumps(order)], cwd=ROOT,
                              capture_output=True, text=True, timeout=2 * seconds + 30)
    except subprocess.TimeoutExpired:
        done = None
    lines = done.stdout.strip().splitlines() if done is not None else []
    answer = json.loads(lines[-1]) if done is not None and done.returncode == 0 and lines else {}
    if done is None or done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise DataError(f"{path}: loading it took over {seconds} s of CPU, so it was stopped; a pipeline loads in "
                        "seconds, and a pickle can make any work for itself as it loads")
    if answer.get("memory"):
        raise DataError(f"{path}: loading it took more than {gib} GiB of memory, so it was stopped; a pipeline takes "
                        "about its file's size, and a pickle can ask for any amount as it loads")
    if "error" in answer:
        raise DataError(answer["error"])
    if not answer.get("loaded"):
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise DataError(f"{path}: loading it stopped the process that tried (exit status {done.returncode}: {last})")


def limit(seconds, gib):
    """This process may use `seconds` more of CPU (then SIGXCPU ends it) and `gib` GiB more memory
    than it has mapped now (then an allocation fails: MemoryError). Memory only where /proc says
    how much is mapped (Linux, as Cloud Functions and its builds are)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime) + 1 + seconds
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    try:
        mapped = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return
    resource.setrlimit(resource.RLIMIT_AS, (mapped + gib * 2**30, resource.getrlimit(resource.RLIMIT_AS)[1]))


def child(order):
    """The child's side of load_in_child: what it answers, as a dict."""
    trust = trust_of(order)
    for module in ("sklearn", *trust.modules):  # the trusted libraries first: the limits are the pickle's
        importlib.import_module(module)
    limit(order["seconds"], order["gib"])
    try:
        load_checked(order["shown"], pickle_in(order["path"]), trust)
    except DataError as err:
        return {"error": str(err)}
    except MemoryError:
        return {"memory": True}
    return {"loaded": True}


if __name__ == "__main__":
    print(json.dumps(child(json.loads(sys.argv[1]))))
