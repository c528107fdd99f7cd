"""Output formats, one file each, registered like plugins (entry-point group ``workbench.exporters``).

An :class:`Exporter` turns a variant into the file(s) a runtime loads, declares the precisions and
operators it takes, and opens what it wrote as a session-like object (``get_inputs()``,
``get_outputs()``, ``run(names, feeds)``) so the artifact is evaluated and timed by exactly the code that
measures ONNX models. A device profile names its exporter (``export.format``); adding a runtime means
adding one file here and one entry point.
"""

from __future__ import annotations

import importlib.util
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from workbench.errors import WorkbenchError, describe_exception
from workbench.runtime import RuntimeSettings, open_session, settings_for

if TYPE_CHECKING:
    from workbench.device_export import ExportPlan
    from workbench.devices import DeviceProfile, Precision
    from workbench.model import Model
    from workbench.plugin import Task
    from workbench.project import Project

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.exporters"
EDGE_EXTRA = 'pip install -e ".[edge]"'  # the optional extra that brings LiteRT, TFLite Micro and ExecuTorch


@dataclass(frozen=True)
class BundleRuntime:
    """The file that runs in the bundle, and exactly how it is loaded (the manifest's ``runtime``).

    ``inputs``/``outputs`` name the file's tensors in order as the model names them, for formats whose
    converters rename them (LiteRT calls the first input ``args_0``)."""

    file: str
    settings: RuntimeSettings
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        names = {"input_names": list(self.inputs), "output_names": list(self.outputs)} if self.inputs else {}
        return {"file": self.file, **self.settings.model_dump(mode="json"), **names}

    @classmethod
    def from_json(cls, data: Any, where: Path | None = None) -> BundleRuntime:
        from pydantic import ValidationError

        try:
            fields = dict(data)
            file = str(fields.pop("file"))
            inputs = tuple(str(n) for n in fields.pop("input_names", ()))
            outputs = tuple(str(n) for n in fields.pop("output_names", ()))
            return cls(file, RuntimeSettings.model_validate(fields), inputs, outputs)
        except (TypeError, ValueError, KeyError, ValidationError) as exc:
            reason = f"the manifest's runtime section is not valid ({describe_exception(exc)})"
            raise WorkbenchError(reason, where) from None


@dataclass
class Converted:
    """What an exporter wrote: the bundle's files, the one that runs, what could not be checked here,
    and figures only this format has (a TFLM arena, an Edge TPU placement) for the report."""

    artifacts: list[str]
    runtime: BundleRuntime
    not_run: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportContext:
    project: Project
    model: Model
    plan: ExportPlan
    staging: Path
    task: Task


class Exporter(ABC):
    """One output format."""

    format: ClassVar[str]
    label: ClassVar[str]
    runtime: ClassVar[str]  # RuntimeSettings.runtime of what it writes
    precisions: ClassVar[tuple[str, ...]]  # precisions it writes
    operators: ClassVar[frozenset[str] | None] = None  # ONNX operators it takes (None: what its converter takes)
    requires: ClassVar[tuple[str, ...]] = ()  # modules it needs; missing ones refuse with the fix
    # False where the host's timing says nothing of the device's (an MCU runtime's reference kernels): the
    # bundle still records it, labelled, and verify reports it without comparing.
    host_latency_meaningful: ClassVar[bool] = True

    def missing(self) -> list[str]:
        return [name for name in self.requires if importlib.util.find_spec(name) is None]

    def export_precision(self, device: DeviceProfile, precision: Precision) -> Precision:
        """The precision the bundle will hold for a variant of ``precision``."""
        return device.export.precision or precision

    def refusals(self, model: Model, plan: ExportPlan) -> list[str]:
        """Why this model cannot be written in this format (each with the fix); empty when it can."""
        missing = self.missing()
        if missing:
            return [f"{self.label} needs {', '.join(missing)}, which is not installed here: {EDGE_EXTRA}"]
        device = plan.device
        if plan.export_precision not in device.precisions:
            fix = ", ".join(p for p in device.precisions if p != "int4")
            return [f"{plan.export_precision} is not a precision {device.name} runs: export a variant in {fix} instead"]
        return []

    @abstractmethod
    def convert(self, context: ExportContext) -> Converted: ...

    def open(self, path: Path, runtime: BundleRuntime) -> Any:
        """The artifact loaded exactly as the bundle's ``run.py`` loads it."""
        return open_session(path, runtime.settings)

    def files(self, folder: Path, runtime: BundleRuntime) -> list[Path]:
        """The files the runtime loads (their bytes are the artifact's size)."""
        return [folder / runtime.file]

    def snippet(self, runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> str:
        return onnxruntime_snippet(runtime, name, shape)

    def instructions(self) -> list[str]:
        """What to do with the bundle on the device, beyond ``run.py``."""
        return []

    def recheck(
        self, folder: Path, runtime: BundleRuntime, report: dict[str, Any] | None
    ) -> list[tuple[str, bool | None, str]]:
        """Figures only this format has, recomputed from the bundle: (figure, ok, detail)."""
        return []


@cache
def exporter_registry() -> dict[str, Exporter]:
    return _load(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load(entry_points: Iterable[metadata.EntryPoint]) -> dict[str, Exporter]:
    found: dict[str, Exporter] = {}
    for ep in entry_points:
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Exporter)):
                raise TypeError(f"{ep.value} is not an Exporter subclass")
            exporter = cls()
            if exporter.format in found:
                raise ValueError(f"duplicate export format '{exporter.format}'")
            found[exporter.format] = exporter
        except Exception as exc:  # one broken third-party exporter must not hide the others
            log.warning("exporter %s (%s) skipped: %s", ep.name, ep.value, describe_exception(exc))
    return found


def get_exporter(fmt: str) -> Exporter:
    registry = exporter_registry()
    try:
        return registry[fmt]
    except KeyError:
        raise WorkbenchError(f"no exporter for format '{fmt}' (known: {', '.join(sorted(registry))})") from None


def exporter_for_runtime(runtime: str) -> Exporter:
    for exporter in exporter_registry().values():
        if exporter.runtime == runtime:
            return exporter
    raise WorkbenchError(f"no exporter here runs '{runtime}' artifacts")


def open_artifact(folder: Path, runtime: BundleRuntime) -> Any:
    """The bundle's artifact loaded exactly as its ``run.py`` loads it: a session-like object."""
    from workbench.untrusted import check_regular_file

    if Path(runtime.file).is_absolute() or ".." in Path(runtime.file).parts:
        raise WorkbenchError(f"the manifest names an artifact outside the bundle ({runtime.file[:80]})", folder)
    path = folder / runtime.file
    check_regular_file(path, WorkbenchError)
    return exporter_for_runtime(runtime.settings.runtime).open(path, runtime)


def artifact_files(folder: Path, runtime: BundleRuntime) -> list[Path]:
    return exporter_for_runtime(runtime.settings.runtime).files(folder, runtime)


def io_names(model: Model) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The variant's input and output names in order, as its measured ONNX file has them: converters that
    rename tensors (LiteRT's ``args_0``) are mapped back to these by position."""
    graph = model.to_onnx().graph
    weights = {init.name for init in graph.initializer}
    return tuple(i.name for i in graph.input if i.name not in weights), tuple(o.name for o in graph.output)


def onnx_runtime(staging: Path, name: str) -> BundleRuntime:
    return BundleRuntime(name, settings_for((staging / name).read_bytes()))


def onnxruntime_snippet(runtime: BundleRuntime, name: str, shape: tuple[int, ...]) -> str:
    from workbench.runtime import GRAPH_OPTIMIZATION_LEVELS

    settings = runtime.settings
    config = [f'options.add_session_config_entry("{k}", "{v}")' for k, v in sorted(settings.config.items())]
    level = GRAPH_OPTIMIZATION_LEVELS[settings.graph_optimization]
    return "\n".join(
        [
            "```python",
            "import numpy as np, onnxruntime as ort",
            "options = ort.SessionOptions()",
            f"options.intra_op_num_threads = {settings.threads}",
            "options.inter_op_num_threads = 1",
            f"options.graph_optimization_level = ort.GraphOptimizationLevel.{level}",
            *config,
            f'session = ort.InferenceSession("{runtime.file}", options, providers=["{settings.provider}"])',
            f'print(session.run(None, {{"{name}": np.zeros({shape}, np.float32)}})[0])',
            "```",
        ]
    )


@dataclass(frozen=True)
class PortSpec:
    """An input or output as onnxruntime describes one (``tensor(float)`` types), for non-ONNX runtimes."""

    name: str
    type: str
    shape: list[int | None]


_NUMPY_TYPES = {"float32": "float", "float16": "float16", "int64": "int64", "int32": "int32", "int8": "int8"}


def port_type(dtype: Any) -> str:
    name = np.dtype(dtype).name
    return f"tensor({_NUMPY_TYPES.get(name, name)})"


class BatchOneSession(ABC):
    """A batch-1 program in a non-ONNX runtime, run like an onnxruntime session: each row of the feeds in
    turn (the converters fix the batch at 1, as the device runs it), outputs stacked. Subclasses set
    ``_input_specs``/``_output_specs`` (the model's names) and run one sample in :meth:`_run_one`."""

    runtime_name: ClassVar[str]
    _input_specs: list[PortSpec]
    _output_specs: list[PortSpec]

    def get_inputs(self) -> list[PortSpec]:
        return self._input_specs

    def get_outputs(self) -> list[PortSpec]:
        return self._output_specs

    def run(self, output_names: list[str] | None, feeds: dict[str, np.ndarray], options: Any = None) -> list[Any]:
        try:
            arrays = [np.asarray(feeds[spec.name]) for spec in self._input_specs]
            rows = [self._run_one([a[row : row + 1] for a in arrays]) for row in range(len(arrays[0]))]
        except KeyError as exc:
            raise WorkbenchError(f"no feed for input {exc}") from None
        except Exception as exc:
            raise WorkbenchError(
                f"{self.runtime_name} failed while running the model ({describe_exception(exc)})"
            ) from None
        outputs = [np.concatenate([r[i] for r in rows]) for i in range(len(rows[0]))]
        if output_names is None:
            return outputs
        index = {spec.name: i for i, spec in enumerate(self._output_specs)}
        return [outputs[index[name]] for name in output_names]

    @abstractmethod
    def _run_one(self, arrays: list[np.ndarray]) -> list[np.ndarray]: ...
