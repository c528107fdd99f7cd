"""Image folders: one sub-folder of images per class, or ``train/`` and ``val/`` (``validation/``,
``test/``) folders that each hold the class sub-folders (the data's own split; classes come from
``train/``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData
from workbench.data.image_files import decode_images, decoded_bytes, is_image, preview_image
from workbench.datasets import DatasetRef, Split, split_positions
from workbench.errors import DatasetError
from workbench.limits import check_allocation, data_budget

TRAIN_FOLDERS = ("train",)
EVALUATION_FOLDERS = ("val", "validation", "test")

Files = list[tuple[int, Path]]  # (class index, image file)


def split_folders(path: Path) -> tuple[Path, Path] | None:
    """``path``'s train and evaluation folders when it has both."""
    train = next((path / n for n in TRAIN_FOLDERS if (path / n).is_dir()), None)
    evaluation = next((path / n for n in EVALUATION_FOLDERS if (path / n).is_dir()), None)
    return (train, evaluation) if train is not None and evaluation is not None else None


def _classes(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_class_images(folder: Path) -> bool:
    for sub in folder.iterdir():
        if sub.is_dir() and not sub.name.startswith(".") and any(is_image(f) for f in sub.iterdir()):
            return True
    return False


def _files(folder: Path, classes: list[str]) -> Files:
    files: Files = []
    for label, cls in enumerate(classes):
        if (folder / cls).is_dir():
            files.extend((label, file) for file in sorted((folder / cls).iterdir()) if is_image(file))
    if not files:
        raise DatasetError("no images found in the class folders", folder)
    return files


def _layout(path: Path) -> tuple[tuple[str, ...], dict[str, Files]]:
    """The class names and the image files of each part ("all", or "train" and "evaluation")."""
    if not path.is_dir():
        raise DatasetError("image folder does not exist", path)
    folders = split_folders(path)
    classes = _classes(folders[0] if folders else path)
    if not classes:
        raise DatasetError("expected one sub-folder per class with images inside; found none", path)
    if folders:
        return tuple(classes), {"train": _files(folders[0], classes), "evaluation": _files(folders[1], classes)}
    return tuple(classes), {"all": _files(path, classes)}


def _parts_read(parts: dict[str, Files], split: Split) -> list[str]:
    if "all" in parts or split == "all":
        return list(parts)
    return ["evaluation" if split == "evaluation" else "train"]


class ImageFolderReader(DataReader):
    kind = "folder"
    description = "image folders (a sub-folder of images per class, optionally under train/ and val/)"
    priority = 0

    def matches(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        folders = split_folders(path)
        return _has_class_images(folders[0] if folders else path)

    def own_split(self, ref: DatasetRef) -> str | None:
        path = Path(ref.path)
        folders = split_folders(path) if path.is_dir() else None
        return f"{folders[0].name}/ and {folders[1].name}/ folders" if folders else None

    def load(self, ref: DatasetRef) -> ReadData:
        path, prep = Path(ref.path), ref.preprocessing
        classes, parts = _layout(path)
        counts = {name: len(files) for name, files in parts.items()}
        # Sizes come from the headers first: a folder whose images would not fit is refused before decoding.
        # Every header of the part a split draws from is read: a split never hides a broken file.
        if ref.split == "all" and ref.limit:
            checked = [parts[p][i] for p, index in split_positions(counts, "all", ref.limit) for i in index]
        else:
            checked = [item for name in _parts_read(parts, ref.split) for item in parts[name]]
        sizes = {file: decoded_bytes(file, prep) for _label, file in checked}
        chosen = [parts[p][i] for p, index in split_positions(counts, ref.split, ref.limit, path) for i in index]
        check_allocation(
            sum(sizes[file] for _label, file in chosen),
            f"{len(chosen)} images decoded to float32",
            path,
            budget=data_budget(),
            error=DatasetError,
            hint="use --limit or --resize, or raise WORKBENCH_DATA_BUDGET_MB",
        )
        images = decode_images([file for _label, file in chosen], prep, path, sized=True)
        return ReadData(images, np.asarray([label for label, _file in chosen], dtype=np.int64), classes)

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        path = Path(ref.path)
        classes, parts = _layout(path)
        counts = {name: len(files) for name, files in parts.items()}
        plan = split_positions(counts, ref.split, count, path, spread=True)
        chosen = [parts[p][i] for p, index in plan for i in index]
        grayscale = ref.preprocessing.grayscale
        return [PreviewSample("image", preview_image(file, grayscale), classes[label]) for label, file in chosen]
