"""Reading files from outside: only regular files are opened, and pickled code never runs untrusted.

Unpickling resolves classes and functions by name (``find_class``): that is the only way a pickle gets
a callable to run. Python raises the ``pickle.find_class`` audit event for every such lookup, in the C
and the pure-Python unpickler alike, before the name is resolved. While :func:`refuse_pickled_code` is
active on a thread, a lookup outside torch's weights-only allow-list aborts the unpickling right there,
whichever library unpickles (``torch.export.load`` does so with ``weights_only=False``). The payload
never receives the callable it needs, and the caller gets :class:`UntrustedPickleError`.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from workbench.errors import UntrustedPickleError, WorkbenchError


# --- regular files ----------------------------------------------------------------------------------
def check_regular_file(path: str | Path, error: type[WorkbenchError] = WorkbenchError) -> os.stat_result:
    """Refuse what is not a regular file before anything opens it: a FIFO or device would block or
    never end. Symlinks are followed, so a link to a device is refused too."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error("file does not exist", path) from None
    except OSError as exc:
        raise error(f"cannot read the file ({exc.strerror or exc})", path) from None
    if stat.S_ISDIR(info.st_mode):
        raise error("is a directory, not a file", path)
    if not stat.S_ISREG(info.st_mode):
        raise error(f"is not a regular file (a {_kind(info.st_mode)}); the workbench reads only files", path)
    return info


def open_regular(path: str | Path, error: type[WorkbenchError] = WorkbenchError) -> BinaryIO:
    """Open for reading without blocking on a FIFO, and check the opened file itself (no race with a swap)."""
    path = Path(path)
    check_regular_file(path, error)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"cannot read the file ({exc.strerror or exc})", path) from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise error(f"is not a regular file (a {_kind(info.st_mode)}); the workbench reads only files", path)
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular_bytes(path: str | Path, error: type[WorkbenchError] = WorkbenchError) -> bytes:
    with open_regular(path, error) as handle:
        return handle.read()


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "FIFO"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISSOCK, "socket"),
    ):
        if test(mode):
            return name
    return "special file"


# --- pickles ----------------------------------------------------------------------------------------
@dataclass
class _Guard:
    path: Path | None
    refused: list[str] = field(default_factory=list)


_GUARD: contextvars.ContextVar[_Guard | None] = contextvars.ContextVar("workbench_pickle_guard", default=None)


class _RefusedGlobal(Exception):
    """Raised inside the unpickler; the guard reports it as UntrustedPickleError."""


def _allowed_globals() -> frozenset[str]:
    from torch import _weights_only_unpickler, serialization

    names = set(_weights_only_unpickler._get_allowed_globals())
    for item in serialization.get_safe_globals():  # what the user allow-listed for weights_only loads
        if isinstance(item, tuple):
            names.add(str(item[1]))
        else:
            names.add(f"{getattr(item, '__module__', '')}.{getattr(item, '__qualname__', '')}")
    return frozenset(names)


def _canonical(module: str, name: str) -> str:
    import _compat_pickle

    # Protocol-2 pickles (torch.save's default) may use Python 2 names; map them as the unpickler will.
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    return f"{module}.{name}"


_ALLOWED: list[frozenset[str]] = []


def _audit(event: str, args: tuple) -> None:
    if event != "pickle.find_class":
        return
    guard = _GUARD.get()
    if guard is None:
        return
    module, name = (str(a) for a in args[:2])
    qualified = _canonical(module, name)
    if qualified in _ALLOWED[0]:
        return
    guard.refused.append(qualified)
    raise _RefusedGlobal(qualified)


_HOOKED: list[bool] = []


def _install_hook() -> None:
    if not _HOOKED:  # audit hooks cannot be removed; one per process, inert outside a guard
        sys.addaudithook(_audit)
        _HOOKED.append(True)


@contextlib.contextmanager
def refuse_pickled_code(path: str | Path | None, *, trusted: bool = False) -> Iterator[None]:
    """Within this block (on this thread), unpickling may build tensors and plain containers only.

    A pickle that asks for anything else (a function, a class with behaviour) stops at that request and
    the block raises :class:`UntrustedPickleError` naming what it asked for. ``trusted`` (the user's
    ``--trust-pickle``) lifts the guard.
    """
    if trusted:
        yield
        return
    _install_hook()
    if not _ALLOWED:
        _ALLOWED.append(_allowed_globals())
    guard = _Guard(Path(path) if path is not None else None)
    token = _GUARD.set(guard)
    try:
        yield
    except BaseException as exc:
        if guard.refused or isinstance(exc, _RefusedGlobal):
            raise untrusted_pickle_error(guard.refused, guard.path) from None
        raise
    finally:
        _GUARD.reset(token)
    if guard.refused:  # a library swallowed the abort; the payload still never ran
        raise untrusted_pickle_error(guard.refused, guard.path)


def untrusted_pickle_error(names: list[str], path: Path | None) -> UntrustedPickleError:
    shown = ", ".join(list(dict.fromkeys(names))[:3])
    return UntrustedPickleError(
        f"refused: the file holds pickled Python code ({shown}); loading it would run code stored in the "
        "file. Save a state_dict, TorchScript or ONNX instead, or pass --trust-pickle if you trust where "
        "this file came from",
        path,
    )
