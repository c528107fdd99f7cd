"""One-click export of a variant for a device profile: plan (budgets, refusals, estimates), convert,
verify in the runtimes that run here, and write a complete bundle atomically.

Bundle: the model file(s), ``manifest.json`` (device, precision, I/O, preprocessing, metrics, sha256 of
every file, recipe, estimates, verification), ``README.md`` with a run snippet, ``report.json`` (parity
and benchmark) and optionally fleet packaging (AWS IoT Greengrass recipe or Azure IoT Edge manifest).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from workbench.devices import DeviceProfile, Precision
from workbench.errors import WorkbenchError, describe_exception
from workbench.evaluate import snr_db
from workbench.fileio import atomic_write_bytes, atomic_write_text, remove_abandoned, sha256_bytes, staging_dir
from workbench.plugin import Task
from workbench.runtime import make_session, run_batches

if TYPE_CHECKING:
    import onnx

    from workbench.model import Model
    from workbench.project import Project

Fleet = Literal["greengrass", "azure"]
# (min top-1 agreement, min output SNR dB) an exported artifact must reach against its variant.
TOLERANCE: dict[str, tuple[float, float]] = {
    "fp32": (0.999, 40.0),  # other runtimes' kernels round differently: ~50 dB is normal
    "fp16": (0.99, 30.0),
    "int8-weights": (0.97, 20.0),
    "int8": (0.97, 15.0),
    "int4": (0.95, 10.0),
}
VERIFY_SAMPLES = 64
EXPORTING = ".exporting-"  # staging folders of an export, inside the output folder


class ExportRefused(WorkbenchError):
    """The device cannot take this model; nothing was written."""


@dataclass
class Budget:
    label: str
    used: int
    limit: int

    @property
    def fraction(self) -> float:
        return self.used / self.limit if self.limit else float("inf")


@dataclass
class ExportPlan:
    device: DeviceProfile
    variant_id: str
    variant_precision: Precision
    export_precision: Precision
    budgets: list[Budget]
    latency_estimate_s: float | None
    energy_estimate_j: float
    refusals: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.refusals


def variant_precision(proto: onnx.ModelProto) -> Precision:
    ops = {n.op_type for n in proto.graph.node}
    if "MatMulNBits" in ops:
        return "int4"
    if ops & {
        "QuantizeLinear",
        "QLinearConv",
        "QLinearMatMul",
        "DynamicQuantizeLinear",
        "ConvInteger",
        "MatMulInteger",
    }:
        return "int8"
    if "DequantizeLinear" in ops:
        return "int8-weights"
    if any(init.data_type == 10 for init in proto.graph.initializer):  # TensorProto.FLOAT16
        return "fp16"
    return "fp32"


def _export_precision(device: DeviceProfile, precision: Precision) -> Precision:
    fmt = device.export.format
    if fmt == "c-header":
        return "int8-weights"
    if fmt == "onnx-fp16" and precision == "fp32":
        return "fp16"
    if fmt == "tflite":
        return "int8"
    return precision


def plan_export(project: Project, variant_id: str, device: DeviceProfile) -> ExportPlan:
    """Everything known before writing a byte: budgets, estimates, refusals (with a fix), warnings."""
    from workbench.analysis import analyze

    variant = project.get(variant_id)
    model = project.load_model(variant_id)
    proto = model.to_onnx()
    precision = variant_precision(proto)
    target = _export_precision(device, precision)
    analysis = analyze(model.derive(onnx_proto=proto))
    weights = analysis.weight_bytes
    storage = {"fp16": weights // 2, "int8-weights": weights // 4 + 4096, "int8": weights // 4 + 4096}.get(target)
    storage = storage if storage is not None and target != precision else len(model.onnx_bytes())
    activation_scale = {"fp16": 0.5, "int8": 0.25, "int8-weights": 0.25 if device.export.format == "c-header" else 1}
    peak = int(analysis.peak_activation_bytes * activation_scale.get(target, 1.0))
    latency, energy = device.estimate(analysis.macs, target)
    plan = ExportPlan(
        device=device,
        variant_id=variant.id,
        variant_precision=precision,
        export_precision=target,
        budgets=[
            Budget("model storage", storage, device.storage_bytes),
            Budget("peak activations", peak, device.ram_bytes),
        ],
        latency_estimate_s=latency,
        energy_estimate_j=energy,
    )
    from workbench.evaluate import safe_batch

    try:
        safe_batch(analysis, len(model.onnx_bytes()))  # conversion checks and the benchmark run it here
    except WorkbenchError as exc:
        plan.refusals.append(f"the model cannot be run here to verify it: {exc.reason}")
    if device.supported_ops is not None:
        unsupported = sorted({n.op_type for n in proto.graph.node} - set(device.supported_ops) - {"Constant"})
        if unsupported:
            plan.refusals.append(
                f"operator(s) {', '.join(unsupported)} have no kernels on {device.name}; try the simplify_graph "
                "plugin first (it folds some away) or pick an architecture built from supported layers"
            )
    if storage > device.storage_bytes:
        need = 1 - device.storage_bytes / storage
        hint = (
            "quantize to int8 first (about 4x smaller)"
            if precision == "fp32" and "int8" in device.precisions
            else f"prune or distill to make it {need:.0%} smaller"
        )
        plan.refusals.append(
            f"model needs {storage:,} B of storage; {device.name} has {device.storage_bytes:,} B: {hint}"
        )
    if peak > device.ram_bytes:
        plan.refusals.append(
            f"peak activations of {peak:,} B exceed the {device.ram_bytes:,} B RAM budget: lower the input "
            "resolution or prune channels (structured_prune)"
        )
    if device.export.format == "tflite":
        plan.refusals.append(_tflite_reason(model))
    if target not in device.precisions and device.export.format not in ("c-header", "onnx-fp16"):
        suggestion = "quantize to int8 first" if "int8" in device.precisions else f"use {device.precisions[0]}"
        plan.refusals.append(f"{target} is not a precision {device.name} runs: {suggestion}")
    metrics = variant.metrics
    if precision == "int8" and metrics is not None and metrics.latency_ratio and metrics.latency_ratio > 1.05:
        plan.warnings.append(
            f"int8 ran {metrics.latency_ratio:.2f}x slower than fp32 on this host; int8 weight-only storage "
            "keeps the size gain at fp32 speed on CPUs without fast int8"
        )
    if device.export.format == "ort":
        plan.warnings.append(
            "the bundle's required_operators.config lists the operators a reduced ONNX Runtime "
            "Mobile build must include"
        )
    return plan


def _tflite_reason(model: Model) -> str:
    import importlib.util

    if importlib.util.find_spec("ai_edge_torch") is None:
        return (
            "full-int8 TFLite needs the PyTorch-to-LiteRT converter (pip install ai-edge-torch, which pulls "
            "TensorFlow); it is not installed here. Export for another device, or install it where a "
            "TensorFlow-compatible torch is available"
        )
    if not model.has_torch_lineage:
        return "full-int8 TFLite conversion starts from a torch model; this variant has only an ONNX graph"
    return "full-int8 TFLite conversion through ai-edge-torch is not wired up in this version yet"


def export_for_device(
    project: Project,
    variant_id: str,
    device: DeviceProfile,
    out_dir: str | Path,
    *,
    fleet: Fleet | None = None,
    task: Task | None = None,
) -> Path:
    """Write ``out_dir/<variant>-<device>/`` (complete or not at all) and return it."""
    task = task or Task()
    plan = plan_export(project, variant_id, device)
    if not plan.ok:
        raise ExportRefused(f"cannot export for {device.name}: " + "; ".join(plan.refusals))
    variant = project.get(variant_id)
    model = project.load_model(variant_id)
    out_dir = Path(out_dir)
    target = out_dir / f"{_safe(variant.name)}-{variant.id}-{device.id}"
    if target.exists():
        raise WorkbenchError("a bundle for this variant and device already exists there", target)
    remove_abandoned(out_dir, (f".*{EXPORTING}*",))  # what an export killed mid-way left here
    # The bundle appears complete or not at all; a failed or cancelled export leaves nothing behind.
    with staging_dir(out_dir, f".{target.name}{EXPORTING}") as staging:
        task.report(0.05, f"converting for {device.name}")
        artifacts, checks, runner = _convert(model, plan, staging, task.sub(0.05, 0.5))
        task.report(0.5, "verifying outputs against the variant")
        x = _verification_inputs(project, model)
        reference = run_batches(make_session(model.onnx_bytes()), x, shapes=model.concrete_shapes())
        verification = _verify(runner, reference, x, plan.export_precision) if runner else None
        if verification is not None and not verification["passed"]:
            raise WorkbenchError(f"exported model does not match the variant: {verification['summary']}")
        task.report(0.7, "benchmarking on this host")
        benchmark = _benchmark(model, runner, x[:1]) if runner else None
        recipe = project.recipe(variant_id)
        (staging / "recipe.yaml").write_text(recipe.dumps("yaml"), encoding="utf-8")
        report = {
            "device": device.id,
            "verification": verification,
            "not_run_here": checks,
            "benchmark_this_host": benchmark,
            "estimates_on_device": {
                "latency_s": plan.latency_estimate_s,
                "energy_j": plan.energy_estimate_j,
                "basis": f"MACs / sustained MAC/s and energy per MAC from the {device.id} profile "
                f"({device.throughput_source}; {device.energy_source})",
                "label": "estimate, not a measurement",
            },
            "budgets": [{"label": b.label, "used": b.used, "limit": b.limit} for b in plan.budgets],
            "warnings": plan.warnings,
        }
        atomic_write_text(staging / "report.json", strict_json(report))
        (staging / "README.md").write_text(_readme(device, plan, artifacts, model), encoding="utf-8")
        if fleet is not None:
            _fleet(fleet, staging, variant.id, device, artifacts)
        task.check()
        manifest = _manifest(
            project, variant, model, device, plan, staging, verification, recipe.model_dump(mode="json")
        )
        atomic_write_text(staging / "manifest.json", strict_json(manifest))
        staging.chmod(0o755)
        staging.rename(target)
    task.report(1.0, f"exported to {target}")
    return target


def strict_json(data: Any) -> str:
    """JSON that every parser accepts: a NaN or infinity is a bug upstream, never written to a bundle."""
    try:
        return json.dumps(data, indent=2, default=str, allow_nan=False)
    except ValueError:
        raise WorkbenchError("refusing to write a manifest with a NaN or infinite figure in it") from None


# --- conversion ------------------------------------------------------------------------------------
class _Runner:
    """Runs an exported artifact in its runtime on this host."""

    def __init__(self, label: str, fn) -> None:
        self.label, self.fn = label, fn

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.fn(x)


def _ort_runner(path: Path, label: str, shapes: dict[str, tuple[int, ...]]) -> _Runner:
    data = path.read_bytes()
    session = make_session(data)
    return _Runner(label, lambda x: run_batches(session, x, shapes=shapes))


def _convert(model: Model, plan: ExportPlan, staging: Path, task: Task) -> tuple[list[str], list[str], _Runner | None]:
    fmt = plan.device.export.format
    onnx_bytes = model.onnx_bytes()
    shapes = model.concrete_shapes()
    not_run: list[str] = []
    if fmt == "onnx":
        atomic_write_bytes(staging / "model.onnx", onnx_bytes)
        return ["model.onnx"], not_run, _ort_runner(staging / "model.onnx", "onnxruntime (this host)", shapes)
    if fmt == "ort":
        files = _to_ort(onnx_bytes, staging)
        return files, not_run, _ort_runner(staging / "model.ort", "onnxruntime, .ort format", shapes)
    if fmt == "onnx-fp16":
        proto = model.to_onnx()
        if plan.export_precision == "fp16" and plan.variant_precision == "fp32":
            from workbench.plugin import run_plugin
            from workbench.plugins.quantize_fp16 import QuantizeFp16

            proto = run_plugin(QuantizeFp16(), model, {}, task).to_onnx()
        name = "model_fp16.onnx" if plan.export_precision == "fp16" else "model.onnx"
        atomic_write_bytes(staging / name, proto.SerializeToString())
        flag = "--fp16" if plan.export_precision == "fp16" else "--int8"
        script = (
            f"#!/bin/sh\n# Run on the Jetson: builds a TensorRT engine for this GPU.\n"
            f"trtexec --onnx={name} --saveEngine=model.engine {flag}\n"
        )
        (staging / "build_engine.sh").write_text(script, encoding="utf-8")
        (staging / "build_engine.sh").chmod(0o755)
        not_run.append(
            "TensorRT engine build (trtexec) and on-GPU parity: need the Jetson; the ONNX it starts "
            "from was checked in onnxruntime here"
        )
        return [name, "build_engine.sh"], not_run, _ort_runner(staging / name, "onnxruntime (TensorRT's input)", shapes)
    if fmt == "openvino":
        return _to_openvino(onnx_bytes, staging), not_run, _openvino_runner(staging / "openvino" / "model.xml", shapes)
    if fmt == "c-header":
        return _to_c_header(model, staging, not_run, shapes)
    raise WorkbenchError(f"export format {fmt} is not supported")


def _to_ort(onnx_bytes: bytes, staging: Path) -> list[str]:
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.onnx"
        source.write_bytes(onnx_bytes)
        try:
            convert_onnx_models_to_ort(
                source, output_dir=Path(tmp) / "out", optimization_styles=[OptimizationStyle.Fixed]
            )
        except Exception as exc:
            raise WorkbenchError(f"conversion to the .ort format failed: {str(exc)[:200]}") from None
        out = Path(tmp) / "out"
        ort_file = next(out.glob("*.ort"))
        config = next(out.glob("*.config"), None)
        shutil.copy(ort_file, staging / "model.ort")
        files = ["model.ort"]
        if config is not None:
            shutil.copy(config, staging / "required_operators.config")
            files.append("required_operators.config")
    return files


def _to_openvino(onnx_bytes: bytes, staging: Path) -> list[str]:
    import openvino as ov

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "model.onnx"
        source.write_bytes(onnx_bytes)
        try:
            converted = ov.convert_model(str(source))
            (staging / "openvino").mkdir()
            ov.save_model(converted, str(staging / "openvino" / "model.xml"), compress_to_fp16=False)
        except Exception as exc:
            raise WorkbenchError(f"OpenVINO conversion failed: {str(exc).splitlines()[0][:200]}") from None
    return ["openvino/model.xml", "openvino/model.bin"]


def _openvino_runner(xml: Path, shapes: dict[str, tuple[int, ...]]) -> _Runner:
    import openvino as ov

    try:
        compiled = ov.Core().compile_model(str(xml), "CPU")
    except Exception as exc:
        raise WorkbenchError(f"OpenVINO cannot compile the converted model ({describe_exception(exc)})") from None
    names = [port.get_any_name() for port in compiled.inputs]
    # Inputs beyond the first get zeros, exactly as the onnxruntime reference run does.
    extra = {n: np.zeros(shapes[n], dtype=np.float32) for n in names[1:] if n in shapes}

    def run(x: np.ndarray) -> np.ndarray:
        try:
            outputs = [compiled({names[0]: x[i : i + 1], **extra})[compiled.output(0)] for i in range(len(x))]
        except Exception as exc:
            raise WorkbenchError(f"OpenVINO failed while running the model ({describe_exception(exc)})") from None
        return np.concatenate(outputs)

    return _Runner(f"OpenVINO {ov.__version__} CPU plugin (this host)", run)


def _to_c_header(
    model: Model, staging: Path, not_run: list[str], shapes: dict[str, tuple[int, ...]]
) -> tuple[list[str], list[str], _Runner]:
    """int8 per-channel weights + float scales as C arrays, and the same graph as ONNX for reference."""
    from onnx import numpy_helper

    from workbench.onnx_prep import copy_proto, strip_initializer_inputs
    from workbench.plugins.quantize_int8 import weight_only_int8

    proto = copy_proto(model.to_onnx())
    strip_initializer_inputs(proto)
    proto = weight_only_int8(proto, per_channel=True, exclude=set())
    atomic_write_bytes(staging / "model_int8_weights.onnx", proto.SerializeToString())
    lines = [
        "/* int8 weights (per output channel, symmetric) exported by Model Workbench.",
        " * weight = int8 value * scale[channel]. Layout: row-major, as in the ONNX graph. */",
        "#pragma once",
        "#include <stdint.h>",
        "",
    ]
    for init in proto.graph.initializer:
        array = numpy_helper.to_array(init)
        symbol = "".join(c if c.isalnum() else "_" for c in init.name).strip("_")
        if array.dtype == np.int8:
            lines.append(f"/* shape {list(array.shape)} */")
            lines.append(f"static const int8_t {symbol}[{array.size}] = {{{', '.join(map(str, array.ravel()))}}};")
        elif array.dtype == np.float32 and array.size:
            values = ", ".join(f"{v:.9g}f" for v in array.ravel())
            lines.append(f"static const float {symbol}[{array.size}] = {{{values}}};")
    (staging / "model_weights.h").write_text("\n".join(lines) + "\n", encoding="utf-8")
    not_run.append(
        "the firmware itself (CMSIS-NN kernels on the microcontroller); the int8 weights in the header "
        "were checked by running model_int8_weights.onnx, which holds the same values"
    )
    runner = _ort_runner(staging / "model_int8_weights.onnx", "onnxruntime with the header's int8 weights", shapes)
    return ["model_weights.h", "model_int8_weights.onnx"], not_run, runner


# --- verification, report, manifest ----------------------------------------------------------------
def _verification_inputs(project: Project, model: Model) -> np.ndarray:
    from workbench.datasets import load_dataset, random_inputs_ref

    ref = project.dataset
    if not model.inputs:
        raise WorkbenchError("the model takes no inputs: there is nothing to verify or run on a device")
    shape = model.concrete_shapes()[model.inputs[0].name]
    if ref is not None:
        try:
            data = load_dataset(ref)
            if tuple(data.x.shape[1:]) == tuple(shape[1:]):
                return data.x[:VERIFY_SAMPLES]
        except WorkbenchError:
            pass
    return load_dataset(random_inputs_ref(shape, VERIFY_SAMPLES)).x


def _verify(runner: _Runner, reference: np.ndarray, x: np.ndarray, precision: str) -> dict[str, Any]:
    got = runner(x)
    agreement = float(np.mean(got.reshape(len(x), -1).argmax(1) == reference.reshape(len(x), -1).argmax(1)))
    snr = snr_db(reference, got)
    min_agreement, min_snr = TOLERANCE.get(precision, TOLERANCE["fp32"])
    passed = agreement >= min_agreement and (snr is None or snr >= min_snr)
    snr_text = "identical" if snr is None else f"{snr:.1f} dB"
    return {
        "runtime": runner.label,
        "samples": len(x),
        "precision": precision,
        "agreement": agreement,
        "snr_db": snr,
        "max_abs_diff": float(np.max(np.abs(reference - got))),
        "tolerance": {"min_agreement": min_agreement, "min_snr_db": min_snr},
        "passed": passed,
        "summary": f"{agreement:.2%} top-1 agreement, output SNR {snr_text} in {runner.label}",
    }


def _benchmark(model: Model, runner: _Runner, x: np.ndarray, runs: int = 30) -> dict[str, Any]:
    def median_ms(fn) -> float:
        fn(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - start) * 1000)
        return float(np.median(times))

    session = make_session(model.onnx_bytes())
    shapes = model.concrete_shapes()
    variant_ms = median_ms(lambda v: run_batches(session, v, shapes=shapes))
    artifact_ms = median_ms(runner)
    return {
        "variant_onnxruntime_ms": variant_ms,
        "artifact_ms": artifact_ms,
        "artifact_runtime": runner.label,
        "runs": runs,
        "label": "measured on this host, batch 1, 1 thread",
    }


def _manifest(project, variant, model, device, plan, staging: Path, verification, recipe) -> dict[str, Any]:
    session = make_session(model.onnx_bytes())
    files = {}
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        data = path.read_bytes()
        files[str(path.relative_to(staging))] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    dataset = project.dataset
    return {
        "format": "model-workbench-bundle",
        "version": 1,
        "device": {"id": device.id, "name": device.name, "runtime": device.runtime},
        "precision": plan.export_precision,
        "variant": {"id": variant.id, "name": variant.name, "precision": plan.variant_precision},
        "inputs": [{"name": i.name, "dtype": i.type, "shape": i.shape} for i in session.get_inputs()],
        "outputs": [{"name": o.name, "dtype": o.type, "shape": o.shape} for o in session.get_outputs()],
        "input_shapes": {k: list(v) for k, v in model.concrete_shapes().items()},
        "preprocessing": dataset.preprocessing.model_dump(mode="json") if dataset else None,
        "dataset": dataset.model_dump(mode="json") if dataset else None,
        "metrics": variant.metrics.model_dump(mode="json") if variant.metrics else None,
        "estimates_on_device": {
            "latency_s": plan.latency_estimate_s,
            "energy_j": plan.energy_estimate_j,
            "label": "estimate from the device profile",
        },
        "verification": verification,
        "files": files,
        "recipe": recipe,
    }


_SNIPPETS = {
    "onnx": """```python
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("model.onnx")
x = np.zeros({shape}, np.float32)  # preprocess as described in manifest.json
print(session.run(None, {{"{name}": x}})[0])
```""",
    "ort": """```python
# ONNX Runtime Mobile (or the full onnxruntime) loads the .ort format directly
import numpy as np, onnxruntime as ort
session = ort.InferenceSession("model.ort")
print(session.run(None, {{"{name}": np.zeros({shape}, np.float32)}})[0])
```
For a reduced-size Android/iOS runtime, build onnxruntime with
`--minimal_build --include_ops_by_config required_operators.config`.""",
    "onnx-fp16": """On the Jetson, `sh build_engine.sh` builds `model.engine` with TensorRT's trtexec; load it with
the TensorRT runtime, or run the ONNX file with onnxruntime's TensorRT execution provider.""",
    "openvino": """```python
import numpy as np, openvino as ov
compiled = ov.Core().compile_model("openvino/model.xml", "CPU")  # or "GPU", "NPU"
print(compiled(np.zeros({shape}, np.float32))[compiled.output(0)])
```""",
    "c-header": """`model_weights.h` holds every Conv/Gemm weight as `int8_t` arrays with per-channel float scales
(weight = value * scale[channel]). Wire them into CMSIS-NN (or TFLite Micro) kernels in your firmware;
`model_int8_weights.onnx` is the same network with the same int8 weights, for checking on a PC.""",
}


def _readme(device: DeviceProfile, plan: ExportPlan, artifacts: list[str], model: Model) -> str:
    shape = tuple(next(iter(model.concrete_shapes().values())))
    snippet = _SNIPPETS.get(device.export.format, "").format(shape=shape, name=model.inputs[0].name)
    budgets = "\n".join(f"- {b.label}: {b.used:,} B of {b.limit:,} B ({b.fraction:.0%})" for b in plan.budgets)
    latency = "unknown" if plan.latency_estimate_s is None else f"{plan.latency_estimate_s * 1000:.3f} ms"
    return "\n".join(
        [
            f"# {device.name}",
            "",
            f"Precision: {plan.export_precision}. Files: {', '.join(artifacts)}.",
            "",
            "## Run",
            "",
            snippet,
            "",
            "## Budgets",
            "",
            budgets,
            "",
            "## Estimates (from the device profile, not measured)",
            "",
            f"- latency ≈ {latency} per inference",
            f"- energy ≈ {plan.energy_estimate_j * 1000:.4f} mJ per inference",
            f"- basis: {device.throughput_source}; {device.energy_source}",
            "",
            "`report.json` says what was verified on the exporting machine; `manifest.json` lists hashes and "
            "preprocessing.",
            "",
        ]
    )


def _fleet(kind: Fleet, staging: Path, variant_id: str, device: DeviceProfile, artifacts: list[str]) -> None:
    import base64
    import hashlib

    import yaml

    (staging / "fleet").mkdir()
    if kind == "greengrass":
        recipe = {
            "RecipeFormatVersion": "2020-01-25",
            "ComponentName": f"com.modelworkbench.{variant_id}",
            "ComponentVersion": "1.0.0",
            "ComponentDescription": f"Model Workbench bundle for {device.name}",
            "ComponentPublisher": "Model Workbench",
            "Manifests": [
                {
                    "Platform": {"os": "linux"},
                    "Lifecycle": {"Run": "echo 'replace with your inference command'"},
                    "Artifacts": [
                        {
                            "URI": f"s3://YOUR-BUCKET/{variant_id}/{name}",
                            "Digest": base64.b64encode(hashlib.sha256((staging / name).read_bytes()).digest()).decode(),
                            "Algorithm": "SHA-256",
                        }
                        for name in artifacts
                    ],
                }
            ],
        }
        (staging / "fleet" / "greengrass-recipe.yaml").write_text(
            yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8"
        )
    else:
        manifest = {
            "modulesContent": {
                "$edgeAgent": {
                    "properties.desired": {
                        "modules": {
                            f"workbench-{variant_id}": {
                                "version": "1.0",
                                "type": "docker",
                                "status": "running",
                                "restartPolicy": "always",
                                "settings": {
                                    "image": "YOUR-REGISTRY/your-inference-image:latest",
                                    "createOptions": json.dumps(
                                        {"HostConfig": {"Binds": [f"/opt/models/{variant_id}:/model:ro"]}}
                                    ),
                                },
                            }
                        }
                    }
                }
            }
        }
        (staging / "fleet" / "azure-iot-edge-deployment.json").write_text(
            json.dumps(manifest, indent=2), encoding="utf-8"
        )


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-")
    return "-".join(filter(None, cleaned.split("-")))[:50] or "variant"
