"""TensorFlow Lite Micro for microcontrollers: the full-int8 ``.tflite`` as a C array and a minimal
``main.cc``, run here by the real TFLM interpreter (the ``tflite-micro`` wheel).

RAM is the exact tensor arena TFLM's recording allocator reports; flash is the model's bytes plus the
profile's stated runtime overhead. Both are checked against the profile's budgets after conversion,
when they are known rather than estimated.
"""

from __future__ import annotations

import contextlib
import os
import re
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
)
from workbench.exporters.tflite import (
    _port,
    _signature,
    dequantize_output,
    litert_runtime,
    quantize_input,
    torch_lineage_refusals,
    write_tflite,
)
from workbench.runtime import DEFAULT_THREADS, RuntimeSettings
from workbench.tflite_file import memory_timeline, read_tflite

if TYPE_CHECKING:
    from workbench.devices import DeviceProfile

ARENA_TRIES = (10, 1 << 20, 16 << 20, 128 << 20)  # x model bytes first (TFLM's default), then absolute sizes


class TflmExporter(Exporter):
    format: ClassVar[str] = "tflm"
    label: ClassVar[str] = "TensorFlow Lite Micro (C array)"
    runtime: ClassVar[str] = "tflite-micro"
    precisions: ClassVar[tuple[str, ...]] = ("int8",)
    requires: ClassVar[tuple[str, ...]] = ("litert_torch", "ai_edge_quantizer", "ai_edge_litert", "tflite_micro")
    host_latency_meaningful: ClassVar[bool] = False

    def export_precision(self, device, precision):
        return "int8"  # integer kernels only: CMSIS-NN has no float path worth shipping

    def refusals(self, model, plan) -> list[str]:
        return super().refusals(model, plan) or torch_lineage_refusals(model, plan.variant_precision)

    def convert(self, context: ExportContext) -> Converted:
        data = write_tflite(context, "model.tflite")
        context.task.report(0.8, "measuring the TensorFlow Lite Micro arena")
        firmware = firmware_files(context.staging, "model.tflite", context.plan.device)
        runtime = litert_runtime(context.staging / "model.tflite", context.model, tflm_settings())
        return Converted(
            ["model.tflite", *firmware.artifacts], runtime, firmware.not_run, {"tflite": data, **firmware.report}
        )

    def open(self, path: Path, runtime: BundleRuntime) -> Any:
        return TflmSession(path, runtime)

    def recheck(self, folder: Path, runtime: BundleRuntime, report: dict[str, Any] | None) -> list:
        claimed = ((report or {}).get("tflm") or {}).get("arena_bytes")
        arena = tflm_arena_bytes((folder / runtime.file).read_bytes())
        if claimed is None:
            return [("TFLM arena", None, f"{arena:,} B here; the manifest states none")]
        return [("TFLM arena", arena == claimed, f"{arena:,} B here, {claimed:,} B in the manifest")]

    def snippet(self, runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> str:
        return "\n".join(
            [
                "```python",
                "import numpy as np",
                "from tflite_micro.python.tflite_micro import runtime",
                f'interpreter = runtime.Interpreter.from_file("{runtime.file}")',
                "details = interpreter.get_input_details(0)  # int8: quantize with its scale and zero point",
                f'interpreter.set_input(np.zeros({shape}, details["dtype"]), 0)',
                "interpreter.invoke()",
                "print(interpreter.get_output(0))",
                "```",
            ]
        )

    def instructions(self) -> list[str]:
        return [
            "Firmware: add `model_data.cc`/`model_data.h` and `main.cc` to a TensorFlow Lite Micro project "
            "(tflite-micro's Makefile or your vendor's CMSIS-NN build). `main.cc` sizes the tensor arena from the "
            "measured figure in report.json and registers exactly the operators this model uses.",
            "",
        ]


def firmware_files(staging: Path, name: str, device: DeviceProfile) -> Converted:
    """The C array, its header and ``main.cc`` for ``name``, with the arena TFLM measures and the flash it
    takes, both checked against the device's budgets (over either refuses: nothing is bundled)."""
    from workbench.device_export import ExportRefused

    content = (staging / name).read_bytes()
    measured = tflm_arena(content)
    arena = measured["total"]
    timeline = memory_timeline(read_tflite(staging / name))
    peak = max(timeline, key=lambda step: step.live_bytes)
    overhead = device.runtime_flash_bytes or 0
    flash = len(content) + overhead
    over = []
    if arena > device.ram_bytes:
        over.append(
            f"the TFLM tensor arena needs {arena:,} B and {device.name} has {device.ram_bytes:,} B of RAM: lower "
            "the input resolution or prune channels (structured_prune), which shrinks activations"
        )
    if flash > device.storage_bytes:
        over.append(
            f"the model takes {len(content):,} B + {overhead:,} B of runtime = {flash:,} B of flash and "
            f"{device.name} has {device.storage_bytes:,} B: prune (structured_prune) or distill to a smaller "
            "student first"
        )
    if over:
        raise ExportRefused(f"cannot export for {device.name}: " + "; ".join(over))
    symbol = "g_model"
    (staging / "model_data.h").write_text(_header(symbol, len(content)), encoding="utf-8")
    (staging / "model_data.cc").write_text(_c_array(symbol, content), encoding="utf-8")
    (staging / "main.cc").write_text(_main_cc(symbol, arena, content), encoding="utf-8")
    report = {
        "tflm": {
            "arena_bytes": arena,
            "arena_head_bytes": measured["head"],
            "arena_tail_bytes": measured["tail"],
            "arena_source": f"TFLM RecordingMicroAllocator (print_allocations) on this {name}",
            "memory_timeline": [{"index": s.index, "op": s.op, "live_bytes": s.live_bytes} for s in timeline],
            "timeline_peak": {"index": peak.index, "op": peak.op, "live_bytes": peak.live_bytes},
            "model_bytes": len(content),
            "runtime_flash_bytes": overhead,
            "runtime_flash_source": device.runtime_flash_source,
            "flash_bytes": flash,
            "ram_budget_bytes": device.ram_bytes,
            "flash_budget_bytes": device.storage_bytes,
        },
    }
    not_run = [
        f"the firmware on the microcontroller (CMSIS-NN kernels, its clock): the figures are this {name} "
        "in the TensorFlow Lite Micro interpreter on this host (reference kernels), so parity holds and "
        "latency is the host's, not the device's"
    ]
    runtime = BundleRuntime(name, tflm_settings())
    return Converted(["model_data.cc", "model_data.h", "main.cc"], runtime, not_run, report)


def tflm_settings() -> RuntimeSettings:
    from importlib import metadata

    return RuntimeSettings(
        runtime="tflite-micro",
        version=metadata.version("tflite-micro"),
        provider="reference kernels (host)",
        threads=DEFAULT_THREADS,
        graph_optimization="disabled",  # TFLM runs the graph as written
    )


def _flush_c_stdio() -> None:
    import ctypes

    ctypes.CDLL(None).fflush(None)  # C's stdout is block-buffered when it is not a terminal


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """TFLM prints its allocation report (MicroPrintf) from C++ to file descriptor 2; the text lands in the
    list."""
    captured: list[str] = []
    sys.stderr.flush()
    _flush_c_stdio()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stderr.txt"
        saved = os.dup(2)
        with open(path, "w") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield captured
            finally:
                _flush_c_stdio()
                os.dup2(saved, 2)
                os.close(saved)
        captured.append(path.read_text(errors="replace"))


def _tflm_interpreter(content: bytes) -> Any:
    from tflite_micro.python.tflite_micro import runtime

    last: Exception | None = None
    for size in ARENA_TRIES:
        try:
            with _captured_stderr():
                return runtime.Interpreter.from_bytes(content, arena_size=size * len(content) if size == 10 else size)
        except Exception as exc:  # arena too small, or an operator TFLM has no kernel for
            last = exc
    raise WorkbenchError(f"TensorFlow Lite Micro cannot run the model ({describe_exception(last)[:200]})")


def tflm_arena(content: bytes) -> dict[str, int]:
    """The tensor arena TFLM allocates for this model (after one inference): total, head (the planned
    activations) and tail (persistent structures), from its recording allocator."""
    interpreter = _tflm_interpreter(content)
    details = interpreter.get_input_details(0)
    with _captured_stderr() as printed:
        interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
        interpreter.invoke()
        interpreter.print_allocations()
    text = "".join(printed)
    found = {k: re.search(rf"Arena allocation {k} (\d+) bytes", text) for k in ("total", "head", "tail")}
    if not all(found.values()):
        raise WorkbenchError("TensorFlow Lite Micro did not report its arena")
    return {k: int(m.group(1)) for k, m in found.items() if m}


def tflm_arena_bytes(content: bytes) -> int:
    return tflm_arena(content)["total"]


class TflmSession(BatchOneSession):
    """A ``.tflite`` in the TensorFlow Lite Micro interpreter, run like an onnxruntime session (float feeds
    quantized on the way in, outputs dequantized); names and quantization come from the file."""

    runtime_name: ClassVar[str] = "TensorFlow Lite Micro"

    def __init__(self, path: Path, runtime: BundleRuntime) -> None:
        from workbench.exporters.tflite import _interpreter

        content = path.read_bytes()
        try:
            lite = _interpreter(content)
            signature_inputs, signature_outputs = _signature(lite)
            graph_inputs, graph_outputs = lite.get_input_details(), lite.get_output_details()
        except Exception as exc:
            raise WorkbenchError(
                f"not a model TensorFlow Lite Micro can load ({describe_exception(exc)})", path
            ) from None
        self._interpreter = _tflm_interpreter(content)
        # TFLM addresses inputs by their position in the graph; the model's names follow the signature.
        position = {d["index"]: i for i, d in enumerate(graph_inputs)}
        out_position = {d["index"]: i for i, d in enumerate(graph_outputs)}
        self._inputs = [(position[d["index"]], d) for d in signature_inputs]
        self._outputs = [(out_position[d["index"]], d) for d in signature_outputs]
        names_in = runtime.inputs or tuple(d["signature_name"] for d in signature_inputs)
        names_out = runtime.outputs or tuple(d["signature_name"] for d in signature_outputs)
        self._input_specs = [_port(n, d) for n, d in zip(names_in, signature_inputs, strict=False)]
        self._output_specs = [_port(n, d) for n, d in zip(names_out, signature_outputs, strict=False)]

    def _run_one(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for value, (index, details) in zip(arrays, self._inputs, strict=True):
            self._interpreter.set_input(quantize_input(value, details), index)
        self._interpreter.invoke()
        return [dequantize_output(np.array(self._interpreter.get_output(i)), d) for i, d in self._outputs]


# --- firmware sources ------------------------------------------------------------------------------
def _header(symbol: str, size: int) -> str:
    return (
        "// The model as a C array, exported by Model Workbench.\n#pragma once\n#include <cstdint>\n\n"
        f"extern const unsigned char {symbol}[];\nconstexpr unsigned int {symbol}_len = {size};\n"
    )


def _c_array(symbol: str, content: bytes) -> str:
    lines = [", ".join(f"0x{b:02x}" for b in content[i : i + 16]) for i in range(0, len(content), 16)]
    body = ",\n  ".join(lines)
    # 16-byte alignment: TFLM reads the flatbuffer in place from flash.
    return f'#include "model_data.h"\n\nalignas(16) const unsigned char {symbol}[] = {{\n  {body}\n}};\n'


def _main_cc(symbol: str, arena: int, content: bytes) -> str:
    from workbench.exporters.tflite import tflite_operators

    ops = sorted({op["op"] for op in tflite_operators(content)})
    adds = "\n".join(f"  resolver.{_resolver_method(op)}();" for op in ops)
    margin = arena + 1024  # TFLM's allocator aligns per tensor; a little headroom over the measured figure
    return f"""// Minimal TensorFlow Lite Micro inference, exported by Model Workbench.
// Measured arena: {arena} bytes (TFLM RecordingMicroAllocator on the exporting host).
#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

constexpr int kArenaSize = {margin};
alignas(16) static uint8_t tensor_arena[kArenaSize];

int main() {{
  const tflite::Model* model = tflite::GetModel({symbol});
  static tflite::MicroMutableOpResolver<{len(ops)}> resolver;
{adds}
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;
  TfLiteTensor* input = interpreter.input(0);
  // Fill input->data.int8 with features quantized as q = round(x / scale) + zero_point
  // (input->params.scale, input->params.zero_point), preprocessed as manifest.json says.
  if (interpreter.Invoke() != kTfLiteOk) return 2;
  const TfLiteTensor* output = interpreter.output(0);
  // Dequantize: (output->data.int8[i] - output->params.zero_point) * output->params.scale
  (void)output;
  return 0;
}}
"""


_RESOLVER_NAMES = {"CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D", "MAX_POOL_2D": "AddMaxPool2D"}


def _resolver_method(op: str) -> str:
    """TFLM's MicroMutableOpResolver method for a builtin: FULLY_CONNECTED -> AddFullyConnected."""
    if op in _RESOLVER_NAMES:
        return _RESOLVER_NAMES[op]
    if op == "AVERAGE_POOL_2D":
        return "AddAveragePool2D"
    return "Add" + "".join(part.capitalize() for part in op.split("_"))
