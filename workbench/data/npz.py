"""``.npz`` archives, never unpickled: each array's header is read first and only the rows a split needs.

Two shapes of archive:

- ``x`` (samples) and optionally ``y`` (labels); or ``x_train``/``y_train`` with ``x_test`` (``x_val``,
  ``x_validation``) and its ``y``: the data's own split.
- one named array per model input (any names other than those above): every array that is not a label
  (``y`` or ``labels``) feeds the model input of its name, as stored (floats as float32; integer ids
  and masks stay integers; no :class:`Preprocessing` is applied to them). ``x`` is then the first one.

Labels are integer class indices [N], label maps [N, H, W] (segmentation) or strings [N]. An optional
``class_names`` array of strings names the classes.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from workbench.data import DataReader, PreviewSample, ReadData
from workbench.data.image_files import array_preview
from workbench.datasets import DatasetRef, class_labels, label_text, split_positions
from workbench.errors import DatasetError
from workbench.limits import check_allocation, data_budget, human_bytes
from workbench.untrusted import open_regular

LABEL_KEYS = ("y", "labels")
CLASS_NAME_KEY = "class_names"
EVALUATION_NAMES = ("val", "validation", "test")
CLASSIC_KEYS = {"x", *LABEL_KEYS, CLASS_NAME_KEY} | {f"{a}_{n}" for a in "xy" for n in ("train", *EVALUATION_NAMES)}


def npz_keys(path: Path) -> list[str]:
    try:
        with open_regular(path, DatasetError) as handle, zipfile.ZipFile(handle) as archive:
            return [name.removesuffix(".npy") for name in archive.namelist()]
    except (OSError, zipfile.BadZipFile, DatasetError):
        return []


def _own_split_keys(keys: list[str]) -> tuple[str, str] | None:
    """('x_train', 'x_test') when the archive comes split."""
    if not set(keys) <= CLASSIC_KEYS:
        return None
    evaluation = next((f"x_{n}" for n in EVALUATION_NAMES if f"x_{n}" in keys), None)
    return ("x_train", evaluation) if "x_train" in keys and evaluation is not None else None


class _Archive:
    """An open archive's members, with each array's declared shape read from its header."""

    def __init__(self, archive: zipfile.ZipFile, path: Path) -> None:
        from workbench.loading import check_zip_expansion

        self.archive, self.path = archive, path
        self.members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        check_zip_expansion(list(self.members.values()), path, DatasetError)

    def header(self, key: str) -> tuple[tuple[int, ...], bool, np.dtype]:
        """The declared shape, order and dtype, refused when the member cannot hold what it declares."""
        from numpy.lib import format as npy

        info = self.members[key]
        with self.archive.open(info) as member:
            shape, fortran, dtype = _read_header(member, npy, key, self.path)
        nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if nbytes > info.file_size:
            raise DatasetError(
                f"array '{info.filename}' declares {human_bytes(nbytes)} but the archive holds "
                f"{human_bytes(info.file_size)}",
                self.path,
            )
        return shape, fortran, dtype

    def count(self, key: str) -> int:
        shape = self.header(key)[0]
        return int(shape[0]) if shape else 1

    def rows(self, key: str, positions: np.ndarray) -> np.ndarray:
        """The rows at ``positions``, reading the array only up to the last of them."""
        needed = int(positions.max()) + 1 if len(positions) else 0
        array = read_npy_member(self.archive, self.members[key], self.path, needed)
        return array[positions] if array.ndim else array

    def labels(self, key: str, positions: np.ndarray, every: bool) -> np.ndarray:
        """The labels at ``positions``; ``every``: all of them are checked first (a split never hides a
        broken label, as it never hides a broken image)."""
        if not every:
            return _labels(self.rows(key, positions), self.path)
        return _labels(read_npy_member(self.archive, self.members[key], self.path, None), self.path)[positions]


def _read_header(member, npy, name: str, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = npy.read_magic(member)
    header = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    shape, fortran, dtype = header(member)
    if dtype.hasobject:
        raise DatasetError(f"array '{name}' holds Python objects (a pickle); only numeric arrays are read", path)
    return shape, fortran, dtype


def read_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, limit: int | None) -> np.ndarray:
    """One array from the archive: header first (dtype, shape), then only the bytes that declares
    (its first ``limit`` rows when given)."""
    from numpy.lib import format as npy

    name = info.filename
    with archive.open(info) as member:
        shape, fortran, dtype = _read_header(member, npy, name, path)
        rows = shape[0] if shape else 1
        if limit is not None and shape and not fortran:  # Fortran-ordered rows are not contiguous: read them all
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


def _samples(x: np.ndarray, name: str, path: Path) -> np.ndarray:
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DatasetError(
            f"'{name}' must be numeric samples with at least 2 dimensions, got {x.dtype}{list(x.shape)}", path
        )
    if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
        raise DatasetError(f"'{name}' holds NaN or infinite values", path)
    return x


def _labels(y: np.ndarray, path: Path) -> np.ndarray:
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    return class_labels(y, path)


def _input(array: np.ndarray, name: str, path: Path) -> np.ndarray:
    """A named model input as it is fed: floats as float32, integers and booleans as stored."""
    if array.dtype == np.bool_:
        return array
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DatasetError(f"array '{name}' must be numeric, got {array.dtype}", path)
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise DatasetError(f"array '{name}' holds NaN or infinite values", path)
        return array.astype(np.float32)
    return array


class NpzReader(DataReader):
    kind = "npz"
    description = ".npz archives (x and y arrays, x_train/x_test, or one named array per model input)"
    priority = 90

    def matches(self, path: Path) -> bool:
        return path.suffix.lower() == ".npz"

    def own_split(self, ref: DatasetRef) -> str | None:
        path = Path(ref.path)
        keys = _own_split_keys(npz_keys(path)) if path.is_file() else None
        return f"{keys[0]} and {keys[1]} arrays" if keys else None

    def _open(self, path: Path, body):
        if not path.exists():
            raise DatasetError("dataset file does not exist", path)
        try:
            with open_regular(path, DatasetError) as handle, zipfile.ZipFile(handle) as archive:
                return body(_Archive(archive, path))
        except DatasetError:
            raise
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
            raise DatasetError(f"not a readable .npz archive ({str(exc).splitlines()[0][:200]})", path) from None

    def load(self, ref: DatasetRef) -> ReadData:
        read = self._open(Path(ref.path), lambda archive: self._read(archive, ref, ref.limit))
        if len(read.x) == 0:
            raise DatasetError("the dataset holds no samples", ref.path)
        return read

    def preview(self, ref: DatasetRef, count: int) -> list[PreviewSample]:
        read = self._open(Path(ref.path), lambda archive: self._read(archive, ref, count))
        shown = next(iter(read.inputs.values())) if read.inputs else read.x  # as stored, not as float32
        labels = [label_text(v, read.class_names) for v in read.y] if read.y is not None else [""] * len(shown)
        return [array_preview(sample, label) for sample, label in zip(shown, labels, strict=True)]

    def _read(self, archive: _Archive, ref: DatasetRef, limit: int | None) -> ReadData:
        path, keys = archive.path, list(archive.members)
        names = self._class_names(archive)
        if not set(keys) <= CLASSIC_KEYS:
            return self._read_named(archive, ref, limit, names)
        split_keys = _own_split_keys(keys)
        parts = {"train": split_keys[0], "evaluation": split_keys[1]} if split_keys else {"all": "x"}
        if "all" in parts and "x" not in keys:
            raise DatasetError(f"no array 'x' in the archive (found: {', '.join(keys) or 'none'})", path)
        counts = {}
        for part, x_key in parts.items():
            counts[part] = archive.count(x_key)
            y_key = self._y_key(x_key, keys)
            if y_key is not None and archive.count(y_key) != counts[part]:
                raise DatasetError(
                    f"'{x_key}' has {counts[part]} samples but '{y_key}' has {archive.count(y_key)} labels", path
                )
        xs, ys = [], []
        every = not (ref.split == "all" and limit)
        for part, positions in split_positions(counts, ref.split, limit, path):
            x_key = parts[part]
            y_key = self._y_key(x_key, keys)
            xs.append(_samples(archive.rows(x_key, positions), x_key, path))
            ys.append(archive.labels(y_key, positions, every) if y_key is not None else None)
        x = np.concatenate(xs) if len(xs) > 1 else xs[0]
        labelled = all(y is not None for y in ys)
        y = (np.concatenate(ys) if len(ys) > 1 else ys[0]) if labelled else None
        return ReadData(x, y, names)

    @staticmethod
    def _y_key(x_key: str, keys: list[str]) -> str | None:
        if x_key == "x":
            return next((k for k in LABEL_KEYS if k in keys), None)
        y_key = "y" + x_key[1:]
        return y_key if y_key in keys else None

    @staticmethod
    def _class_names(archive: _Archive) -> tuple[str, ...]:
        if CLASS_NAME_KEY not in archive.members:
            return ()
        names = read_npy_member(archive.archive, archive.members[CLASS_NAME_KEY], archive.path, None)
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetError(
                f"'{CLASS_NAME_KEY}' must be a list of strings, got {names.dtype}{list(names.shape)}", archive.path
            )
        return tuple(str(n) for n in class_labels(names, archive.path))

    def _read_named(self, archive: _Archive, ref: DatasetRef, limit: int | None, names: tuple[str, ...]) -> ReadData:
        path = archive.path
        label_key = next((k for k in LABEL_KEYS if k in archive.members), None)
        input_keys = [k for k in archive.members if k not in (*LABEL_KEYS, CLASS_NAME_KEY)]
        counts = {}
        for key in [*input_keys, *([label_key] if label_key else [])]:
            shape = archive.header(key)[0]
            if not shape:
                raise DatasetError(
                    f"array '{key}' is a scalar: every array needs a first axis of samples (declare a fixed "
                    f"value as a constant instead: --const {key}=VALUE)",
                    path,
                )
            counts[key] = int(shape[0])
        first = input_keys[0]
        for key, count in counts.items():
            if count != counts[first]:
                raise DatasetError(f"array '{key}' has {count} samples but '{first}' has {counts[first]}", path)
        ((_part, positions),) = split_positions({"all": counts[first]}, ref.split, limit, path)
        inputs = {key: _input(archive.rows(key, positions), key, path) for key in input_keys}
        y = archive.labels(label_key, positions, not (ref.split == "all" and limit)) if label_key else None
        return ReadData(np.asarray(inputs[first], dtype=np.float32), y, names, inputs, ready=True)
