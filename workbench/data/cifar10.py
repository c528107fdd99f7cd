"""CIFAR-10's binary version: ``data_batch_1.bin`` .. ``data_batch_5.bin`` (train) and ``test_batch.bin``
(evaluation), each a run of 3073-byte records (a label byte, then 32x32 red, green and blue planes);
``batches.meta.txt`` names the classes. Only the records a split needs are read.

The pickled Python version (``cifar-10-batches-py``) is refused: unpickling a file can run code in it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData, read_text
from workbench.data.image_files import adjust_images
from workbench.datasets import DatasetRef, Preprocessing, split_positions
from workbench.errors import DatasetError
from workbench.limits import check_allocation, data_budget
from workbench.untrusted import check_regular_file, open_regular

RECORD = 1 + 3 * 32 * 32
BINARY_FOLDER = "cifar-10-batches-bin"
PICKLED_FOLDER = "cifar-10-batches-py"
TRAIN_BATCH = re.compile(r"data_batch_(\d+)\.bin")
TEST_BATCH = "test_batch.bin"
PICKLED_NAMES = re.compile(r"data_batch_\d+|test_batch|batches\.meta")
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
REFUSAL = (
    "this is CIFAR-10's pickled Python version, which the workbench does not read (unpickling can run code "
    "stored in the file): use the binary version (cifar-10-binary.tar.gz: data_batch_1.bin .. test_batch.bin)"
)


def _root(path: Path) -> Path:
    """The folder holding the batches: ``path``, its ``cifar-10-batches-bin`` or, for a batch file, its folder."""
    if path.is_dir() and (path / BINARY_FOLDER).is_dir():
        return path / BINARY_FOLDER
    return path if path.is_dir() else path.parent


def _batches(folder: Path) -> tuple[list[Path], list[Path]]:
    train, test = [], []
    for file in folder.iterdir():
        if TRAIN_BATCH.fullmatch(file.name):
            train.append(file)
        elif file.name == TEST_BATCH:
            test.append(file)
    train.sort(key=lambda f: int(TRAIN_BATCH.fullmatch(f.name).group(1)))
    return train, test


def is_pickled(path: Path) -> bool:
    """The pickled Python version: its folder, a folder that holds it, or one of its batch files."""
    if path.is_dir():
        if (path / BINARY_FOLDER).is_dir() or any(_batches(path)):
            return False  # binary batches are read, whatever else is beside them
        return path.name == PICKLED_FOLDER or (path / PICKLED_FOLDER).is_dir() or _holds_pickled_batches(path)
    return bool(PICKLED_NAMES.fullmatch(path.name)) and path.exists()


def _holds_pickled_batches(folder: Path) -> bool:
    return any(PICKLED_NAMES.fullmatch(f.name) for f in folder.iterdir())


def _parts(folder: Path) -> dict[str, list[Path]]:
    if is_pickled(folder):
        raise DatasetError(REFUSAL, folder)
    if not folder.is_dir():
        raise DatasetError("no such folder of CIFAR-10 batches", folder)
    train, test = _batches(folder)
    if train and test:
        return {"train": train, "evaluation": test}
    if not train and not test:
        raise DatasetError("no CIFAR-10 binary batches (data_batch_1.bin .. test_batch.bin) in the folder", folder)
    return {"all": train + test}


def _record_count(file: Path) -> int:
    size = check_regular_file(file, DatasetError).st_size
    if size % RECORD:
        raise DatasetError(
            f"{size:,} bytes is not a whole number of 3073-byte records (a label byte and 3072 pixel bytes): "
            "not a CIFAR-10 binary batch",
            file,
        )
    return size // RECORD


def _class_names(folder: Path) -> tuple[str, ...]:
    meta = folder / "batches.meta.txt"
    if not meta.exists():
        return CLASSES
    names = tuple(line.strip() for line in read_text(meta).splitlines() if line.strip())
    if not names:
        raise DatasetError("names no classes (one class name a line expected)", meta)
    return names


def _read_records(files: list[Path], counts: list[int], positions: np.ndarray) -> np.ndarray:
    """[len(positions), 3073] uint8 records at ``positions`` of the files taken one after another."""
    where = files[0].parent
    check_allocation(
        len(positions) * 3072 * 4,
        f"{len(positions):,} CIFAR-10 images as float32",
        where,
        budget=data_budget(),
        error=DatasetError,
        hint="use --limit to read fewer samples, or raise WORKBENCH_DATA_BUDGET_MB",
    )
    out = np.empty((len(positions), RECORD), np.uint8)
    starts = np.cumsum([0, *counts])
    owner = np.searchsorted(starts, positions, side="right") - 1
    for index, file in enumerate(files):
        mine = np.flatnonzero(owner == index)
        if not len(mine):
            continue
        records = positions[mine] - starts[index]
        with open_regular(file, DatasetError) as handle:
            if np.array_equal(records, np.arange(records[0], records[0] + len(records))):  # one run: one read
                handle.seek(int(records[0]) * RECORD)
                block = handle.read(len(records) * RECORD)
                if len(block) != len(records) * RECORD:
                    raise DatasetError("the file ended early (it changed while being read?)", file)
                out[mine] = np.frombuffer(block, np.uint8).reshape(-1, RECORD)
                continue
            for slot, record in zip(mine, records, strict=True):
                handle.seek(int(record) * RECORD)
                block = handle.read(RECORD)
                if len(block) != RECORD:
                    raise DatasetError("the file ended early (it changed while being read?)", file)
                out[slot] = np.frombuffer(block, np.uint8)
    return out


def _read(ref: DatasetRef, limit: int | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    folder = _root(Path(ref.path))
    parts = _parts(folder)
    names = _class_names(folder)
    counts = {part: [_record_count(f) for f in files] for part, files in parts.items()}
    images, labels = [], []
    for part, positions in split_positions({p: sum(c) for p, c in counts.items()}, ref.split, limit, folder):
        records = _read_records(parts[part], counts[part], positions)
        bad = np.flatnonzero(records[:, 0] >= len(names))
        if len(bad):
            raise DatasetError(
                f"record {int(positions[bad[0]])} of the {part} batches has label {records[bad[0], 0]}, but there "
                f"are {len(names)} classes (CIFAR-100's binary records are 3074 bytes and are not read here)",
                folder,
            )
        labels.append(records[:, 0].astype(np.int64))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW planes -> HWC
    return np.concatenate(images), np.concatenate(labels), names


class Cifar10Reader(DataReader):
    kind = "cifar10"
    description = "CIFAR-10 binary batches (data_batch_N.bin, test_batch.bin)"
    priority = 80

    def matches(self, path: Path) -> bool:
        if is_pickled(path):
            return True  # recognized so that it is refused with the reason, not as an unknown layout
        root = _root(path)
        if not root.is_dir():
            return False
        train, test = _batches(root)
        return bool(train or test) and (path.is_dir() or path in (*train, *test))

    def ref_for(self, path: Path, preprocessing: Preprocessing) -> DatasetRef:
        if is_pickled(path):
            raise DatasetError(REFUSAL, path)
        return DatasetRef(kind=self.kind, path=str(_root(path)), preprocessing=preprocessing)

    def own_split(self, ref: DatasetRef) -> str | None:
        try:
            parts = _parts(_root(Path(ref.path)))
        except DatasetError:
            return None
        if "all" in parts:
            return None
        train = [f.name for f in parts["train"]]
        named = ", ".join(train) if len(train) <= 2 else f"{train[0]} .. {train[-1]}"
        return f"{named} for train, {TEST_BATCH} for evaluation"

    def load(self, ref: DatasetRef) -> ReadData:
        images, labels, names = _read(ref, ref.limit)
        return ReadData(np.ascontiguousarray(adjust_images(images, ref.preprocessing, Path(ref.path))), labels, names)

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        images, labels, names = _read(ref, count)
        return [
            PreviewSample("image", np.ascontiguousarray(image), names[label])
            for image, label in zip(images, labels, strict=True)
        ]
