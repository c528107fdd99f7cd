"""Data readers, one layout a file, registered like plugins (entry-point group ``workbench.readers``).

A :class:`DataReader` says whether a path on disk is its layout (:meth:`DataReader.matches`), makes the
:class:`~workbench.datasets.DatasetRef` for it, reads a split of it (:meth:`DataReader.load`, reading
no more than the split and limit need where the format allows) and a few samples to show
(:meth:`DataReader.preview`). :mod:`workbench.datasets` knows only this registry: a kind is found by
its registered name, never by an ``if kind == ...`` chain.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from workbench.errors import DatasetError

if TYPE_CHECKING:
    from workbench.datasets import DatasetRef, Preprocessing

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.readers"


@dataclass(frozen=True)
class PreviewSample:
    """One sample as a person looks at it: an image, a clip or an array, with its label in words."""

    kind: Literal["image", "audio", "array"]
    data: np.ndarray  # uint8 HxW or HxWx3 image, float32 waveform in [-1, 1], or any array
    label: str = ""  # class name or text; "" when unlabeled
    sample_rate: int | None = None  # audio only


@dataclass(frozen=True)
class ReadData:
    """What a reader read for one split: raw samples, before :class:`Preprocessing` (unless ``ready``)."""

    x: np.ndarray  # images as stored (uint8 [N, H, W] or [N, H, W, C]) or numbers; ready: the model's input
    y: np.ndarray | None = None  # int64 [N] classes, int64 [N, H, W] label maps, or unicode [N] strings
    class_names: tuple[str, ...] = ()
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # named model inputs, fed as they are
    ready: bool = False  # x is already in the model's layout and scale: only mean/std/scale still apply


class DataReader(ABC):
    """One data layout on disk."""

    kind: ClassVar[str]  # the DatasetRef kind this reader reads
    description: ClassVar[str]  # the layout in a few words, for "understood layouts" messages
    priority: ClassVar[int] = 0  # higher is tried first when detecting a path's layout

    @abstractmethod
    def matches(self, path: Path) -> bool:
        """Whether ``path`` is this layout, from names and directory listings only: nothing that could block."""

    def ref_for(self, path: Path, preprocessing: Preprocessing) -> DatasetRef:
        """The reference to store for ``path`` (may refuse a layout this reader recognizes but will not read)."""
        from workbench.datasets import DatasetRef

        return DatasetRef(kind=self.kind, path=str(path), preprocessing=preprocessing)

    def own_split(self, ref: DatasetRef) -> str | None:
        """The data's own train/evaluation division in words, or None when it comes unsplit."""
        return None

    @abstractmethod
    def load(self, ref: DatasetRef) -> ReadData:
        """``ref``'s split, at most ``ref.limit`` samples of it."""

    @abstractmethod
    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        """The first ``count`` samples of ``ref``'s split, reading only those."""


@cache
def reader_registry() -> dict[str, DataReader]:
    """Every installed reader by kind; one that fails to load is logged and skipped."""
    return _load(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load(entry_points) -> dict[str, DataReader]:
    from typing import get_args

    from workbench.datasets import DataKind

    known = set(get_args(DataKind))
    found: dict[str, DataReader] = {}
    for ep in entry_points:
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, DataReader)):
                raise TypeError(f"{ep.value} is not a DataReader")
            if cls.kind not in known:
                raise ValueError(f"kind '{cls.kind}' is not a DatasetRef kind ({', '.join(sorted(known))})")
            if cls.kind in found:
                raise ValueError(f"a second reader for kind '{cls.kind}'")
            found[cls.kind] = cls()
        except Exception as exc:
            log.warning("data reader %s (%s) skipped: %s", ep.name, ep.value, exc)
    return found


def reader_for(kind: str) -> DataReader:
    registry = reader_registry()
    if kind not in registry:
        raise DatasetError(
            f"no reader for data of kind '{kind}' is installed (reinstall the workbench: pip install -e .; "
            f"installed: {', '.join(sorted(registry)) or 'none'})"
        )
    return registry[kind]


def detect_reader(path: Path) -> DataReader | None:
    """The highest-priority reader whose layout ``path`` is, or None."""
    for reader in sorted(reader_registry().values(), key=lambda r: -r.priority):
        try:
            if reader.matches(path):
                return reader
        except OSError as exc:  # a folder that cannot be listed, a file that vanished
            raise DatasetError(f"cannot read ({exc.strerror or exc})", exc.filename or path) from None
    return None


MAX_TEXT = 64 << 20  # label and name lists are a few MB at most


def read_text(file: Path) -> str:
    """A list file (names, labels, annotations) as text: a regular file, UTF-8, at most 64 MB."""
    from workbench.untrusted import open_regular

    with open_regular(file, DatasetError) as handle:
        data = handle.read(MAX_TEXT + 1)
    if len(data) > MAX_TEXT:
        raise DatasetError(f"is over {MAX_TEXT >> 20} MB; a list of names or labels is far smaller", file)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError("is not UTF-8 text", file) from None


def understood_layouts() -> str:
    readers = sorted(reader_registry().values(), key=lambda r: -r.priority)
    return "; ".join(r.description for r in readers if r.description)
