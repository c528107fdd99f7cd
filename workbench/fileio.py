"""Atomic writes and crash leftovers: a crash mid-write leaves the old file (or nothing), never half a
file, and what a killed writer left behind is recognised and removed by the next one.

A writer holds an advisory lock (``flock``) on its temporary file or staging folder for as long as it
works. The OS drops the lock when the process dies, so a leftover whose lock can be taken has no
living owner and is safe to delete, even while another process is busy writing beside it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: leftovers are recognised by age instead
    fcntl = None  # type: ignore[assignment]

TMP_SUFFIX = ".tmp"
STALE_AFTER_S = 24 * 3600  # without flock, only leftovers this old are assumed abandoned


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        _lock(fd)  # marks the temp file as owned by a live writer (see remove_abandoned)
        # mkstemp makes 0600 files; give the result the mode a plain open() would (or the file's own).
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~current_umask()
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    from workbench.untrusted import open_regular

    digest = hashlib.sha256()
    with open_regular(path) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def staging_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A locked temporary folder in ``parent``: the caller fills it and renames it into place.

    On an exception it is removed; if the process is killed, the next :func:`remove_abandoned` on
    ``parent`` removes it.
    """
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    fd = _open_lockable(folder)
    try:
        if fd is not None:
            _lock(fd)
        yield folder
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        if fd is not None:
            os.close(fd)


def remove_abandoned(folder: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Delete leftovers matching ``patterns`` in ``folder`` whose writer is gone; returns what went."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for pattern in patterns:
        for leftover in folder.glob(pattern):
            if not _abandoned(leftover):
                continue
            try:
                if leftover.is_dir() and not leftover.is_symlink():
                    shutil.rmtree(leftover)
                else:
                    leftover.unlink()
            except OSError:
                continue
            removed.append(leftover)
    return removed


def _abandoned(path: Path) -> bool:
    if fcntl is None:
        try:
            return time.time() - path.lstat().st_mtime > STALE_AFTER_S
        except OSError:
            return False
    fd = _open_lockable(path)
    if fd is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live writer holds it
    finally:
        os.close(fd)
    return True


def _open_lockable(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def held_alone(path: Path) -> Iterator[bool]:
    """An exclusive lock on ``path`` (created empty if missing) while the block runs, taken without waiting:
    yields False when another living process holds it. The OS drops it if the holder dies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        if fcntl is None:
            yield True
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


class FolderLock:
    """Shared while a process uses a folder; exclusive (briefly, never waiting) to tidy it up alone."""

    def __init__(self, folder: Path) -> None:
        self._fd = _open_lockable(folder) if fcntl is not None else None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_SH)  # waits only while another process tidies up (brief)

    @contextlib.contextmanager
    def alone(self) -> Iterator[bool]:
        """True inside when no other process has the folder open (then hold it exclusively)."""
        if self._fd is None:
            yield False
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
