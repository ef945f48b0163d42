"""The native (C++) extension: `DecodeBatch`'s decode step and the X-ray's traced LSTM layer; building
it once per environment, and loading it.

`decode_step.cpp` runs a decode batch's step (`models.decode.sampler.sample`, then
`FusedCharLSTM.advance`) as the same ATen ops from C++ with the GIL released (its header says why).
`xray_trace.cpp` runs one nn.LSTM layer keeping every step's gates, for `models.xray.trace`'s
char-LSTM trace (one pass instead of the fused kernel plus recomputed gates). Both are one module,
compiled ahead of time, never on a request's path:

    build()   compile with torch.utils.cpp_extension (g++ and ninja) unless a current build exists
    load()    the built module, or None: never compiles (DecodeBatch then keeps its PyTorch step, the
              X-ray its PyTorch trace)

`python -m models.native` runs build(); `./run` calls it after installing the environment and the
Dockerfile in its build stage. A build lives in `<sys.prefix>/rnnlab-native/<name>/<name>.so`, where the
name carries a hash of the sources, the torch version, the compiler flags and the Python ABI: an edit, a
torch upgrade or another interpreter gives another name, so a stale build is never loaded, and each
environment (a fresh checkout's new .venv, the image's /opt/venv) builds its own.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:  # models.decode imports this module
    import torch

    from models.decode.buffers import StepBuffers
    from models.decode.fused import FusedCharLSTM

__all__ = ["ROOT", "SOURCES", "NativeDecode", "Stepper", "build", "load", "module_name"]

log = logging.getLogger(__name__)

# decode_step.cpp holds the module's PYBIND11_MODULE; xray_trace.cpp binds into it (xray_trace.h).
SOURCES = (Path(__file__).with_name("decode_step.cpp"), Path(__file__).with_name("xray_trace.cpp"))
# Headers the sources include: part of what a build is made of, so part of its name.
HEADERS = (Path(__file__).with_name("checked_fields.h"), Path(__file__).with_name("xray_trace.h"))
# Under the environment, not the checkout: a build belongs to the interpreter and torch it was made for.
ROOT = Path(sys.prefix) / "rnnlab-native"
# decode_step.cpp only calls into libtorch, so the flags do not change its numbers. xray_trace.cpp's
# loops are its own arithmetic: -O3 vectorizes them (GCC's -O2 leaves loops of unknown length scalar).
CFLAGS = ("-O3",)
_PREFIX = "decode_step_"


class Stepper(Protocol):
    """decode_step.cpp's Stepper: one step of a DecodeBatch's n active rows (see DecodeBatch.step).

    Made once per n from the batch's StepBuffers and weights, whose fields it checks then (names,
    dtypes, shapes: ValueError naming the field); `step` returns the chosen ids.
    """

    def step(self, column: int, all_greedy: bool, scaled: bool, top_k: bool, top_p: bool) -> list[int]: ...


class NativeDecode(Protocol):
    """The built extension module."""

    def Stepper(self, buffers: StepBuffers, weights: FusedCharLSTM) -> Stepper: ...

    def lstm_trace_layer(
        self,
        x: torch.Tensor,
        w_ih: torch.Tensor,
        w_hh: torch.Tensor,
        b_ih: torch.Tensor,
        b_hh: torch.Tensor,
        signals: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """xray_trace.cpp: one nn.LSTM layer over x (B, T, E) from a zero state: h (B, T, H), and with
        `signals` i, f, g, o, c, h as (6, H, B, T) (each unit's series contiguous), else None."""
        ...


@functools.cache
def _torch_version() -> str:
    # torch.__version__ without importing torch (1-2 s), so that checking a current build is quick.
    # Once per process: the metadata lookup costs ~1 ms, and load() runs on every traced /analyze
    # (the torch a process has imported cannot change under it).
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:  # torch not installed as a distribution
        import torch

        return str(torch.__version__)


def module_name() -> str:
    """The extension's module name for this source, torch version, flags and Python ABI."""
    digest = hashlib.sha256()
    sources = [path.read_bytes() for path in (*SOURCES, *HEADERS)]
    for part in (*sources, _torch_version().encode(), " ".join(CFLAGS).encode()):
        digest.update(part)
        digest.update(b"\0")
    digest.update(str(sysconfig.get_config_var("EXT_SUFFIX")).encode())
    return _PREFIX + digest.hexdigest()[:16]


def _library(root: Path, name: str) -> Path:
    return root / name / f"{name}.so"


def build(root: Path | None = None, *, verbose: bool = False) -> bool:
    """Compile the extension into `root` (default ROOT) unless it is there: True if it compiled now.

    Raises whatever the compiler's failure raises (RuntimeError with its output, OSError without g++).
    """
    root = ROOT if root is None else root
    name = module_name()
    if _library(root, name).is_file():
        return False
    from torch.utils import cpp_extension  # imports torch: only when there is something to build

    # cpp_extension runs `ninja` from PATH: the pip-installed one sits beside this interpreter, which
    # is not on PATH when the environment is not activated (./run calls .venv/bin/python directly).
    scripts = sysconfig.get_path("scripts")
    os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])
    root.mkdir(parents=True, exist_ok=True)
    # Build beside the final place, then rename the directory into it (atomic): a process calling
    # load() meanwhile sees no build or a whole one, and two concurrent builds cannot mix.
    staging = Path(tempfile.mkdtemp(prefix=f"{name}.", suffix=".tmp", dir=root))
    staging.chmod(0o755)  # mkdtemp's 0700 would hide it from the image's unprivileged user
    try:
        cpp_extension.load(
            name,
            [str(path) for path in SOURCES],
            extra_cflags=list(CFLAGS),
            build_directory=str(staging),
            verbose=verbose,
        )
        try:
            staging.rename(root / name)
        except OSError:
            if not _library(root, name).is_file():  # not another build that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_stale(root, keep=name)
    return True


def _remove_stale(root: Path, keep: str) -> None:
    """Delete builds of other sources or torch versions (they can never be loaded again), and the
    staging directories of builds that were killed (a build takes well under an hour)."""
    for path in root.glob(_PREFIX + "*"):
        if path.name == keep:
            continue
        if path.suffix != ".tmp" or time.time() - path.stat().st_mtime > 3600:
            shutil.rmtree(path, ignore_errors=True)


_loaded: dict[Path, NativeDecode] = {}


def load(root: Path | None = None) -> NativeDecode | None:
    """The built extension for this source and torch from `root` (default ROOT), or None; never compiles."""
    try:
        name = module_name()
    except OSError:  # a source or header not installed with the package: no build can match
        return None
    path = _library(ROOT if root is None else root, name)
    if path in _loaded:
        return _loaded[path]
    if not path.is_file():
        return None
    import torch  # noqa: F401  the extension links libtorch: importing torch loads it first

    spec = importlib.util.spec_from_file_location(path.parent.name, path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # e.g. a half-deleted environment: serve with the PyTorch step
        log.warning("the native decode step at %s does not load (%s); using the PyTorch step", path, exc)
        return None
    native = cast(NativeDecode, module)
    _loaded[path] = native
    return native
