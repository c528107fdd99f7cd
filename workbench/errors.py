"""Errors the user sees: one line that names the file (when there is one) and the reason."""

from __future__ import annotations

from pathlib import Path


class WorkbenchError(Exception):
    """Base for every error the core raises on purpose; its ``str`` is fit to show a user."""

    def __init__(self, reason: str, path: str | Path | None = None) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        super().__init__(f"{self.path}: {reason}" if self.path is not None else reason)


class ModelLoadError(WorkbenchError):
    """The file is not a model the workbench can open."""


class UntrustedPickleError(ModelLoadError):
    """The file is a pickled ``nn.Module``: loading it would run code from the file."""


class InputShapeError(WorkbenchError):
    """An input shape is missing, malformed or does not fit the model."""


class DatasetError(WorkbenchError):
    """A dataset cannot be read or does not fit the model."""


class PluginError(WorkbenchError):
    """A plugin cannot run on this model with these parameters."""


class ProjectError(WorkbenchError):
    """A project folder is missing, damaged or inconsistent."""


class RecipeError(WorkbenchError):
    """A recipe cannot be read or replayed."""


class Cancelled(WorkbenchError):
    """Raised at a cancellation point after the user asked to stop."""

    def __init__(self, reason: str = "cancelled by the user") -> None:
        super().__init__(reason)


def describe_exception(exc: BaseException) -> str:
    """One line saying what went wrong, for failures that are not a :class:`WorkbenchError`.

    Known classes get a plain reason (memory, nesting, image bombs, runtime failures); anything else
    is named by type, with the first line of its message.
    """
    if isinstance(exc, WorkbenchError):
        return exc.reason
    import re

    name = type(exc).__name__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # some libraries colour their messages
    first = text.splitlines()[0][:300] if text else ""
    if isinstance(exc, MemoryError) or any(s in text for s in ("bad_alloc", "bad allocation", "Failed to allocate")):
        return "ran out of memory (the model or data needs more than this machine can give)"
    if isinstance(exc, RecursionError):
        return "the file is nested too deeply to process (recursion limit reached)"
    if name == "DecompressionBombError":
        return f"image is too large to decode safely ({first})"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror.lower()}" + (f" ({exc.filename})" if exc.filename else "")
    if type(exc).__module__.startswith("onnxruntime"):
        return "onnxruntime: " + _strip_runtime_prefix(text.splitlines()[0] if text else name)[:300]
    return f"{name}: {first}" if first else name


def is_internal_error(exc: BaseException) -> bool:
    """True for failures no input explains (a bug to report), as opposed to the classes above."""
    if isinstance(exc, (WorkbenchError, MemoryError, RecursionError)):
        return False
    if type(exc).__name__ == "DecompressionBombError" or type(exc).__module__.startswith("onnxruntime"):
        return False
    return not (isinstance(exc, OSError) and exc.strerror)


def _strip_runtime_prefix(text: str) -> str:
    """onnxruntime's message without its status prefix and C++ source locations:
    "[ONNXRuntimeError] : 1 : FAIL : /onnxruntime_src/.../model.cc:256 onnxruntime::Model::Model(...) Unsupported
    model IR version: 14" -> "Unsupported model IR version: 14"."""
    import re

    if text.startswith("[ONNXRuntimeError]"):
        text = text.split(" : ", 3)[-1]
    while located := re.search(r"\S*onnxruntime_src/\S+:\d+\s+", text):
        rest = text[located.end() :]
        signature = re.match(r"[\w:~<>,* &]*::[\w~]+\s*\(", rest)  # a C++ signature: skip to its closing paren
        if signature:
            depth, index = 0, signature.end() - 1
            while index < len(rest):
                depth += {"(": 1, ")": -1}.get(rest[index], 0)
                index += 1
                if depth == 0:
                    break
            rest = rest[index:]
        text = text[: located.start()] + rest.lstrip()
    return text.strip()


def with_path(exc: WorkbenchError, path: str | Path | None, *, replace: bool = False) -> WorkbenchError:
    """``exc`` naming ``path`` when it names no file yet (the caller knows which file was at work), or
    instead of the file it names when ``replace``."""
    if (exc.path is not None and not replace) or path is None or isinstance(exc, Cancelled):
        return exc
    import copy

    named = copy.copy(exc)
    named.path = Path(path)
    named.args = (f"{named.path}: {exc.reason}",)
    return named
