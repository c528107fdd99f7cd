"""OpenVINO behind the interface the workbench's measuring code speaks (onnxruntime's session:
``get_inputs()``, ``get_outputs()``, ``run(names, feeds)``), so an exported IR is evaluated and timed by
exactly the code that measures ONNX models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import WorkbenchError, describe_exception
from workbench.runtime import DEFAULT_THREADS, RuntimeSettings

# OpenVINO element types as onnxruntime names them, so numpy_dtype() and example_feeds() work unchanged.
_TYPES = {
    "f32": "float",
    "f16": "float16",
    "f64": "double",
    "i64": "int64",
    "i32": "int32",
    "i8": "int8",
    "u8": "uint8",
    "boolean": "bool",
}


@dataclass(frozen=True)
class PortSpec:
    name: str
    type: str
    shape: list[int | None]


def openvino_settings(threads: int = DEFAULT_THREADS) -> RuntimeSettings:
    """CPU plugin, fixed thread count, and f32 inference precision: some CPUs otherwise run bf16/f16,
    which would give figures other than the ones measured here."""
    import openvino as ov

    return RuntimeSettings(
        runtime="openvino",
        version=ov.__version__,
        provider="CPU",
        threads=threads,
        config={"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"},
    )


def compile_properties(settings: RuntimeSettings) -> dict[str, str]:
    return {"INFERENCE_NUM_THREADS": str(settings.threads), **settings.config}


class OpenVinoSession:
    """A compiled OpenVINO model that runs like an onnxruntime session."""

    def __init__(self, xml: str | Path, settings: RuntimeSettings) -> None:
        import openvino as ov

        try:
            self._compiled = ov.Core().compile_model(str(xml), settings.provider, compile_properties(settings))
        except Exception as exc:
            raise WorkbenchError(f"OpenVINO cannot compile the model ({describe_exception(exc)})", Path(xml)) from None
        self._request = self._compiled.create_infer_request()
        self._inputs = [_spec(port) for port in self._compiled.inputs]
        self._outputs = [_spec(port) for port in self._compiled.outputs]

    def get_inputs(self) -> list[PortSpec]:
        return self._inputs

    def get_outputs(self) -> list[PortSpec]:
        return self._outputs

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray], options: Any = None) -> list[Any]:
        try:
            result = self._request.infer(feeds)
        except Exception as exc:
            raise WorkbenchError(f"OpenVINO failed while running the model ({describe_exception(exc)})") from None
        outputs = [np.array(result[port]) for port in self._compiled.outputs]
        if output_names is None:
            return outputs
        index = {spec.name: i for i, spec in enumerate(self._outputs)}
        return [outputs[index[name]] for name in output_names]


def _spec(port) -> PortSpec:
    shape = [int(d.get_length()) if d.is_static else None for d in port.get_partial_shape()]
    kind = _TYPES.get(port.get_element_type().get_type_name(), port.get_element_type().get_type_name())
    return PortSpec(_port_name(port), f"tensor({kind})", shape)


def _port_name(port) -> str:
    """The model's own name for a port. When OpenVINO merges tensors (an output behind an Identity) a
    port holds several names and ``get_any_name`` may pick the inner one; a result node is named after
    the graph output it sinks ("output/sink_port_0"), which settles it."""
    names = port.get_names()
    graph_name = port.get_node().get_friendly_name().rsplit("/sink_port_", 1)[0]
    if graph_name in names:
        return graph_name
    return sorted(names)[0] if names else port.get_any_name()
