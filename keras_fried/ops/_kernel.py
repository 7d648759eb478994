"""The compiled CPU kernel: built from source on first use, cached per user, or not used at all.

The C++ sources are in `keras_fried/kernels/`. On the first call that needs
them, they are compiled with the system's C++ compiler (`$CXX`, else `c++`,
`g++` or `clang++`) into a per-user cache,

    $KERAS_FRIED_CACHE_DIR, else $XDG_CACHE_HOME/keras_fried, else ~/.cache/keras_fried

in a folder named by a hash of the sources, the compiler's version, the
Python version and the framework the library binds (TensorFlow's or JAX's
version): a new version of any of them builds anew instead of loading a stale
library. Each library is written with a SHA-256 of its bytes, checked before
loading, so a corrupt file is rebuilt rather than loaded.

The environment variable `KERAS_FRIED_KERNEL` chooses:

- `auto` (the default): the compiled kernel where it builds; otherwise one
  warning and the portable forms (matrix products in the framework).
- `compiled`: the compiled kernel or an error saying why it is unavailable.
- `portable`: never build or load it.
"""

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings

try:
    import fcntl
except ImportError:  # Windows: no lock between processes
    fcntl = None

KERNEL_SOURCES = ("kernel.h", "simd_entry.h", "hadamard_simd.cc", "dispatch.cc")
SOURCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kernels")
_CHOICES = ("auto", "compiled", "portable")
# kf_abi_version() of the sources in this package.
_ABI_VERSION = 1

# The instruction-set builds of hadamard_simd.cc: (name, macro, target flags).
_ISA_BUILDS = (
    ("portable", None, ()),
    ("avx2", "KF_ISA_AVX2", ("-mavx2", "-mfma")),
    ("avx512", "KF_ISA_AVX512", ("-mavx512f", "-mfma")),
)
ISA_NAMES = tuple(name for name, _, _ in _ISA_BUILDS)  # as kf_isa() numbers them

_lock = threading.Lock()
_libraries = {}  # library name -> path, or the exception that stopped its build
_warned = False


class KernelUnavailableError(RuntimeError):
    """The compiled kernel was required (`KERAS_FRIED_KERNEL=compiled`) but cannot be built or loaded."""


_scope = threading.local()


@contextlib.contextmanager
def use(choice):
    """Within this context (this thread), `requested()` is `choice` whatever `KERAS_FRIED_KERNEL` says."""
    if choice not in _CHOICES:
        raise ValueError(f"`implementation` must be one of {', '.join(map(repr, _CHOICES))}. Received: {choice!r}")
    previous = getattr(_scope, "choice", None)
    _scope.choice = choice
    try:
        yield
    finally:
        _scope.choice = previous


def requested():
    """The choice in force: `use`'s, else `KERAS_FRIED_KERNEL`, checked: "auto", "compiled" or "portable"."""
    choice = getattr(_scope, "choice", None)
    if choice is not None:
        return choice
    value = os.environ.get("KERAS_FRIED_KERNEL", "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise ValueError(
            f"The environment variable KERAS_FRIED_KERNEL must be one of {', '.join(_CHOICES)}. "
            f"Received: KERAS_FRIED_KERNEL={os.environ['KERAS_FRIED_KERNEL']!r}"
        )
    return value


def cache_dir():
    """Where compiled libraries are kept (see the module's docstring)."""
    if os.environ.get("KERAS_FRIED_CACHE_DIR"):
        return os.path.abspath(os.path.expanduser(os.environ["KERAS_FRIED_CACHE_DIR"]))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "keras_fried")


def compiler():
    """The C++ compiler to use, or None."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _x86():
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def _run(command, cwd):
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(command)}` failed:\n{result.stderr[-2000:]}")


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _build_key(name, sources, flags, versions, cxx):
    """A hash of everything the library depends on."""
    digest = hashlib.sha256()
    for source in sources:
        with open(source, "rb") as f:
            digest.update(os.path.basename(source).encode() + b"\0" + f.read())
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    for part in (name, version, sys.version, platform.machine(), *flags, *versions):
        digest.update(str(part).encode() + b"\0")
    return digest.hexdigest()[:20]


def _compile(cxx, binding, include_dirs, flags, link_flags, output, work):
    """Compiles the kernel (one object per instruction set) and `binding` into the shared library `output`."""
    common = ["-std=c++17", "-O3", "-fPIC", "-fvisibility=hidden", "-I", SOURCE_DIR]
    simd = os.path.join(SOURCE_DIR, "hadamard_simd.cc")
    builds = _ISA_BUILDS if _x86() else _ISA_BUILDS[:1]
    # The instruction-set objects compile in parallel (about 3 s each).
    processes, objects = [], []
    for isa, macro, target_flags in builds:
        obj = os.path.join(work, f"hadamard_{isa}.o")
        command = [cxx, *common, *([f"-D{macro}"] if macro else []), *target_flags, "-c", simd, "-o", obj]
        processes.append((command, subprocess.Popen(command, cwd=work, stderr=subprocess.PIPE, text=True)))
        objects.append(obj)
    built = []
    for (isa, macro, _), obj, (command, process) in zip(builds, objects, processes):
        _, stderr = process.communicate()
        if process.returncode == 0:
            built.append((isa, macro, obj))
        elif macro is None:  # the plain build must compile; a SIMD one the compiler lacks is left out
            raise RuntimeError(f"`{' '.join(command)}` failed:\n{stderr[-2000:]}")
    objects = [obj for _, _, obj in built]
    with_isas = [f"-DKF_WITH_{isa.upper()}" for isa, macro, _ in built if macro]
    sources = [os.path.join(SOURCE_DIR, "dispatch.cc")] + ([binding] if binding else [])
    includes = [flag for d in include_dirs for flag in ("-I", d)]
    _run([cxx, *common, *with_isas, *includes, *flags, "-shared", *sources, *objects, "-o", output,
          "-pthread", *link_flags], work)


def build(name, binding=None, include_dirs=(), flags=(), link_flags=(), versions=()):
    """The path of library `name`, built now if the cache has no valid copy.

    `binding` is an extra source file (a framework's binding), compiled with
    `flags` and `include_dirs` and linked with `link_flags`; `versions` are
    strings that must change the cache key (the framework's version). Raises
    RuntimeError, with the compiler's message, when it cannot be built.
    """
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found (set CXX, or install g++ or clang++)")
    sources = [os.path.join(SOURCE_DIR, s) for s in KERNEL_SOURCES] + ([binding] if binding else [])
    key = _build_key(name, sources, [*flags, *link_flags], versions, cxx)
    folder = os.path.join(cache_dir(), "kernels", f"{name}-{key}")
    library = os.path.join(folder, f"{name}.so")
    os.makedirs(folder, exist_ok=True)
    # One build at a time per folder, across processes.
    with open(os.path.join(folder, ".lock"), "w") as lock:
        if fcntl is not None:
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _valid(library):
            return library
        with tempfile.TemporaryDirectory(dir=folder) as work:
            output = os.path.join(work, f"{name}.so")
            _compile(cxx, binding, include_dirs, flags, link_flags, output, work)
            digest = _sha256(output)
            os.replace(output, library)
            with open(library + ".sha256", "w") as f:
                f.write(digest)
    return library


def _valid(library):
    """Whether `library` exists and has the bytes its build wrote."""
    try:
        with open(library + ".sha256") as f:
            expected = f.read().strip()
        return _sha256(library) == expected
    except OSError:
        return False


def library(name, load, build_args=dict, optional=False):
    """`load(path)` of library `name`, built on first use; None where it is unavailable and not required.

    `build_args()` gives `build`'s keyword arguments (asked only when the
    library is first needed). A library that fails to load is rebuilt once.
    The outcome is remembered for the process: a failed build warns once
    (unless `optional`: a variant the caller can do without) and is not
    retried.
    """
    if requested() == "portable":
        return None
    handle = _libraries.get(name)
    if handle is None:
        with _lock:
            if name not in _libraries:
                _libraries[name] = _build_and_load(name, load, build_args())
            handle = _libraries[name]
    if isinstance(handle, Exception):
        if optional:
            return None
        if requested() == "compiled":
            raise KernelUnavailableError(
                f"KERAS_FRIED_KERNEL=compiled, but the compiled kernel ({name}) is unavailable: {handle}"
            ) from handle
        _warn_once(name, handle)
        return None
    return handle


def _build_and_load(name, load, build_args):
    """The loaded library, or the exception that stopped it."""
    try:
        path = build(name, **build_args)
        try:
            return load(path)
        except Exception:  # a library that will not load is rebuilt, once
            os.remove(path + ".sha256")
            return load(build(name, **build_args))
    except Exception as error:
        return error


def _warn_once(name, error):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            f"keras_fried: the compiled Walsh-Hadamard kernel could not be built ({name}: "
            f"{str(error).splitlines()[0]}); using the portable form, which is slower on CPU. "
            "Set KERAS_FRIED_KERNEL=portable to silence this.",
            RuntimeWarning,
            stacklevel=3,
        )


# Every loaded library's C functions (ctypes), for `instruction_set`.
_loaded = []


def load_functions(path):
    """ctypes access to the C functions of kernel.h in the library at `path` (any binding's)."""
    lib = ctypes.CDLL(path)
    for name in ("kf_isa", "kf_best_isa", "kf_set_isa"):
        getattr(lib, name).restype = ctypes.c_int
    lib.kf_set_isa.argtypes = [ctypes.c_int]
    _loaded.append(lib)
    return lib


def load_core(path):
    """The kernel's C functions through ctypes, checked against this package's sources."""
    lib = load_functions(path)
    lib.kf_abi_version.restype = ctypes.c_int64
    if lib.kf_abi_version() != _ABI_VERSION:
        raise RuntimeError(f"{path} has ABI version {lib.kf_abi_version()}, expected {_ABI_VERSION}")
    pointer, size, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    for suffix, real in (("f32", ctypes.c_float), ("f64", ctypes.c_double)):
        getattr(lib, f"kf_fwht_{suffix}").argtypes = [pointer, pointer, size, size, real, i32]
        getattr(lib, f"kf_fastfood_{suffix}").argtypes = (
            [pointer, size, size] + [pointer] * 4 + [size, size, real, size, pointer, i32]
        )
        getattr(lib, f"kf_fastfood_grad_{suffix}").argtypes = (
            [pointer, pointer, size, size] + [pointer] * 4 + [size, size, real, size] + [pointer] * 4 + [i32]
        )
    return lib


def core():
    """The kernel as a ctypes library (every backend can call it), or None."""
    return library("keras_fried_kernel", load_core)


def threads():
    """The CPU threads this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@contextlib.contextmanager
def instruction_set(name):
    """Within this context every loaded kernel library uses instruction set `name`.

    `name` is "portable", "avx2" or "avx512". For tests: every build must give
    the same numbers. Raises ValueError when this CPU (or build) lacks it.
    """
    lib = core()
    if lib is None or name not in ISA_NAMES:
        raise ValueError(f"Unknown or unavailable instruction set: {name!r}")
    wanted = ISA_NAMES.index(name)
    if wanted > lib.kf_best_isa():
        raise ValueError(f"This CPU or build has no {name} kernel (best: {ISA_NAMES[lib.kf_best_isa()]}).")
    previous = [(handle, handle.kf_isa()) for handle in _loaded]
    for handle, _ in previous:
        handle.kf_set_isa(wanted)
    try:
        yield
    finally:
        for handle, isa in previous:
            handle.kf_set_isa(isa)


# Callers that must keep the portable forms even where the kernel runs: code
# traced for export or conversion is saved and run elsewhere, without it.
_PORTABLE_CALLERS = (
    "keras.src.export",
    "tensorflow.lite",
    "tensorflow.python.saved_model",
    "jax.experimental.jax2tf",
    "torch.onnx",
)


def traced_for_export():
    """Whether the current call comes from an exporter or converter (SavedModel, TFLite, ONNX, jax2tf).

    Only asked while a graph is traced, never per eager call.
    """
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith(_PORTABLE_CALLERS):
            return True
        frame = frame.f_back
    return False
