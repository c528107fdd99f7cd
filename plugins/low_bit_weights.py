"""Low-bit weights for study: 4-, 2- or 1-bit (binary with a per-channel scale), with honest accuracy.

Weights are quantized per output channel and stored back as float (so any runtime runs them): the file
is no smaller. The size a packed format would take (n·bits/8 plus one float scale per channel) is
noted on the step as an analysis, never shown as a size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from workbench.onnx_prep import check_loads, copy_proto, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import encode_weights, simulated_note

if TYPE_CHECKING:
    from workbench.model import Model


class LowBitParams(PluginParams):
    bits: Literal[4, 2, 1] = Field(4, description="bits per weight: 4 (±7 levels), 2 (ternary), 1 (binary ±scale)")
    exclude: list[str] = Field(default_factory=list, description="node or weight names to leave untouched")


class LowBitWeights(Plugin):
    id = "low_bit_weights"
    title = "Low-bit weights (4/2/1-bit)"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = LowBitParams
    description = "Per-channel 4/2/1-bit weight quantization, simulated in float (a study: the file is no smaller)."

    def apply(self, model: Model, params: LowBitParams, task: Task) -> Model:  # type: ignore[override]
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)

        def encode(name: str, weight: np.ndarray) -> tuple[np.ndarray, int]:
            rows = weight.reshape(weight.shape[0], -1)
            if params.bits == 1:
                scale = np.abs(rows).mean(axis=1, keepdims=True)  # XNOR-Net's optimal binary scale
                decoded = np.where(rows >= 0, scale, -scale)
            else:
                levels = 2 ** (params.bits - 1) - 1
                scale = np.abs(rows).max(axis=1, keepdims=True) / levels
                scale = np.where(scale == 0, 1.0, scale)
                decoded = np.clip(np.round(rows / scale), -levels, levels) * scale
            return decoded.reshape(weight.shape), math.ceil(weight.size * params.bits / 8) + 4 * rows.shape[0]

        task.report(0.2, f"quantizing weights to {params.bits} bit(s)")
        task.note(simulated_note(encode_weights(proto, encode, set(params.exclude)), proto))
        check_loads(proto, f"{params.bits}-bit weights")
        return model.derive(onnx_proto=proto)
