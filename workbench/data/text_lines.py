"""Text-line images with their text, as PaddleOCR lists them for recognizers: a label file whose lines are
``<image path><TAB><text>``, image paths relative to the label file's folder. ``labels.txt``,
``rec_gt.txt`` or ``gt.txt`` hold unsplit data; ``rec_gt_train.txt`` with ``rec_gt_test.txt`` (or
``rec_gt_val.txt``; ``train_list.txt`` with ``val_list.txt`` or ``test_list.txt``) are the data's own
split. Labels are the texts, a unicode array. Only the images a split needs are opened.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData, read_text
from workbench.data.image_files import IMAGE_SUFFIXES, decode_images, preview_image
from workbench.datasets import DatasetRef, split_positions
from workbench.errors import DatasetError
from workbench.untrusted import open_regular

LABEL_FILES = ("labels.txt", "rec_gt.txt", "gt.txt")
SPLIT_FILES = (
    ("rec_gt_train.txt", "rec_gt_test.txt"),
    ("rec_gt_train.txt", "rec_gt_val.txt"),
    ("train_list.txt", "val_list.txt"),
    ("train_list.txt", "test_list.txt"),
)

Lines = list[tuple[Path, str]]


def _looks_like_labels(file: Path) -> bool:
    """The first line is ``<image path><TAB><text>``: read 4 KB, never blocking on what is not a file."""
    try:
        with open_regular(file, DatasetError) as handle:
            head = handle.read(4096).decode("utf-8-sig", errors="replace")
    except DatasetError:
        return False
    first = next((line for line in head.splitlines() if line.strip()), "")
    image, tab, _text = first.partition("\t")
    return bool(tab) and Path(image.strip()).suffix.lower() in IMAGE_SUFFIXES


def label_files(path: Path) -> dict[str, Path] | None:
    """{"all": file} or {"train": file, "evaluation": file} for ``path`` (a folder or a label file)."""
    if path.is_file():
        return {"all": path} if path.suffix.lower() == ".txt" and _looks_like_labels(path) else None
    if not path.is_dir():
        return None
    for train, evaluation in SPLIT_FILES:
        if (path / train).is_file() and (path / evaluation).is_file() and _looks_like_labels(path / train):
            return {"train": path / train, "evaluation": path / evaluation}
    for name in LABEL_FILES:
        if (path / name).is_file() and _looks_like_labels(path / name):
            return {"all": path / name}
    return None


def _lines(file: Path) -> Lines:
    folder = file.parent.resolve()
    lines: Lines = []
    for number, line in enumerate(read_text(file).splitlines(), 1):
        if not line.strip():
            continue
        image, tab, text = line.partition("\t")
        if not tab:
            raise DatasetError(f"line {number} has no tab: expected '<image path><TAB><text>', got {line[:80]!r}", file)
        target = (folder / image.strip()).resolve()
        if not target.is_relative_to(folder):
            raise DatasetError(f"line {number}: '{image.strip()[:80]}' is outside the label file's folder", file)
        if not target.exists():
            raise DatasetError(f"line {number}: image '{image.strip()[:80]}' does not exist", file)
        lines.append((target, text))
    if not lines:
        raise DatasetError("lists no images", file)
    return lines


def _chosen(ref: DatasetRef, limit: int | None, spread: bool = False) -> Lines:
    path = Path(ref.path)
    files = label_files(path)
    if files is None:
        raise DatasetError(f"no label file ({', '.join(LABEL_FILES)}) with '<image path><TAB><text>' lines", path)
    parts = {part: _lines(file) for part, file in files.items()}
    plan = split_positions({part: len(lines) for part, lines in parts.items()}, ref.split, limit, path, spread=spread)
    return [parts[part][i] for part, index in plan for i in index]


class TextLinesReader(DataReader):
    kind = "text-lines"
    description = "text-line images with a labels.txt / rec_gt.txt of '<image><TAB><text>' lines (PaddleOCR)"
    priority = 50

    def matches(self, path: Path) -> bool:
        return label_files(path) is not None

    def own_split(self, ref: DatasetRef) -> str | None:
        files = label_files(Path(ref.path))
        if files is None or "all" in files:
            return None
        return f"{files['train'].name} for train, {files['evaluation'].name} for evaluation"

    def load(self, ref: DatasetRef) -> ReadData:
        chosen = _chosen(ref, ref.limit)
        images = decode_images([image for image, _text in chosen], ref.preprocessing, Path(ref.path))
        return ReadData(images, np.array([text for _image, text in chosen], dtype=str))

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        grayscale = ref.preprocessing.grayscale
        return [
            PreviewSample("image", preview_image(image, grayscale), text)
            for image, text in _chosen(ref, count, spread=True)
        ]
