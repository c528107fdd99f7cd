"""The plugin API: a compression step with declared parameters that returns a new model.

A plugin is one class with an ``id``, a ``title``, a ``kind``, the model ``formats`` it accepts, a
pydantic ``Params`` model (bounds, choices, defaults and descriptions on its fields: the GUI builds its
controls and recipes store its values from that) and ``apply(model, params, task) -> Model``.
Built-in and third-party plugins register under the ``workbench.plugins`` entry-point group.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import metadata
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from workbench.errors import Cancelled, PluginError
from workbench.model import Format, Model

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.plugins"


class PluginKind(StrEnum):
    PRUNE = "prune"
    QUANTIZE = "quantize"
    DISTILL = "distill"
    FACTORIZE = "factorize"
    CLUSTER = "cluster"
    GRAPH = "graph"


DataSource = Any  # a workbench.datasets.Dataset, or a callable that loads one when first asked


class Task:
    """Qt-free progress, cooperative cancellation, the data a step may use, and the notes it leaves.

    ``report(fraction, message)`` forwards to ``on_progress`` (a GUI signal, a CLI bar, a test list);
    ``check()`` raises :class:`Cancelled` once :meth:`cancel` was called, from any thread.

    A step sees only the ``train`` and ``calibration`` splits, never the evaluation data its figures
    come from. ``no_data_reason`` says why a split is missing, for the step's refusal.
    ``note(text)`` records something the user must hear (calibration settings, a fallback); notes are
    stored with the variant and shown in the window, the CLI and the bundle's manifest.
    """

    def __init__(
        self,
        on_progress: Callable[[float, str], None] | None = None,
        *,
        train: DataSource = None,
        calibration: DataSource = None,
        no_data_reason: str = "no data is attached",
        on_metric: Callable[[str, float], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
    ) -> None:
        self._on_progress = on_progress
        self._on_metric = on_metric
        self._on_partial = on_partial
        self._cancel = threading.Event()
        self._data: dict[str, DataSource] = {"train": train, "calibration": calibration}
        self.no_data_reason = no_data_reason
        self.notes: list[str] = []

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()

    def report(self, fraction: float, message: str = "") -> None:
        self.check()
        if self._on_progress is not None:
            self._on_progress(min(max(fraction, 0.0), 1.0), message)

    def metric(self, name: str, value: float) -> None:
        """Stream a named value (a training loss) to whoever watches: the GUI plots it as a curve."""
        if self._on_metric is not None:
            self._on_metric(name, float(value))

    def partial(self, result: Any) -> None:
        """Hand over a finished piece of a long job (a search's trial) while the job goes on."""
        if self._on_partial is not None:
            self._on_partial(result)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def provide(self, train: DataSource = None, calibration: DataSource = None, no_data_reason: str = "") -> None:
        """Attach data the caller did not give the task already (the window's jobs, a recipe's replay)."""
        for split, source in (("train", train), ("calibration", calibration)):
            if self._data.get(split) is None:
                self._data[split] = source
        if no_data_reason and not any(self._data.values()):
            self.no_data_reason = no_data_reason

    def has_data(self, split: str) -> bool:
        return self._data.get(split) is not None

    def data(self, split: str, purpose: str, *, labels: bool = False) -> Any:
        """The ``train`` or ``calibration`` split for ``purpose``, or a refusal that says what is missing."""
        source = self._data.get(split)
        if source is None and split == "calibration":
            source = self._data.get("train")  # calibration is a part of train: all of train will do
        if source is None:
            raise PluginError(f"{purpose} needs the {split} split of the project's data, and {self.no_data_reason}")
        if callable(source):
            source = self._data[split] = source()
        if labels and source.y is None:
            raise PluginError(f"{purpose} needs labels, and the {split} split has none ({source.ref.describe()})")
        return source

    def sub(self, start: float, end: float) -> Task:
        """A view of this task whose 0..1 maps onto ``start..end`` of the parent's progress."""
        parent = self

        class _Sub(Task):
            def __init__(self) -> None:
                super().__init__(
                    None, no_data_reason=parent.no_data_reason, on_metric=parent.metric, on_partial=parent.partial
                )
                self._cancel = parent._cancel
                self._data = parent._data  # loaded once, shared
                self.notes = parent.notes

            def report(self, fraction: float, message: str = "") -> None:
                parent.report(start + (end - start) * min(max(fraction, 0.0), 1.0), message)

        return _Sub()


class PluginParams(BaseModel):
    """Base for every plugin's ``Params``: unknown keys are errors, so a typo in a recipe is caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Plugin(ABC):
    id: ClassVar[str]
    title: ClassVar[str]
    kind: ClassVar[PluginKind]
    formats: ClassVar[frozenset[Format]]
    Params: ClassVar[type[PluginParams]]
    description: ClassVar[str] = ""

    @abstractmethod
    def apply(self, model: Model, params: PluginParams, task: Task) -> Model:
        """Return a new model with the step applied; never modify ``model``."""

    def parse_params(self, values: dict[str, Any] | PluginParams | None = None) -> PluginParams:
        if isinstance(values, self.Params):
            return values
        try:
            return self.Params.model_validate(values or {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}" for err in exc.errors()
            )
            raise PluginError(f"invalid parameters for plugin '{self.id}': {problems}") from None

    @classmethod
    def schema(cls) -> dict[str, Any]:
        return cls.Params.model_json_schema()


def run_plugin(plugin: Plugin, model: Model, params: Any, task: Task | None = None) -> Model:
    """Validate params, bring the model to a format the plugin takes, apply, and guard the input."""
    task = task or Task()
    parsed = plugin.parse_params(params)
    if not (plugin.formats & model.formats):
        if "onnx" in plugin.formats and model.has_torch_lineage:
            task.report(0.0, "exporting the torch model to ONNX")
            model = model.derive(onnx_proto=model.to_onnx(), torch_module=model.torch_module)
        else:
            raise PluginError(
                f"plugin '{plugin.id}' takes {', '.join(sorted(plugin.formats))} models; this one is "
                f"{', '.join(sorted(model.formats)) or 'empty'}",
                model.source,
            )
    before = _fingerprint(model)
    task.check()
    result = plugin.apply(model, parsed, task)
    if _fingerprint(model) != before:
        raise PluginError(f"plugin '{plugin.id}' modified its input model (plugins must return a new one)")
    if not isinstance(result, Model):
        raise PluginError(f"plugin '{plugin.id}' returned {type(result).__name__}, not a Model")
    task.report(1.0, "done")
    return result


def _fingerprint(model: Model) -> str:
    import hashlib

    digest = hashlib.sha256()
    if model.onnx_proto is not None:
        digest.update(model.onnx_proto.SerializeToString(deterministic=True))
    if model.torch_module is not None:
        for name, tensor in model.torch_module.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# --- discovery ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PluginLoadFailure:
    name: str
    target: str
    reason: str


@dataclass
class PluginRegistry:
    plugins: dict[str, Plugin]
    failures: list[PluginLoadFailure]

    def get(self, plugin_id: str) -> Plugin:
        try:
            return self.plugins[plugin_id]
        except KeyError:
            known = ", ".join(sorted(self.plugins)) or "none"
            raise PluginError(f"no plugin '{plugin_id}' is installed (installed: {known})") from None


def discover_plugins(entry_points: Iterable[metadata.EntryPoint] | None = None) -> PluginRegistry:
    """Load every plugin registered in the entry-point group; a broken one is reported and skipped."""
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    plugins: dict[str, Plugin] = {}
    failures: list[PluginLoadFailure] = []
    for ep in entry_points:
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, Plugin)):
                raise TypeError(f"{ep.value} is not a Plugin subclass")
            plugin = cls()
            if plugin.id in plugins:
                raise ValueError(f"duplicate plugin id '{plugin.id}'")
            plugins[plugin.id] = plugin
        except Exception as exc:
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            failures.append(PluginLoadFailure(ep.name, ep.value, reason))
            log.warning("plugin %s (%s) skipped: %s", ep.name, ep.value, reason)
    return PluginRegistry(plugins, failures)
