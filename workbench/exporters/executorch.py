"""ExecuTorch ``.pte`` lowered to XNNPACK: the PyTorch route to phones, run here by ExecuTorch's own
runtime. It needs the torch module (torch.export); the file is loaded without unpickling."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

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
from workbench.exporters.tflite import quiet_fds, sample_inputs
from workbench.fileio import atomic_write_bytes
from workbench.runtime import DEFAULT_THREADS, RuntimeSettings


class ExecuTorchExporter(Exporter):
    format: ClassVar[str] = "executorch"
    label: ClassVar[str] = "ExecuTorch (.pte, XNNPACK)"
    runtime: ClassVar[str] = "executorch"
    precisions: ClassVar[tuple[str, ...]] = ("fp32",)
    requires: ClassVar[tuple[str, ...]] = ("executorch",)
    # Its host timing did not reproduce across processes here (2.03x at export, 1.65x at verify, same file):
    # recorded and labelled, not compared, until the cause (XNNPACK's thread pool?) is found.
    host_latency_meaningful: ClassVar[bool] = False

    def export_precision(self, device, precision):
        return "fp32"

    def refusals(self, model, plan) -> list[str]:
        found = super().refusals(model, plan)
        if found:
            return found
        if not model.has_torch_lineage:
            return [
                "ExecuTorch lowers a torch module (torch.export), and this variant has only an ONNX graph: the "
                ".ort file is its phone build"
            ]
        if plan.variant_precision != "fp32":
            return [f"ExecuTorch lowers the float torch module; this {plan.variant_precision} variant has none"]
        return []

    def convert(self, context: ExportContext) -> Converted:
        import torch

        with quiet_fds():  # its import logs from torchao and cpuinfo
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower

        model = context.model
        context.task.report(0.1, "lowering the torch module to ExecuTorch (XNNPACK)")
        try:
            with quiet_fds():
                program = torch.export.export(model.copy_torch_module().eval(), sample_inputs(model))
                lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
        except Exception as exc:
            raise WorkbenchError(f"ExecuTorch lowering failed ({describe_exception(exc)[:240]})") from None
        atomic_write_bytes(context.staging / "model.pte", lowered.buffer)
        runtime = BundleRuntime("model.pte", executorch_settings(), *io_names(model))
        return Converted(["model.pte"], runtime)

    def open(self, path: Path, runtime: BundleRuntime) -> Any:
        return ExecuTorchSession(path, runtime)

    def snippet(self, runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> str:
        return "\n".join(
            [
                "```python",
                "import torch",
                "from executorch.runtime import Runtime",
                f'method = Runtime.get().load_program("{runtime.file}").load_method("forward")',
                f"print(method.execute([torch.zeros({shape})])[0])",
                "```",
            ]
        )

    def instructions(self) -> list[str]:
        return [
            "Android/iOS: load `model.pte` with ExecuTorch's Module API (`org.pytorch.executorch.Module` or the "
            "C++ `executorch::extension::Module`) built with the XNNPACK backend.",
            "",
        ]


def executorch_settings() -> RuntimeSettings:
    from importlib import metadata

    return RuntimeSettings(
        runtime="executorch",
        version=metadata.version("executorch"),
        provider="XNNPACK",
        threads=DEFAULT_THREADS,
    )


class ExecuTorchSession(BatchOneSession):
    """A ``.pte`` in ExecuTorch's runtime, run like an onnxruntime session (inputs in the model's order)."""

    runtime_name: ClassVar[str] = "ExecuTorch"

    def __init__(self, path: Path, runtime: BundleRuntime) -> None:
        try:
            with quiet_fds():
                from executorch.runtime import Runtime

                program = Runtime.get().load_program(path)
                self._method = program.load_method("forward")
                meta = self._method.metadata
                inputs = [meta.input_tensor_meta(i) for i in range(meta.num_inputs())]
                outputs = [meta.output_tensor_meta(i) for i in range(meta.num_outputs())]
        except Exception as exc:
            raise WorkbenchError(f"ExecuTorch cannot load the program ({describe_exception(exc)})", path) from None
        names_in = runtime.inputs or tuple(f"input_{i}" for i in range(len(inputs)))
        names_out = runtime.outputs or tuple(f"output_{i}" for i in range(len(outputs)))
        self._input_specs = [_port(n, m) for n, m in zip(names_in, inputs, strict=False)]
        self._output_specs = [_port(n, m) for n, m in zip(names_out, outputs, strict=False)]

    def _run_one(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        import torch

        values = [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
        return [np.array(t.numpy()) for t in self._method.execute(values)]


def _port(name: str, meta: Any) -> PortSpec:
    return PortSpec(name, port_type(np.float32), list(meta.sizes()))
