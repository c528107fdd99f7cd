"""Quantization-aware training: fine-tune with fake-quantized int8 weights, then export to int8 QDQ.

Weights pass through per-channel symmetric int8 fake quantization (straight-through gradients) while
the model fine-tunes on labelled data, so they settle where rounding costs least. The result is then
quantized statically (QDQ, calibrated on the same data) by the ``quantize_int8`` plugin. Activations
are not fake-quantized during training; their ranges come from calibration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from workbench.errors import PluginError
from workbench.plugin import Plugin, PluginKind, PluginParams, Task, run_plugin

if TYPE_CHECKING:
    from workbench.model import Model


class QatParams(PluginParams):
    epochs: int = Field(
        2,
        ge=1,
        le=50,
        description="fine-tuning epochs with fake-quantized weights",
        json_schema_extra={"search": [1, 4], "recovers": "up"},
    )
    learning_rate: float = Field(0.0005, ge=1e-6, le=0.05, description="peak learning rate")
    calibration_samples: int = Field(
        128, ge=8, le=2048, description="samples for activation calibration", json_schema_extra={"tune": False}
    )
    reduce_range: bool = Field(
        True, description="7-bit weights, trained and exported alike (see int8 quantization: avoids x86 saturation)"
    )


class QatInt8(Plugin):
    id = "qat_int8"
    title = "Quantization-aware training (int8)"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"torch"})
    Params = QatParams
    description = "Fine-tune with fake-quantized int8 weights, then export static int8 QDQ."

    def apply(self, model: Model, params: QatParams, task: Task) -> Model:  # type: ignore[override]
        import torch
        from torch import nn
        from torch.nn.utils import parametrize
        from workbench.plugins.quantize_int8 import QuantizeInt8

        from workbench.training import train

        data = task.data("train", "quantization-aware training", labels=True)
        module = model.copy_torch_module()
        if isinstance(module, (torch.jit.ScriptModule, torch.fx.GraphModule)):
            raise PluginError("quantization-aware training needs an eager torch module (a state-dict checkpoint)")
        layers = [m for m in module.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]
        for layer in layers:
            parametrize.register_parametrization(layer, "weight", _FakeQuantInt8(63 if params.reduce_range else 127))
        train(module, data.x, labels=data.y, epochs=params.epochs, lr=params.learning_rate, task=task.sub(0.0, 0.8))
        for layer in layers:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)
        tuned = model.derive(torch_module=module.eval())
        task.report(0.8, "exporting to int8 QDQ")
        return run_plugin(
            QuantizeInt8(),
            tuned,
            {
                "mode": "static",
                "quant_format": "QDQ",
                "per_channel": True,
                "calibration_samples": params.calibration_samples,
                "reduce_range": params.reduce_range,
            },
            task.sub(0.8, 1.0),
        )


def _fake_quant_module():
    import torch
    from torch import nn

    class FakeQuantInt8(nn.Module):
        """Per-output-channel symmetric rounding to ±levels with straight-through gradients."""

        def __init__(self, levels: int) -> None:
            super().__init__()
            self.levels = levels

        def forward(self, weight):
            scale = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1).clamp(min=1e-8) / self.levels
            zero = torch.zeros(weight.shape[0], dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(weight, scale, zero, 0, -self.levels, self.levels)

    return FakeQuantInt8


def _FakeQuantInt8(levels: int):
    return _fake_quant_module()(levels)
