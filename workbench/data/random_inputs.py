"""Random inputs: unlabeled samples of declared shapes, for fidelity on models that come without data.
Never detected from a path; no splits.

``path`` is one shape (``1x3x224x224``: standard-normal float32 for the one data input) or named
inputs with their dtypes (``audio=1x512:float32;mask=1x512:bool``): floats are standard normal,
integers and booleans zero (a random integer could index out of range or steer a branch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData
from workbench.datasets import DatasetRef
from workbench.errors import DatasetError
from workbench.limits import check_allocation, data_budget

DEFAULT_COUNT = 64
KNOWN_DTYPES = ("float32", "float16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


def _shape(text: str, where: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(d) for d in text.split("x"))
    except ValueError:
        raise DatasetError(f"random inputs need a shape like 1x3x224x224, got '{where[:60]}'") from None
    if not shape or any(d <= 0 for d in shape):
        raise DatasetError(f"random inputs need positive dimensions, got '{where[:60]}'")
    return shape


def _declared(path: str) -> dict[str, tuple[tuple[int, ...], str]]:
    """Named inputs with their shapes (batch first) and dtypes; one unnamed float input as ``""``."""
    if "=" not in path:
        return {"": (_shape(path, path), "float32")}
    declared = {}
    for entry in path.split(";"):
        name, _, rest = entry.partition("=")
        shape, _, dtype = rest.partition(":")
        dtype = dtype or "float32"
        if not name or dtype not in KNOWN_DTYPES:
            raise DatasetError(f"random inputs need NAME=SHAPE[:DTYPE] entries, got '{entry[:60]}'")
        declared[name] = (_shape(shape, entry), dtype)
    return declared


def _arrays(ref: DatasetRef, count: int) -> dict[str, np.ndarray]:
    declared = _declared(ref.path)
    total = sum(
        np.dtype(dtype).itemsize * count * int(np.prod(shape[1:], dtype=np.float64))
        for shape, dtype in declared.values()
    )
    check_allocation(total, f"{count} random inputs", budget=data_budget())
    rng = np.random.default_rng(0)
    arrays = {}
    for name, (shape, dtype) in declared.items():
        size = (count, *shape[1:])
        if np.issubdtype(np.dtype(dtype), np.floating):
            arrays[name] = rng.standard_normal(size).astype(dtype)
        else:
            arrays[name] = np.zeros(size, dtype=dtype)
    return arrays


class RandomInputsReader(DataReader):
    kind = "random"
    description = ""  # not a layout on disk
    priority = -100

    def matches(self, path: Path) -> bool:
        return False

    def load(self, ref: DatasetRef) -> ReadData:
        arrays = _arrays(ref, ref.limit or DEFAULT_COUNT)
        first = next(iter(arrays.values()))
        named = {name: array for name, array in arrays.items() if name}
        return ReadData(first.astype(np.float32), None, inputs=named, ready=True)

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        first = next(iter(_arrays(ref, min(count, ref.limit or DEFAULT_COUNT)).values()))
        return [PreviewSample("array", sample) for sample in first]
