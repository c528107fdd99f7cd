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
