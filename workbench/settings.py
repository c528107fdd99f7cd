"""Per-user state kept between runs: where it lives and the input shapes remembered per model."""

from __future__ import annotations

import json
import os
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.fileio import atomic_write_text

APP_NAME = "model-workbench"


def config_dir() -> Path:
    """``$WORKBENCH_CONFIG_DIR`` if set (tests point it at a temp folder), else the OS config folder."""
    if override := os.environ.get("WORKBENCH_CONFIG_DIR"):
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME))


def cache_dir() -> Path:
    if override := os.environ.get("WORKBENCH_CACHE_DIR"):
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def _read(path: Path) -> str:
    from workbench.untrusted import read_regular_bytes

    return read_regular_bytes(path).decode("utf-8")


class ShapeMemory:
    """Input shapes the user chose for a model, keyed by the model file's sha256."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "input_shapes.json"

    def _read(self) -> dict[str, dict[str, list[int]]]:
        try:
            data = json.loads(_read(self.path))
        except (OSError, ValueError, WorkbenchError):
            return {}  # a missing or damaged memory only costs the user re-entering a shape
        return data if isinstance(data, dict) else {}

    def get(self, model_sha256: str) -> dict[str, tuple[int, ...]] | None:
        entry = self._read().get(model_sha256)
        if not isinstance(entry, dict):
            return None
        try:
            return {str(k): tuple(int(d) for d in v) for k, v in entry.items()}
        except (TypeError, ValueError):
            return None

    def put(self, model_sha256: str, shapes: dict[str, tuple[int, ...]]) -> None:
        data = self._read()
        data[model_sha256] = {k: list(v) for k, v in shapes.items()}
        atomic_write_text(self.path, json.dumps(data, indent=1, sort_keys=True))


class RecentFiles:
    """Most recent first; the last project opened is what the GUI offers to reopen."""

    def __init__(self, path: Path | None = None, keep: int = 10) -> None:
        self.path = path or config_dir() / "recent.json"
        self.keep = keep

    def _read(self) -> dict[str, list[str]]:
        try:
            data = json.loads(_read(self.path))
        except (OSError, ValueError, WorkbenchError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, kind: str) -> list[str]:
        return [str(p) for p in self._read().get(kind, []) if isinstance(p, str)]

    def add(self, kind: str, path: str | Path) -> None:
        data = self._read()
        entries = [str(path)] + [p for p in data.get(kind, []) if p != str(path)]
        data[kind] = entries[: self.keep]
        atomic_write_text(self.path, json.dumps(data, indent=1))
