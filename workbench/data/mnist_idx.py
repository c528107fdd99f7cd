"""MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST), gzipped or not: a folder with
``train-images-idx3-ubyte[.gz]`` and ``train-labels-idx1-ubyte[.gz]``, and ``t10k-``/``test-`` ones
(the data's own split). A folder holding only one pair is unsplit.

An IDX file is a 4-byte magic (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in row-major order. Only the rows a split needs are read.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData
from workbench.data.image_files import adjust_images
from workbench.datasets import DatasetRef, Preprocessing, class_labels, split_positions
from workbench.errors import DatasetError
from workbench.limits import check_allocation, data_budget, human_bytes
from workbench.untrusted import open_regular

IMAGES = re.compile(r"(?P<prefix>.*?)images(?P<sep>[-.])idx3(?P<sep2>[-.])ubyte(?:\.gz)?", re.IGNORECASE)
TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_GZIP_RATIO = 1100  # DEFLATE expands at most ~1032-fold: a header declaring more is a lie
TRAIN_WORDS = ("train",)
EVALUATION_WORDS = ("t10k", "test")


@dataclass(frozen=True)
class IdxHeader:
    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int  # bytes before the values

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize


def _open(file: Path):
    handle = open_regular(file, DatasetError)
    if file.name.lower().endswith(".gz"):
        return gzip.GzipFile(fileobj=handle, mode="rb"), handle
    return handle, handle


def _read_exactly(stream, size: int, file: Path, what: str) -> bytes:
    try:
        data = stream.read(size)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"not a readable gzip file ({str(exc).splitlines()[0][:160]})", file) from None
    if len(data) != size:
        raise DatasetError(f"truncated IDX file: {what} needs {size:,} bytes, the file has {len(data):,}", file)
    return data


def _header(stream, file: Path, ndim: int) -> IdxHeader:
    magic = _read_exactly(stream, 4, file, "the header")
    if magic[:2] != b"\0\0" or magic[2] not in TYPES or magic[3] != ndim:
        expected = "00 00 08 03 (images)" if ndim == 3 else "00 00 08 01 (labels)"
        raise DatasetError(f"not an IDX file of the expected kind: magic {magic.hex(' ')}, expected {expected}", file)
    dims = struct.unpack(f">{ndim}I", _read_exactly(stream, 4 * ndim, file, "the header"))
    return IdxHeader(np.dtype(TYPES[magic[2]]), tuple(int(d) for d in dims), 4 + 4 * ndim)


def read_header(file: Path, ndim: int) -> IdxHeader:
    stream, handle = _open(file)
    with handle, stream:
        header = _header(stream, file, ndim)
    size = file.stat().st_size
    declared = header.offset + header.shape[0] * header.row_bytes
    if file.name.lower().endswith(".gz"):
        if declared > MAX_GZIP_RATIO * size:
            raise DatasetError(
                f"the header declares {human_bytes(declared)} of values, more than a gzip file of "
                f"{human_bytes(size)} can hold: not a real IDX file",
                file,
            )
    elif size < declared:
        raise DatasetError(
            f"truncated IDX file: the header declares {header.shape[0]:,} x {list(header.shape[1:])} values "
            f"({human_bytes(declared)}), the file holds {human_bytes(size)}",
            file,
        )
    return header


def read_rows(file: Path, ndim: int, rows: int) -> np.ndarray:
    """The first ``rows`` rows of an IDX file (checked against the data budget before reading)."""
    stream, handle = _open(file)
    with handle, stream:
        header = _header(stream, file, ndim)
        rows = min(rows, header.shape[0])
        check_allocation(
            rows * header.row_bytes * max(1, 4 // header.dtype.itemsize),
            f"{rows:,} rows of {list(header.shape[1:])} from an IDX file, as float32",
            file,
            budget=data_budget(),
            error=DatasetError,
            hint="use --limit to read fewer samples, or raise WORKBENCH_DATA_BUDGET_MB",
        )
        data = _read_exactly(stream, rows * header.row_bytes, file, f"{rows:,} rows")
    values = np.frombuffer(data, dtype=header.dtype).reshape(rows, *header.shape[1:])
    return values.astype(header.dtype.newbyteorder("="))


def _find(folder: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``folder``, the uncompressed one first (case-insensitive)."""
    files = {f.name.lower(): f for f in folder.iterdir() if f.is_file() or f.is_fifo()}
    return files.get(name.lower()) or files.get(name.lower() + ".gz")


def _pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """(images, labels) per part: {"train": ..., "evaluation": ...} or {"all": ...} for one pair."""
    if not folder.is_dir():
        raise DatasetError("no such folder of IDX files", folder)
    found: dict[str, tuple[Path, Path]] = {}
    for file in sorted(folder.iterdir()):
        match = IMAGES.fullmatch(file.name)
        if not match or (file.name.lower().endswith(".gz") and _find(folder, file.name[:-3]) not in (None, file)):
            continue  # the uncompressed copy is read when both are there
        prefix = match["prefix"].lower()
        part = (
            "train"
            if any(w in prefix for w in TRAIN_WORDS)
            else "evaluation"
            if any(w in prefix for w in EVALUATION_WORDS)
            else "all"
        )
        labels_name = f"{match['prefix']}labels{match['sep']}idx1{match['sep2']}ubyte"
        labels = _find(folder, labels_name)
        if labels is None:
            raise DatasetError(f"no labels for {file.name} (expected {labels_name}[.gz])", folder)
        if part in found:
            raise DatasetError(
                f"several IDX image files for {part} ({found[part][0].name}, {file.name}): keep one dataset a folder",
                folder,
            )
        found[part] = (file, labels)
    if not found:
        raise DatasetError("no IDX image files (like train-images-idx3-ubyte[.gz]) in the folder", folder)
    if set(found) == {"train", "evaluation"}:
        return found
    if len(found) == 1:
        return {"all": next(iter(found.values()))}
    raise DatasetError(f"IDX files of parts {', '.join(sorted(found))}: expected a train and a t10k pair", folder)


def _counts(pairs: dict[str, tuple[Path, Path]]) -> dict[str, int]:
    counts = {}
    for part, (images, labels) in pairs.items():
        image_header, label_header = read_header(images, 3), read_header(labels, 1)
        if image_header.shape[0] != label_header.shape[0]:
            raise DatasetError(
                f"{images.name} holds {image_header.shape[0]:,} images but {labels.name} "
                f"{label_header.shape[0]:,} labels",
                images.parent,
            )
        counts[part] = image_header.shape[0]
    return counts


def _read(ref: DatasetRef, limit: int | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    folder = Path(ref.path)
    pairs = _pairs(folder)
    counts = _counts(pairs)
    images, labels, highest = [], [], 0
    for part, positions in split_positions(counts, ref.split, limit, folder):
        image_file, label_file = pairs[part]
        every_label = class_labels(read_rows(label_file, 1, counts[part]), label_file)
        highest = max(highest, int(every_label.max(initial=0)))
        needed = int(positions.max()) + 1 if len(positions) else 0
        images.append(read_rows(image_file, 3, needed)[positions])
        labels.append(every_label[positions])
    names = tuple(str(i) for i in range(max(10, highest + 1)))
    return np.concatenate(images), np.concatenate(labels), names


class MnistIdxReader(DataReader):
    kind = "mnist-idx"
    description = "MNIST IDX files (train-/t10k-images-idx3-ubyte and -labels-idx1-ubyte, gzipped or not)"
    priority = 70

    def matches(self, path: Path) -> bool:
        if path.is_dir():
            return any(IMAGES.fullmatch(f.name) for f in path.iterdir())
        return bool(IMAGES.fullmatch(path.name)) and path.exists()

    def ref_for(self, path: Path, preprocessing: Preprocessing) -> DatasetRef:
        return DatasetRef(kind=self.kind, path=str(path if path.is_dir() else path.parent), preprocessing=preprocessing)

    def own_split(self, ref: DatasetRef) -> str | None:
        try:
            pairs = _pairs(Path(ref.path))
        except DatasetError:
            return None
        if "all" in pairs:
            return None
        return f"{pairs['train'][0].name} for train, {pairs['evaluation'][0].name} for evaluation"

    def load(self, ref: DatasetRef) -> ReadData:
        images, labels, names = _read(ref, ref.limit)
        return ReadData(adjust_images(images, ref.preprocessing, Path(ref.path)), labels, names)

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        images, labels, names = _read(ref, count)
        kind = "image" if images.dtype == np.uint8 else "array"
        return [PreviewSample(kind, image, names[label]) for image, label in zip(images, labels, strict=True)]
