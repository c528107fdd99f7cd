"""Label-free fidelity of any output against the baseline's: cosine similarity, SNR and max abs
difference, per output. It needs no labels and no output kind, so every model gets it."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from workbench.errors import WorkbenchError


class OutputFidelity(BaseModel):
    cosine: float = Field(description="cosine similarity of the flattened outputs (1.0 when identical)")
    snr_db: float | None = Field(description="10·log10(signal/noise) in dB; None when identical")
    max_abs: float = Field(description="largest absolute difference of any element")

    def describe(self) -> str:
        snr = "identical" if self.snr_db is None else f"{self.snr_db:.1f} dB"
        return f"cosine {self.cosine:.5f}, SNR {snr}, max |diff| {self.max_abs:.3g}"


def snr_db(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """10·log10(signal/noise) of ``candidate`` against ``reference``; None when they are identical."""
    noise = float(np.sum((reference.astype(np.float64) - candidate.astype(np.float64)) ** 2))
    if noise == 0.0:
        return None
    signal = float(np.sum(reference.astype(np.float64) ** 2))
    return 10.0 * float(np.log10(max(signal, 1e-30) / noise))


def output_fidelity(reference: np.ndarray, candidate: np.ndarray) -> OutputFidelity:
    a = np.asarray(reference, dtype=np.float64).reshape(-1)
    b = np.asarray(candidate, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise WorkbenchError(f"outputs differ in size ({a.size} vs {b.size} values): they cannot be compared")
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    cosine = (1.0 if np.array_equal(a, b) else 0.0) if norms == 0.0 else float(np.dot(a, b) / norms)
    return OutputFidelity(cosine=cosine, snr_db=snr_db(a, b), max_abs=float(np.max(np.abs(a - b))) if a.size else 0.0)
