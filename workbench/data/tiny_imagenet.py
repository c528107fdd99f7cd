"""Tiny ImageNet's layout: ``wnids.txt`` (one class id a line), ``train/<wnid>/images/*.JPEG`` (train),
``val/images/*.JPEG`` labelled by ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>box...``; evaluation),
and optionally ``words.txt`` (``wnid<TAB>names``) naming the classes. ``test/`` has no labels and is not read.

Classes are indexed in sorted wnid order, as torchvision's ``ImageFolder`` over ``train/`` indexes them.
Only the images a split needs are opened (headers first, then decoding).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData, read_text
from workbench.data.image_files import decode_images, is_image, preview_image
from workbench.datasets import DatasetRef, split_positions
from workbench.errors import DatasetError


@dataclass(frozen=True)
class Layout:
    wnids: tuple[str, ...]  # sorted: the class index is the position here
    names: tuple[str, ...]
    parts: dict[str, list[tuple[int, Path]]]


def _wnids(root: Path) -> tuple[str, ...]:
    file = root / "wnids.txt"
    wnids = [line.strip() for line in read_text(file).splitlines() if line.strip()]
    if not wnids:
        raise DatasetError("lists no classes (one wnid a line expected)", file)
    if len(set(wnids)) != len(wnids):
        duplicate = next(w for w in wnids if wnids.count(w) > 1)
        raise DatasetError(f"lists '{duplicate}' twice", file)
    return tuple(sorted(wnids))


def _names(root: Path, wnids: tuple[str, ...]) -> tuple[str, ...]:
    file = root / "words.txt"
    if not file.exists():
        return wnids
    wanted, words = set(wnids), {}
    for line in read_text(file).splitlines():
        wnid, _, text = line.partition("\t")
        if wnid in wanted and text.strip():
            words[wnid] = text.split(",")[0].strip()
    return tuple(words.get(w, w) for w in wnids)


def _train(root: Path, wnids: tuple[str, ...]) -> list[tuple[int, Path]]:
    index = {w: i for i, w in enumerate(wnids)}
    folder = root / "train"
    files = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name not in index:
            raise DatasetError(f"train/{sub.name} is not a class listed in wnids.txt", root / "wnids.txt")
        images = sub / "images" if (sub / "images").is_dir() else sub
        files.extend((index[sub.name], f) for f in sorted(images.iterdir()) if is_image(f))
    if not files:
        raise DatasetError("no images in train/<wnid>/images/", folder)
    return files


def _val(root: Path, wnids: tuple[str, ...]) -> list[tuple[int, Path]]:
    index = {w: i for i, w in enumerate(wnids)}
    folder = root / "val"
    annotations = folder / "val_annotations.txt"
    images = folder / "images" if (folder / "images").is_dir() else folder
    if not annotations.exists():
        raise DatasetError("is missing: the validation images have no labels", annotations)
    on_disk = {f.name: f for f in images.iterdir() if is_image(f)}
    files, seen = [], set()
    for number, line in enumerate(read_text(annotations).splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DatasetError(f"line {number} is not 'file<TAB>wnid<TAB>...': {line[:80]!r}", annotations)
        name, wnid = fields[0].strip(), fields[1].strip()
        if wnid not in index:
            raise DatasetError(f"line {number}: '{wnid}' is not a class listed in wnids.txt", annotations)
        if name not in on_disk:
            raise DatasetError(f"line {number}: {images.name}/{name} does not exist", annotations)
        files.append((index[wnid], on_disk[name]))
        seen.add(name)
    unlabeled = sorted(set(on_disk) - seen)
    if unlabeled:
        raise DatasetError(
            f"has no line for {images.name}/{unlabeled[0]} ({len(unlabeled)} images unlabeled)", annotations
        )
    if not files:
        raise DatasetError("labels no images", annotations)
    return files


def _layout(root: Path) -> Layout:
    if not (root / "wnids.txt").is_file():
        raise DatasetError("no wnids.txt: not a Tiny ImageNet folder", root)
    wnids = _wnids(root)
    train = _train(root, wnids) if (root / "train").is_dir() else None
    val = _val(root, wnids) if (root / "val").is_dir() else None
    if train is not None and val is not None:
        parts = {"train": train, "evaluation": val}
    elif train is not None or val is not None:
        parts = {"all": train if train is not None else val}
    else:
        raise DatasetError("has neither train/ nor val/", root)
    return Layout(wnids, _names(root, wnids), parts)


def _chosen(ref: DatasetRef, limit: int | None) -> tuple[Layout, list[tuple[int, Path]]]:
    root = Path(ref.path)
    layout = _layout(root)
    counts = {part: len(files) for part, files in layout.parts.items()}
    plan = split_positions(counts, ref.split, limit, root)
    return layout, [layout.parts[part][i] for part, index in plan for i in index]


class TinyImageNetReader(DataReader):
    kind = "tiny-imagenet"
    description = "Tiny ImageNet (wnids.txt, train/<wnid>/images/, val/images/ with val_annotations.txt)"
    priority = 60

    def matches(self, path: Path) -> bool:
        if not (path.is_dir() and (path / "wnids.txt").is_file()):
            return False
        return (path / "train").is_dir() or (path / "val").is_dir()

    def own_split(self, ref: DatasetRef) -> str | None:
        root = Path(ref.path)
        if (root / "train").is_dir() and (root / "val").is_dir():
            return "train/ for train, val/ (labelled by val_annotations.txt) for evaluation"
        return None

    def load(self, ref: DatasetRef) -> ReadData:
        layout, chosen = _chosen(ref, ref.limit)
        images = decode_images([file for _label, file in chosen], ref.preprocessing, Path(ref.path))
        return ReadData(images, np.asarray([label for label, _file in chosen], np.int64), layout.names)

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        layout, chosen = _chosen(ref, count)
        grayscale = ref.preprocessing.grayscale
        return [PreviewSample("image", preview_image(file, grayscale), layout.names[label]) for label, file in chosen]
