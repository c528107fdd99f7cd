"""LiteRT (TensorFlow Lite) ``.tflite`` for Android, ML Kit and Coral, run here by LiteRT's interpreter.

Conversion starts from the variant's torch module (litert-torch, no TensorFlow); quantization is
ai-edge-quantizer's: fp16 weights, dynamic int8 (int8 weights, activations quantized at run time) and
full int8 calibrated on the project's calibration split, whose inputs and outputs are int8 as Coral and
microcontrollers need. A Coral profile (runtime ``litert-edgetpu``, its operator table in ``target_ops``) also gets
``compile_edgetpu.sh`` and a per-operator prediction of what the Edge TPU compiler maps.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workbench.errors import WorkbenchError, describe_exception
from workbench.exporters import (
    BatchOneSession,
    BundleRuntime,
    Converted,
    ExportContext,
    Exporter,
    PortSpec,
    io_names,
    port_type,
)
from workbench.fileio import atomic_write_bytes
from workbench.runtime import DEFAULT_THREADS, RuntimeSettings

if TYPE_CHECKING:
    from workbench.model import Model
    from workbench.plugin import Task
    from workbench.project import Project

CALIBRATION_SAMPLES = 128  # calibration split samples for full int8's activation ranges
# The Edge TPU takes 8-bit tensors only; anything else stops the mapping there.
_EIGHT_BIT = (np.int8, np.uint8)


class TfliteExporter(Exporter):
    format: ClassVar[str] = "tflite"
    label: ClassVar[str] = "LiteRT (.tflite)"
    runtime: ClassVar[str] = "litert"
    precisions: ClassVar[tuple[str, ...]] = ("fp32", "fp16", "int8-weights", "int8")
    requires: ClassVar[tuple[str, ...]] = ("litert_torch", "ai_edge_quantizer", "ai_edge_litert")

    def refusals(self, model, plan) -> list[str]:
        found = super().refusals(model, plan)
        if found:
            return found
        return torch_lineage_refusals(model, plan.variant_precision)

    def convert(self, context: ExportContext) -> Converted:
        data = write_tflite(context, "model.tflite")
        runtime = litert_runtime(context.staging / "model.tflite", context.model)
        converted = Converted(["model.tflite"], runtime, report={"tflite": data})
        if context.plan.device.runtime == "litert-edgetpu":
            coral = coral_files(context.staging, "model.tflite", set(context.plan.device.target_ops or ()))
            converted.report["edgetpu_placement"] = coral.report["edgetpu_placement"]
            converted.artifacts += coral.artifacts
            converted.not_run += coral.not_run
        return converted

    def open(self, path: Path, runtime: BundleRuntime) -> Any:
        return LiteRtSession(path, runtime)

    def snippet(self, runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> str:
        return "\n".join(
            [
                "```python",
                "import numpy as np",
                "from ai_edge_litert.interpreter import Interpreter",
                f'interpreter = Interpreter(model_path="{runtime.file}", num_threads={runtime.settings.threads})',
                "run = interpreter.get_signature_runner()",
                "# int8 inputs: q = round(x / scale) + zero_point (scale, zero_point in run.get_input_details())",
                f"print(run(**{{name: np.zeros({shape}, np.float32)}}))  # keyed by the file's own names",
                "```",
            ]
        )

    def instructions(self) -> list[str]:
        return [
            "Android: add `com.google.ai.edge.litert:litert` and load `model.tflite` with `Interpreter` (or ML Kit's "
            "custom model API). A full-int8 file takes int8 inputs: quantize with the input's scale and zero point "
            "(manifest.json, `io_quantization`), dequantize outputs the same way; run.py shows how.",
            "Coral: `sh compile_edgetpu.sh` on a machine with edgetpu_compiler, then run `model_edgetpu.tflite` with "
            "the Edge TPU delegate (pycoral or libedgetpu). `report.json` predicts which operators map.",
            "",
        ]


def coral_files(staging: Path, name: str, supported: set[str]) -> Converted:
    """What Coral adds beside a full-int8 ``name``: ``compile_edgetpu.sh`` and the predicted placement."""
    placement = edgetpu_placement(staging / name, supported)
    script = (
        "#!/bin/sh\n# Run where Coral's edgetpu_compiler is installed (Debian/Ubuntu x86-64: apt-get install "
        "edgetpu-compiler).\n# Writes model_edgetpu.tflite and model_edgetpu.log (what mapped to the Edge "
        f"TPU).\nset -e\nedgetpu_compiler --show_operations {name}\n"
    )
    (staging / "compile_edgetpu.sh").write_text(script, encoding="utf-8")
    (staging / "compile_edgetpu.sh").chmod(0o755)
    not_run = (
        "edgetpu_compiler and the Edge TPU itself: the compiler runs only on x86-64 Linux with Coral's "
        f"package, the accelerator is not here. The figures are {name} (the compiler's input, full "
        "int8) in LiteRT's CPU interpreter; the placement is a prediction from Coral's operator table"
    )
    runtime = BundleRuntime(name, litert_settings())
    return Converted(["compile_edgetpu.sh"], runtime, [not_run], {"edgetpu_placement": placement})


def torch_lineage_refusals(model: Model, precision: str) -> list[str]:
    if not model.has_torch_lineage:
        return [
            "LiteRT conversion starts from a torch module, and this variant has only an ONNX graph (onnx2torch, "
            "the usual bridge, needs torchvision, which has no build for this CPU torch): open the model as a "
            "PyTorch checkpoint or a built-in architecture, or export it for onnxruntime (phone, raspberry-pi-5)"
        ]
    if precision != "fp32":
        return [
            f"LiteRT quantizes from the float torch module, and this {precision} variant's weights exist only in "
            "its ONNX graph: export its float parent; the int8 conversion happens in the export"
        ]
    return []


# --- conversion ------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """litert-torch, MLIR and TFLite print progress and logs from C++ straight to file descriptors 1 and 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def sample_inputs(model: Model) -> tuple[Any, ...]:
    import torch

    shapes = model.concrete_shapes()
    return tuple(torch.from_numpy(np.zeros(shapes[spec.name], dtype=spec.dtype)) for spec in model.inputs)


def float_tflite(model: Model) -> bytes:
    """The variant's torch module as a float ``.tflite`` (litert-torch: torch.export, then LiteRT's MLIR)."""
    with quiet_fds():  # its import logs from absl, oneDNN and torchao
        import litert_torch

    module = model.copy_torch_module().eval()
    try:
        with quiet_fds(), tempfile.TemporaryDirectory() as tmp:
            edge = litert_torch.convert(module, sample_inputs(model))
            edge.export(str(Path(tmp) / "model.tflite"))
            return (Path(tmp) / "model.tflite").read_bytes()
    except Exception as exc:
        raise WorkbenchError(f"LiteRT conversion failed ({describe_exception(exc)[:240]})") from None


def _recipe(precision: str) -> Any:
    from ai_edge_quantizer import recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName
    from ai_edge_quantizer.recipe_manager import RecipeManager

    if precision == "int8":
        return recipe.static_wi8_ai8()
    if precision == "int8-weights":
        return recipe.dynamic_wi8_afp32()
    manager = RecipeManager()  # fp16: weights stored as float16, computed in float32
    manager.add_weight_only_config(".*", "*", 16, algorithm_key=AlgorithmName.FLOAT_CASTING)
    return manager.get_quantization_recipe()


def quantize_tflite(float_bytes: bytes, precision: str, calibration: list[list[np.ndarray]] | None) -> bytes:
    from ai_edge_quantizer import quantizer

    if precision == "fp32":
        return float_bytes
    try:
        with quiet_fds():
            engine = quantizer.Quantizer(bytearray(float_bytes), _recipe(precision))
            result = None
            if engine.need_calibration:
                from ai_edge_litert.interpreter import Interpreter

                signatures = Interpreter(model_content=float_bytes).get_signature_list()
                key = next(iter(signatures))
                names = signatures[key]["inputs"]
                samples = [dict(zip(names, sample, strict=True)) for sample in calibration or []]
                result = engine.calibrate({key: samples}, num_threads=1)
            return bytes(engine.quantize(result, enable_progress_report=False).quantized_model)
    except Exception as exc:
        raise WorkbenchError(f"LiteRT {precision} quantization failed ({describe_exception(exc)[:240]})") from None


def calibration_samples(project: Project, model: Model, task: Task, limit: int = CALIBRATION_SAMPLES) -> list:
    """Calibration-split inputs, one list of arrays per sample in the model's input order: real data only,
    never random (random inputs set activation ranges no real input has)."""
    from workbench.datasets import load_dataset
    from workbench.feeds import calibration_feeds

    ref = project.dataset
    if ref is None or not ref.has_splits:  # plan_export refuses this first; never calibrate on random data
        raise WorkbenchError("full int8 needs the calibration split, and this project has no data")
    dataset = load_dataset(ref.with_split("calibration"))
    feeds = calibration_feeds(model.artifact_bytes(), dataset, model.input_spec, limit)
    task.check()
    return [[np.ascontiguousarray(feed[spec.name]) for spec in model.inputs] for feed in feeds]


def write_tflite(context: ExportContext, name: str) -> dict[str, Any]:
    """Convert, quantize as the plan says, write ``name``; returns what the report records."""
    precision = context.plan.export_precision
    context.task.report(0.05, "converting the torch module to LiteRT")
    converted = float_tflite(context.model)
    calibration = None
    if precision == "int8":
        context.task.report(0.5, "calibrating full int8 on the calibration split")
        calibration = calibration_samples(context.project, context.model, context.task)
    quantized = quantize_tflite(converted, precision, calibration)
    atomic_write_bytes(context.staging / name, quantized)
    return {
        "converter": f"litert-torch {_version('litert-torch')}",
        "quantizer": None if precision == "fp32" else f"ai-edge-quantizer {_version('ai-edge-quantizer')}",
        "precision": precision,
        "calibration_samples": len(calibration) if calibration else 0,
        "io_quantization": io_quantization(quantized),
    }


def _version(package: str) -> str:
    from importlib import metadata

    return metadata.version(package)


# --- running ---------------------------------------------------------------------------------------
def litert_settings(threads: int = DEFAULT_THREADS) -> RuntimeSettings:
    return RuntimeSettings(
        runtime="litert",
        version=_version("ai-edge-litert"),
        provider="CPU",
        threads=threads,
        config={"op_resolver": "AUTO"},  # LiteRT's builtin kernels with the XNNPACK delegate, as on Android
    )


def litert_runtime(path: Path, model: Model, settings: RuntimeSettings | None = None) -> BundleRuntime:
    inputs, outputs = io_names(model)
    return BundleRuntime(path.name, settings or litert_settings(), inputs, outputs)


def _interpreter(content: bytes, threads: int = DEFAULT_THREADS) -> Any:
    from ai_edge_litert.interpreter import Interpreter

    with quiet_fds():
        return Interpreter(model_content=content, num_threads=threads)


def _signature(interpreter: Any) -> tuple[list[dict], list[dict]]:
    """(input details, output details) in the signature's order (positional, as the model's)."""
    signatures = interpreter.get_signature_list()
    if not signatures:
        return interpreter.get_input_details(), interpreter.get_output_details()
    key = next(iter(signatures))
    runner = interpreter.get_signature_runner(key)
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    return (
        [{**inputs[name], "signature_name": name} for name in signatures[key]["inputs"]],
        [{**outputs[name], "signature_name": name} for name in signatures[key]["outputs"]],
    )


def io_quantization(content: bytes) -> dict[str, list[dict[str, Any]]]:
    """Each input's and output's dtype, scale and zero point (scale 0: not quantized)."""
    inputs, outputs = _signature(_interpreter(content))

    def describe(details: dict) -> dict[str, Any]:
        scale, zero = details["quantization"]
        return {"dtype": np.dtype(details["dtype"]).name, "scale": float(scale), "zero_point": int(zero)}

    return {"inputs": [describe(d) for d in inputs], "outputs": [describe(d) for d in outputs]}


def quantize_input(array: np.ndarray, details: dict) -> np.ndarray:
    dtype = np.dtype(details["dtype"])
    scale, zero = details["quantization"]
    if dtype.kind in "iu" and scale:
        info = np.iinfo(dtype)
        return np.clip(np.round(array / scale) + zero, info.min, info.max).astype(dtype)
    return array.astype(dtype, copy=False)


def dequantize_output(array: np.ndarray, details: dict) -> np.ndarray:
    scale, zero = details["quantization"]
    if np.dtype(details["dtype"]).kind in "iu" and scale:
        return ((array.astype(np.float32) - zero) * scale).astype(np.float32)
    return array


class LiteRtSession(BatchOneSession):
    """A ``.tflite`` in LiteRT's interpreter that runs like an onnxruntime session: float feeds keyed by the
    model's input names, quantized on the way in and dequantized on the way out when the file is int8."""

    runtime_name: ClassVar[str] = "LiteRT"

    def __init__(self, path: Path, runtime: BundleRuntime) -> None:
        try:
            with quiet_fds():  # LiteRT announces its XNNPACK delegate on stderr
                self._interpreter = _interpreter(path.read_bytes(), runtime.settings.threads)
                self._inputs, self._outputs = _signature(self._interpreter)
                signatures = self._interpreter.get_signature_list()
                self._runner = self._interpreter.get_signature_runner(next(iter(signatures))) if signatures else None
                if self._runner is None:
                    self._interpreter.allocate_tensors()
                # LiteRT applies its delegate at the first run and announces it: run once here, quietly.
                self._run_one([np.zeros(d["shape"], np.float32) for d in self._inputs])
        except Exception as exc:
            raise WorkbenchError(f"LiteRT cannot load the model ({describe_exception(exc)})", path) from None
        names_in = runtime.inputs or tuple(d.get("signature_name", d["name"]) for d in self._inputs)
        names_out = runtime.outputs or tuple(d.get("signature_name", d["name"]) for d in self._outputs)
        self._input_specs = [_port(n, d) for n, d in zip(names_in, self._inputs, strict=False)]
        self._output_specs = [_port(n, d) for n, d in zip(names_out, self._outputs, strict=False)]

    def _run_one(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        values = [quantize_input(a, d) for a, d in zip(arrays, self._inputs, strict=True)]
        if self._runner is not None:
            result = self._runner(**{d["signature_name"]: v for d, v in zip(self._inputs, values, strict=True)})
            raw = [result[d["signature_name"]] for d in self._outputs]
        else:
            for details, value in zip(self._inputs, values, strict=True):
                self._interpreter.set_tensor(details["index"], value)
            self._interpreter.invoke()
            raw = [self._interpreter.get_tensor(d["index"]) for d in self._outputs]
        return [dequantize_output(np.array(r), d) for r, d in zip(raw, self._outputs, strict=True)]


def _port(name: str, details: dict) -> PortSpec:
    scale, _ = details["quantization"]
    dtype = np.float32 if np.dtype(details["dtype"]).kind in "iu" and scale else details["dtype"]
    return PortSpec(name, port_type(dtype), [int(d) for d in details["shape"]])


# --- Edge TPU placement ----------------------------------------------------------------------------
def tflite_operators(content: bytes) -> list[dict[str, Any]]:
    """The main subgraph's operators in execution order: builtin name and its tensors' types."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(content, 0)
    names = {value: key for key, value in vars(schema.BuiltinOperator).items() if not key.startswith("_")}
    types = {value: key for key, value in vars(schema.TensorType).items() if not key.startswith("_")}
    graph = model.subgraphs[0]
    found = []
    for index, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        tensors = [graph.tensors[i] for i in [*(op.inputs if op.inputs is not None else []), *op.outputs] if i >= 0]
        found.append(
            {
                "index": index,
                "op": names.get(builtin, str(builtin)) if builtin != schema.BuiltinOperator.CUSTOM else "CUSTOM",
                "output": (graph.tensors[op.outputs[0]].name or b"").decode(errors="replace")
                if len(op.outputs)
                else "",
                "types": sorted({types.get(t.type, str(t.type)) for t in tensors}),
            }
        )
    return found


def edgetpu_placement(path: Path, supported: set[str]) -> list[dict[str, Any]]:
    """Coral's rule: the compiler maps operators it supports, on 8-bit tensors, up to the first one it does
    not; that one and everything after it run on the CPU (a prediction; edgetpu_compiler decides)."""
    placement = []
    stopped: str | None = None
    for op in tflite_operators(path.read_bytes()):
        eight_bit = all(t in ("INT8", "UINT8", "INT32") for t in op["types"])
        if stopped is None and op["op"] in supported and eight_bit:
            placement.append({**op, "placement": "runs on the target", "reason": "in Coral's operator table"})
            continue
        if stopped is None:
            reason = (
                f"{op['op']} is not in Coral's operator table"
                if op["op"] not in supported
                else f"tensor types {', '.join(op['types'])}: the Edge TPU takes 8-bit tensors only"
            )
            stopped = f"after {op['op']} (operator {op['index']}) falls back"
            placement.append({**op, "placement": "falls back", "reason": reason + "; runs on the CPU"})
            continue
        placement.append({**op, "placement": "falls back", "reason": f"the compiler maps no operator {stopped}"})
    return placement
