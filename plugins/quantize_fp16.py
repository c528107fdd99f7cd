"""fp16 weights and compute (onnxconverter-common), keeping float32 inputs and outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from workbench.errors import PluginError
from workbench.onnx_prep import check_loads, copy_proto, simplify, strip_initializer_inputs
from workbench.plugin import Plugin, PluginKind, PluginParams, Task

if TYPE_CHECKING:
    from workbench.model import Model


class QuantizeFp16Params(PluginParams):
    keep_io_float32: bool = Field(
        True,
        description="keep inputs and outputs float32 (casts at the edges)",
        json_schema_extra={"tune": False},  # float16 I/O changes what the model takes: not a compression choice
    )
    simplify_first: bool = Field(
        True, description="run onnxslim first (folds constants and BN)", json_schema_extra={"tune": False}
    )
    exclude: list[str] = Field(default_factory=list, description="node names to keep in float32")


class QuantizeFp16(Plugin):
    id = "quantize_fp16"
    title = "fp16"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = QuantizeFp16Params
    description = "Half-precision weights and compute; half the size. Fast on GPUs/NPUs, often slow on CPUs."

    def apply(self, model: Model, params: QuantizeFp16Params, task: Task) -> Model:  # type: ignore[override]
        from onnxconverter_common import float16

        notes = task.notes  # shown with the variant
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        if params.simplify_first:
            proto = simplify(proto, notes)
        task.report(0.3, "converting to fp16")
        try:
            converted = float16.convert_float_to_float16(
                proto,
                keep_io_types=params.keep_io_float32,
                node_block_list=params.exclude or None,
            )
        except Exception as exc:
            raise PluginError(f"fp16 conversion failed: {type(exc).__name__}: {str(exc)[:200]}") from None
        check_loads(converted, "fp16 conversion")
        return model.derive(onnx_proto=converted)
