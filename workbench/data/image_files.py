"""Image files and image arrays, shared by the readers that hold images: sizes from headers before
anything is decoded, decoding with the declared resize and colour, and previews."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.data import PreviewSample
from workbench.errors import DatasetError
from workbench.limits import MAX_IMAGE_PIXELS, check_allocation, data_budget
from workbench.untrusted import open_regular

if TYPE_CHECKING:
    from workbench.datasets import Preprocessing

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def image_size(file: Path) -> tuple[int, int]:
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


def decoded_bytes(file: Path, prep: Preprocessing) -> int:
    """Bytes ``file`` takes once decoded to float32 with ``prep``'s resize and colour (header only)."""
    width, height = image_size(file)
    if prep.resize:
        height, width = prep.resize
    return width * height * (1 if prep.grayscale else 3) * 4


def decode_image(file: Path, prep: Preprocessing | None = None) -> np.ndarray:
    """uint8 [H, W] (grayscale) or [H, W, 3], resized as ``prep`` says; ``None``: as stored, in RGB or L."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_regular(file, DatasetError) as handle, Image.open(handle) as img:
            if prep is None:
                img = img.convert("L" if img.mode in ("L", "1", "I;16", "I", "F") else "RGB")
            else:
                img = img.convert("L" if prep.grayscale else "RGB")
                if prep.resize:
                    img = img.resize((prep.resize[1], prep.resize[0]), Image.Resampling.BILINEAR)
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read image ({str(exc).splitlines()[0][:200]})", file) from None


def decode_images(files: Sequence[Path], prep: Preprocessing, where: Path, *, sized: bool = False) -> np.ndarray:
    """The images stacked, [N, H, W] or [N, H, W, 3] uint8, after checking (from headers, unless
    ``sized`` says the caller did) that they fit the data budget decoded to float32."""
    if not sized:
        check_allocation(
            sum(decoded_bytes(file, prep) for file in files),
            f"{len(files)} images decoded to float32",
            where,
            budget=data_budget(),
            error=DatasetError,
            hint="use --limit or --resize, or raise WORKBENCH_DATA_BUDGET_MB",
        )
    images = [decode_image(file, prep) for file in files]
    if len({im.shape for im in images}) > 1:
        raise DatasetError("images differ in size: set a resize in the preprocessing", where)
    if not images:
        raise DatasetError("no images to read", where)
    return np.stack(images)


def adjust_images(images: np.ndarray, prep: Preprocessing, where: Path) -> np.ndarray:
    """uint8 image arrays ([N, H, W] or [N, H, W, 3]) with ``prep``'s resize, and grayscale if it asks."""
    from PIL import Image

    colour = images.ndim == 4
    if not (prep.grayscale and colour) and not prep.resize:
        return images  # one-channel data stays one channel: grayscale only ever removes colour
    if images.dtype != np.uint8:
        raise DatasetError(f"resize and grayscale apply to 8-bit images; these are {images.dtype}", where)
    height, width = prep.resize or images.shape[1:3]
    mode = "L" if prep.grayscale or not colour else "RGB"
    channels = 1 if mode == "L" else 3
    check_allocation(
        len(images) * height * width * channels * 4,
        f"{len(images)} images of {height}x{width} decoded to float32",
        where,
        budget=data_budget(),
        error=DatasetError,
        hint="use --limit or a smaller --resize, or raise WORKBENCH_DATA_BUDGET_MB",
    )
    out = []
    for image in images:
        img = Image.fromarray(image).convert(mode)
        if prep.resize:
            img = img.resize((width, height), Image.Resampling.BILINEAR)
        out.append(np.asarray(img))
    return np.stack(out)


def array_preview(sample: np.ndarray, label: str) -> PreviewSample:
    """An image when ``sample`` looks like one ([H, W], [H, W, C] or [C, H, W] with 1 or 3 channels), else an array."""
    data = np.asarray(sample)
    if data.ndim == 3 and data.shape[0] in (1, 3) and data.shape[-1] not in (1, 3):
        data = data.transpose(1, 2, 0)
    if data.ndim == 3 and data.shape[-1] == 1:
        data = data[..., 0]
    image = (data.ndim == 2 and min(data.shape) >= 4) or (data.ndim == 3 and data.shape[-1] == 3)
    if not image or not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        return PreviewSample("array", np.asarray(sample), label)
    if data.dtype == np.uint8:
        return PreviewSample("image", np.ascontiguousarray(data), label)
    values = data.astype(np.float64)
    finite = values[np.isfinite(values)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    span = high - low if high > low else 1.0
    scaled = np.clip(np.nan_to_num((values - low) / span * 255.0, nan=0.0), 0, 255)
    return PreviewSample("image", scaled.astype(np.uint8), label)


PREVIEW_SIZE = 256  # previews are thumbnails: no side longer than this


def preview_image(file: Path, grayscale: bool = False) -> np.ndarray:
    """A thumbnail of ``file`` (uint8 [H, W] or [H, W, 3]); the header is checked before decoding."""
    from PIL import Image, UnidentifiedImageError

    image_size(file)
    try:
        with open_regular(file, DatasetError) as handle, Image.open(handle) as img:
            img.draft(None, (PREVIEW_SIZE, PREVIEW_SIZE))  # JPEG decodes at a fraction of its size
            gray = grayscale or img.mode in ("L", "1", "I;16", "I", "F")
            img = img.convert("L" if gray else "RGB")
            img.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
            return np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"cannot read image ({str(exc).splitlines()[0][:200]})", file) from None
