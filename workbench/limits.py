"""Memory limits for what files declare: a size read from a file is checked before it is allocated.

A 300-byte model can declare a billion-element tensor, a checkpoint a 13-million-class layer, a 1 MB
archive gigabytes of arrays. Each such size is checked here first. The budget grows with the model
(a big model legitimately needs big buffers) and ``WORKBENCH_MEMORY_BUDGET_MB`` raises or lowers it.
"""

from __future__ import annotations

import os
from pathlib import Path

from workbench.errors import WorkbenchError

MIB = 1 << 20
BASE_BUDGET = 512 * MIB  # on top of the ~300 MB the workbench itself takes with torch and onnxruntime
PER_MODEL_BYTE = 16  # activations of real networks stay well below 16x their weights at batch 1
MAX_IMAGE_PIXELS = 64_000_000  # a 64-megapixel photo; decoding more is a decompression bomb or a mistake
MAX_COMPRESSION_RATIO = 100  # real tensors and images compress a few times, never a hundredfold
COMPRESSION_CHECK_FROM = 64 * MIB  # small arrays of zeros may compress as much as they like


def available_memory() -> int | None:
    """Bytes the OS could give this process now (Linux: MemAvailable), None when unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def memory_budget(model_bytes: int = 0) -> int:
    """Bytes one model may use for what it declares (inputs, activations, rebuilt layers)."""
    base = _env_mib("WORKBENCH_MEMORY_BUDGET_MB", BASE_BUDGET)
    budget = base + PER_MODEL_BYTE * max(model_bytes, 0)
    available = available_memory()
    return min(budget, int(0.75 * available)) if available else budget


def data_budget() -> int:
    """Bytes a dataset may take once decoded to float32: half of what the machine has free."""
    available = available_memory()
    default = max(BASE_BUDGET, available // 2) if available else 4096 * MIB
    return _env_mib("WORKBENCH_DATA_BUDGET_MB", default)


def check_allocation(
    nbytes: int,
    what: str,
    path: str | Path | None = None,
    *,
    budget: int | None = None,
    error: type[WorkbenchError] = WorkbenchError,
    hint: str = "",
) -> None:
    """Refuse before allocating ``nbytes`` for ``what`` when that exceeds ``budget``."""
    limit = memory_budget() if budget is None else budget
    if nbytes > limit:
        advice = hint or "if this is expected, raise WORKBENCH_MEMORY_BUDGET_MB"
        raise error(
            f"{what} would need {human_bytes(nbytes)}, more than the {human_bytes(limit)} allowed ({advice})", path
        )


def human_bytes(n: int | float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} TiB"


def _env_mib(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        return default
    return int(value * MIB) if value > 0 else default
