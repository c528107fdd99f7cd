"""int8 quantization of ONNX models with onnxruntime's quantizer, plus int8 weight-only storage.

Modes:
- ``dynamic``: weights int8, activations quantized at run time (MatMul/Gemm).
- ``static``: weights and activations int8, calibrated on the task's data (QDQ or QOperator).
- ``weight_only``: weights stored int8 behind DequantizeLinear and computed in float. It is 4x smaller
  on disk and as fast as fp32 when the session disables QDQ fusion, which the workbench's sessions do
  for such models.

Every result is checked to load and run in onnxruntime; otherwise the plugin fails with the reason.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from workbench.errors import PluginError
from workbench.onnx_prep import (
    check_loads,
    copy_proto,
    ensure_opset,
    fuse_hard_swish,
    infer_shapes,
    simplify,
    strip_initializer_inputs,
)
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import refuse_subgraph_weights

if TYPE_CHECKING:
    import onnx

    from workbench.model import Model


class QuantizeInt8Params(PluginParams):
    mode: Literal["static", "dynamic", "weight_only"] = Field(
        "static",
        description="static: int8 weights and activations, calibrated on your data; dynamic: activations "
        "quantized at run time (MatMul/Gemm only); weight_only: int8 storage, float compute",
    )
    quant_format: Literal["QDQ", "QOperator"] = Field(
        "QDQ", description="static: graph representation", json_schema_extra={"tune": False}
    )
    calibration: Literal["MinMax", "Entropy", "Percentile"] = Field(
        "MinMax", description="static: how activation ranges are chosen from the calibration data"
    )
    per_channel: bool = Field(True, description="one scale per output channel (needs opset 13; raised if lower)")
    activations: Literal["int8", "uint8"] = Field("uint8", description="static: signed or unsigned activations")
    reduce_range: bool = Field(
        True,
        description="7-bit weights: x86 CPUs without VNNI (AVX2, most AVX-512) saturate 8-bit products in "
        "their int8 kernels and lose accuracy; 7 bits avoid that everywhere at a small precision cost",
    )
    calibration_samples: int = Field(
        128, ge=8, le=2048, description="static: samples used for calibration", json_schema_extra={"tune": False}
    )
    simplify_first: bool = Field(
        True, description="run onnxslim before quantizing (folds constants and BN)", json_schema_extra={"tune": False}
    )
    exclude: list[str] = Field(default_factory=list, description="node names to keep in float")
    half_scales_and_biases: bool = Field(
        False,
        description="weight_only: store the scales and biases as float16 (cast to float when the session "
        "starts): about 8 % smaller files for a rounding far below int8's",
    )
    keep_most_sensitive: int = Field(
        0,
        ge=0,
        le=32,
        description="mixed precision: also keep the N layers whose int8 weights hurt most in float "
        "(found by a per-layer sweep on the task's data)",
        json_schema_extra={"search": [0, 3]},
    )


class QuantizeInt8(Plugin):
    id = "quantize_int8"
    title = "int8 quantization"
    kind = PluginKind.QUANTIZE
    formats = frozenset({"onnx"})
    Params = QuantizeInt8Params
    description = "onnxruntime int8 quantization (static, dynamic) or int8 weight-only storage."

    def apply(self, model: Model, params: QuantizeInt8Params, task: Task) -> Model:  # type: ignore[override]
        notes = task.notes  # shown with the variant
        proto = copy_proto(model.to_onnx())
        strip_initializer_inputs(proto)
        if params.simplify_first:
            task.report(0.05, "simplifying")
            proto = simplify(proto, notes)
        if params.per_channel or params.mode == "weight_only":
            proto = ensure_opset(proto, 13, notes)
        if params.keep_most_sensitive:
            params = params.model_copy(
                update={
                    "exclude": [
                        *params.exclude,
                        *self._most_sensitive(model.derive(onnx_proto=proto), params.keep_most_sensitive, task),
                    ]
                }
            )
        task.report(0.2, f"quantizing ({params.mode})")
        if params.mode == "weight_only":
            proto = fuse_hard_swish(proto, notes)  # float compute: one kernel instead of four
            result = weight_only_int8(proto, per_channel=params.per_channel, exclude=set(params.exclude))
            if params.half_scales_and_biases:
                from workbench.weight_codec import half_precision_constants

                notes.append(f"{half_precision_constants(result)} scale and bias tensors stored as float16")
        else:
            refuse_subgraph_weights(
                proto,
                f"quantized by int8 {params.mode} (onnxruntime's quantizer leaves subgraphs in float)",
                "mode weight_only stores them as int8",
            )
            result = self._ort_quantize(proto, model, params, task, notes)
        task.report(0.9, "checking the result loads in onnxruntime")
        check_loads(result, f"int8 {params.mode} quantization")
        return model.derive(onnx_proto=result)

    @staticmethod
    def _most_sensitive(model: Model, count: int, task: Task) -> list[str]:
        from workbench.plugin import discover_plugins
        from workbench.sensitivity import sweep

        data = task.data("calibration", "ranking layers by sensitivity (keep_most_sensitive)")
        # ranked by agreement with the float model: any output kind, no labels or charset needed
        report = sweep(
            model, data, discover_plugins(), sparsities=(), samples=128, task=task.sub(0.05, 0.2), use_labels=False
        )
        return report.most_sensitive_int8(count)

    def _ort_quantize(
        self, proto: onnx.ModelProto, model: Model, params: QuantizeInt8Params, task: Task, notes: list[str]
    ) -> onnx.ModelProto:
        import onnx
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_dynamic,
            quantize_static,
        )

        from workbench.runtime import quiet_runtime

        quiet_runtime()  # the quantizer's own calibration sessions log through the default logger
        proto = infer_shapes(proto, notes)
        exclude = [n.name for n in proto.graph.node if n.name in set(params.exclude)]
        with tempfile.TemporaryDirectory() as tmp, _quiet_quantizer():
            out = Path(tmp) / "quantized.onnx"
            try:
                if params.mode == "dynamic":
                    quantize_dynamic(
                        proto,
                        out,
                        per_channel=params.per_channel,
                        reduce_range=params.reduce_range,
                        weight_type=QuantType.QInt8,
                        op_types_to_quantize=["MatMul", "Gemm"],
                        nodes_to_exclude=exclude,
                    )
                else:
                    from workbench.evaluate import runnable_batch

                    runnable_batch(model.derive(onnx_proto=proto))  # calibration runs the model here
                    reader = _CalibrationReader(proto, model, task, params.calibration_samples, notes)
                    quantize_static(
                        proto,
                        out,
                        reader,
                        quant_format=QuantFormat.QDQ if params.quant_format == "QDQ" else QuantFormat.QOperator,
                        per_channel=params.per_channel,
                        reduce_range=params.reduce_range,
                        activation_type=QuantType.QInt8 if params.activations == "int8" else QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, params.calibration),
                        nodes_to_exclude=exclude,
                        extra_options={"ActivationSymmetric": params.activations == "int8"},
                    )
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"onnxruntime's quantizer failed: {type(exc).__name__}: {str(exc)[:200]}") from None
            return onnx.load(str(out))


@contextlib.contextmanager
def _quiet_quantizer():
    """The quantizer logs 'consider pre-processing' on the root logger (we already simplified and inferred),
    and its histogram calibrators print their progress to stdout, in the middle of a CLI's own lines."""
    from workbench.runtime import quiet_stdout

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with quiet_stdout():
            yield
    finally:
        root.setLevel(level)


class _CalibrationReader:
    """Feeds calibration batches of one sample from the calibration split; never random data, which
    would set activation ranges no real input has."""

    def __init__(self, proto: onnx.ModelProto, model: Model, task: Task, count: int, notes: list[str]) -> None:
        from workbench.errors import DatasetError
        from workbench.evaluate import check_dataset_fits
        from workbench.feeds import calibration_feeds

        purpose = "static int8 (it calibrates activation ranges; dynamic and weight-only int8 need no data)"
        dataset = task.data("calibration", purpose)
        try:
            check_dataset_fits(dataset, model.concrete_shapes(), model.input_spec)
        except DatasetError as exc:
            raise PluginError(f"calibration data does not fit the model: {exc.reason}") from None
        feeds = calibration_feeds(proto.SerializeToString(), dataset, model.input_spec, count)
        unit = "frames" if model.input_spec is not None and model.input_spec.streaming else "samples"
        notes.append(f"calibrated on {len(feeds)} {unit} of {dataset.ref.describe()}")
        self._feeds = iter(feeds)
        self._task = task

    def get_next(self) -> dict[str, np.ndarray] | None:
        self._task.check()
        return next(self._feeds, None)

    def rewind(self) -> None:  # required by newer onnxruntime readers; one pass is all we offer
        pass


def weight_only_int8(proto: onnx.ModelProto, *, per_channel: bool, exclude: set[str]) -> onnx.ModelProto:
    """Replace float weights of Conv/Gemm/MatMul (in If/Loop/Scan subgraphs too) by int8 + scale behind a
    DequantizeLinear node."""
    from onnx import helper, numpy_helper

    from workbench.weight_codec import replace_weight, weight_array, weight_slots

    slots = weight_slots(proto, exclude)
    if not slots:
        raise PluginError("no float Conv/Gemm/MatMul weights to store as int8")
    for slot in slots:
        name, axis = slot.name, slot.axis
        weight = weight_array(proto, name)
        reduce_axes = tuple(i for i in range(weight.ndim) if i != axis) if per_channel else None
        scale = np.abs(weight).max(axis=reduce_axes) / 127.0
        scale = np.where(scale == 0, 1.0, scale).astype(np.float32)
        shaped = scale.reshape([-1 if i == axis else 1 for i in range(weight.ndim)]) if per_channel else scale
        quantized = np.clip(np.round(weight / shaped), -127, 127).astype(np.int8)
        q_name, s_name, z_name = f"{name}_int8", f"{name}_scale", f"{name}_zero"
        inits = [
            numpy_helper.from_array(quantized, q_name),
            numpy_helper.from_array(np.asarray(scale, dtype=np.float32), s_name),
            numpy_helper.from_array(np.zeros(scale.shape, dtype=np.int8), z_name),
        ]
        attrs = {"axis": axis} if per_channel else {}
        node = helper.make_node("DequantizeLinear", [q_name, s_name, z_name], [name], name=f"{name}_dq", **attrs)
        replace_weight(proto, name, inits, [node])
    return proto
