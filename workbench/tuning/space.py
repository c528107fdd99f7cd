"""The search space, read from the plugins' declared Params: every field with bounds or choices is a
dimension (floats and ints between their ``ge``/``le`` bounds, Literals and bools as choices).

A field may narrow what the tuner tries without narrowing what a user may set, with
``json_schema_extra={"search": [low, high]}`` (or a list of choices), or leave the search with
``{"tune": False}``; Olive's ``search_defaults`` play the same part. ``{"shrinks": "up"}`` (or "down")
says which way the field makes the model smaller (sparsity up, clusters down): the tuner pushes a new best
along it. ``{"recovers": "up"}`` says which way it buys accuracy back at a cost in time (fine-tuning epochs,
pruning steps): the tuner spends more of it when a push loses too much. Lists and dicts (per-layer overrides,
exclusions) are never searched: they name layers of one model.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from optuna.trial import Trial

    from workbench.plugin import Plugin

Kind = Literal["float", "int", "categorical"]
LOG_SPAN = 100.0  # floats whose bounds span this factor or more are searched on a log scale


@dataclass(frozen=True)
class Dimension:
    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    shrinks: Literal["up", "down"] | None = None  # which way the model gets smaller, where the plugin says
    recovers: Literal["up", "down"] | None = None  # which way more time buys accuracy back (training epochs)

    def pushed(self, value: Any) -> Any:
        """``value`` moved towards the smaller model: halfway to the search range's end (to the next choice
        for choices), or None at the end already. After a new best, the tuner asks for it next (see
        :func:`workbench.tuning.study.refinements`), as accuracy-aware compression steps its rate."""
        return self._towards(value, self.shrinks)

    def recovered(self, value: Any) -> Any:
        """``value`` moved towards more accuracy for more time (more fine-tuning epochs), halfway as
        :meth:`pushed` moves, or None: where a push that lost too much is asked again (see
        :func:`workbench.tuning.study.recover`), as accuracy-aware training extends its fine-tuning."""
        return self._towards(value, self.recovers)

    def _towards(self, value: Any, way: Literal["up", "down"] | None) -> Any:
        if way is None:
            return None
        if self.kind == "categorical":
            ordered = sorted(self.choices) if way == "up" else sorted(self.choices, reverse=True)
            later = [c for c in ordered if (c > value if way == "up" else c < value)]
            return later[0] if later else None
        end = self.high if way == "up" else self.low
        assert end is not None
        # halfway on the scale the sampler uses: geometric for log-scaled fields
        moved = math.sqrt(value * end) if self.log and end > 0 and value > 0 else value + (end - value) / 2
        if self.kind == "int":
            moved = int(math.floor(moved) if way == "down" else math.ceil(moved))
        return None if moved == value else moved

    def between(self, a: Any, b: Any) -> Any:
        """Halfway from ``a`` to ``b`` on the sampler's scale, or None when nothing lies between (choices,
        or neighbouring integers): where a push that broke the goal is asked again."""
        if self.kind == "categorical":
            return None
        middle = math.sqrt(a * b) if self.log and a > 0 and b > 0 else (a + b) / 2
        if self.kind == "int":
            middle = round(middle)
        return None if middle in (a, b) else middle

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in {{{', '.join(map(str, self.choices))}}}"
        scale = ", log" if self.log else ""
        return f"{self.name} in [{self.low:g}, {self.high:g}]{scale}"

    def suggest(self, trial: Trial, prefix: str) -> Any:
        key = f"{prefix}.{self.name}"
        if self.kind == "categorical":
            return trial.suggest_categorical(key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(key, int(self.low), int(self.high), log=self.log)  # type: ignore[arg-type]
        return trial.suggest_float(key, float(self.low), float(self.high), log=self.log)  # type: ignore[arg-type]


def plugin_dimensions(plugin: Plugin) -> list[Dimension]:
    """The plugin's Params as search dimensions, in declaration order."""
    found = []
    for name, field in plugin.Params.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("tune") is False:
            continue
        dimension = _dimension(name, field.annotation, field.metadata, extra.get("search"))
        if dimension is not None:
            ways = {key: extra[key] for key in ("shrinks", "recovers") if extra.get(key) in ("up", "down")}
            found.append(replace(dimension, **ways))
    return found


def suggest_params(trial: Trial, plugin: Plugin, prefix: str | None = None) -> dict[str, Any]:
    """Values for every dimension of the plugin (the rest keep their defaults), validated by its Params."""
    prefix = prefix or plugin.id
    values = {d.name: d.suggest(trial, prefix) for d in plugin_dimensions(plugin)}
    return plugin.parse_params(values).model_dump(mode="json")


def _dimension(name: str, annotation: Any, metadata: list[Any], search: Any) -> Dimension | None:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = tuple(search) if isinstance(search, list | tuple) else typing.get_args(annotation)
        return Dimension(name, "categorical", choices=choices) if len(choices) > 1 else None
    if origin in (typing.Union, types.UnionType):
        return None  # optional values ("None: automatic") are a choice of their own, left to the plugin
    if annotation is bool:
        return Dimension(name, "categorical", choices=(False, True))
    if annotation not in (int, float):
        return None
    low, high = _bounds(metadata)
    if isinstance(search, list | tuple) and len(search) == 2:
        low, high = search
    if low is None or high is None or high <= low:
        return None
    kind: Kind = "int" if annotation is int else "float"
    log = kind == "float" and low > 0 and high / low >= LOG_SPAN
    return Dimension(name, kind, float(low), float(high), log=log)


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    low = high = None
    for item in metadata:
        for attribute in ("ge", "gt"):
            if getattr(item, attribute, None) is not None:
                low = getattr(item, attribute)
        for attribute in ("le", "lt"):
            if getattr(item, attribute, None) is not None:
                high = getattr(item, attribute)
    return low, high
