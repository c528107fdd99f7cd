"""Per-layer values the graph view colours nodes by: where the layer runs on the chosen device, its
sparsity, its quantization SNR (a quantized variant's layer outputs against the baseline's as measured,
else what int8 would do to its weights) and its latency share (the measured kernel-time profile, else
its share of MACs, labelled an estimate)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from workbench.analysis import Analysis
    from workbench.evaluate import Metrics
    from workbench.model import Model
    from workbench.placement import LayerPlacement

ColorMode = Literal["placement", "sparsity", "quant-snr", "latency-share"]
COLOR_MODES: dict[ColorMode, str] = {
    "placement": "where it runs on the export panel's device",
    "sparsity": "sparsity (share of zero weights)",
    "quant-snr": "quantization SNR",
    "latency-share": "latency share",
}
SNR_GOOD_DB, SNR_BAD_DB = 40.0, 20.0  # int8 per-channel: above 40 dB is harmless, below 20 dB hurts


@dataclass(frozen=True)
class LayerValue:
    """``level`` 0 (good, green) .. 1 (bad, red); None for layers the mode says nothing about."""

    layer: str
    level: float | None
    label: str


def layer_values(
    mode: ColorMode,
    analysis: Analysis,
    model: Model | None = None,
    placements: Sequence[LayerPlacement] = (),
    metrics: Metrics | None = None,
) -> list[LayerValue]:
    if mode == "placement":
        levels = {"runs on the target": 0.0, "falls back": 0.6, "unsupported": 1.0}
        return [LayerValue(p.layer, levels[p.where], f"{p.where}: {p.reason}") for p in placements]
    if mode == "sparsity":
        return [
            LayerValue(layer.name, 1.0 - layer.sparsity, f"sparsity {layer.sparsity:.1%}")
            for layer in analysis.layers
            if layer.sparsity is not None
        ]
    if mode == "latency-share":
        measured = metrics.layer_latency_share if metrics is not None else None
        if measured:
            return [
                LayerValue(name, min(1.0, share * 4), f"{share:.1%} of kernel time (measured profile)")
                for name, share in measured.items()
            ]
        total = sum(layer.macs or 0 for layer in analysis.layers if layer.depth == 0) or 1
        return [
            LayerValue(layer.name, min(1.0, layer.macs / total * 4), f"{layer.macs / total:.1%} of MACs (estimate)")
            for layer in analysis.layers
            if layer.macs
        ]
    measured_snr = metrics.layer_snr_db if metrics is not None else None
    if measured_snr:
        return [
            LayerValue(name, 0.0 if snr is None else _snr_level(snr), _snr_label(snr, "output vs the baseline"))
            for name, snr in measured_snr.items()
        ]
    if model is None:
        return []
    snrs = weight_quantization_snr(model)
    values = []
    for layer in analysis.layers:
        found = [snrs[name] for name in layer.weight_names if name in snrs]
        if found:
            snr = min(found)
            values.append(LayerValue(layer.name, _snr_level(snr), _snr_label(snr, "int8 weights, predicted")))
    return values


def _snr_level(snr: float) -> float:
    return float(np.clip((SNR_GOOD_DB - snr) / (SNR_GOOD_DB - SNR_BAD_DB), 0.0, 1.0))


def _snr_label(snr: float | None, what: str) -> str:
    return f"SNR identical ({what})" if snr is None else f"SNR {snr:.1f} dB ({what})"


def weight_quantization_snr(model: Model, code: str = "int8") -> dict[str, float]:
    """Signal-to-noise ratio (dB) of each Conv/Gemm/MatMul weight after symmetric per-channel quantization."""
    from workbench.weight_codec import dequantized, quantize_weight, weight_array, weight_slots

    proto = model.to_onnx()
    found = {}
    for slot in weight_slots(proto):
        weight = weight_array(proto, slot.name).astype(np.float64)
        codes, scales = quantize_weight(weight, slot.axis, code, None)  # type: ignore[arg-type]
        error = weight - dequantized(codes, scales, slot.shape, slot.axis)
        noise = float((error**2).sum())
        found[slot.name] = float("inf") if noise == 0 else 10 * np.log10(float((weight**2).sum()) / noise)
    return found
