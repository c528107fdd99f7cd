"""What a model's output is scored with, one metric kind a file, registered like plugins.

Each :class:`OutputMetric` decodes raw outputs into predictions (class indices, label maps, strings),
scores predictions against labels, and measures agreement of a candidate's predictions with the
baseline's. The metric is chosen from the output's shape and the labels (:func:`choose_metric`);
``MetricSettings.metric`` overrides it. Label-free fidelity per output (cosine, SNR, max abs) lives in
:mod:`workbench.metrics.fidelity` and applies to every output.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from functools import cache
from importlib import metadata
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import DatasetError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "workbench.metrics"


class MetricSettings(BaseModel):
    """How outputs are scored; stored with the project so a figure can be reproduced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str | None = Field(None, description="metric id (top1, miou, ctc, fidelity); None: chosen from the output")
    output: str | None = Field(None, description="the output scored against labels; None: the first output")
    charset: tuple[str, ...] = Field((), description="CTC: the characters of classes 1..C-1 (class 0 is the blank)")
    charset_source: str | None = Field(None, description="where the charset came from (a file or model metadata)")
    blank: int = Field(0, ge=0, description="CTC: the blank class")
    class_names: tuple[str, ...] = Field((), description="names of the classes, in index order (else the data's)")

    def describe(self) -> str:
        parts = [self.metric or "auto"]
        if self.output:
            parts.append(f"output {self.output}")
        if self.charset:
            parts.append(f"{len(self.charset)}-character charset from {self.charset_source or '?'}")
        return ", ".join(parts)


class OutputMetric(ABC):
    """One way to score an output kind."""

    id: ClassVar[str]
    label: ClassVar[str]  # what the headline score is called in tables and on the plot
    description: ClassVar[str]
    priority: ClassVar[int] = 0  # higher is tried first by :func:`choose_metric`

    @abstractmethod
    def applies(self, shape: tuple[int, ...], labels: np.ndarray | None) -> bool:
        """Whether outputs of ``shape`` (batch first) with these labels are this metric's kind."""

    @abstractmethod
    def predictions(self, outputs: np.ndarray, settings: MetricSettings) -> Any:
        """Raw outputs decoded into what is compared (class indices, label maps, strings)."""

    @abstractmethod
    def scores(self, predictions: Any, labels: np.ndarray, settings: MetricSettings) -> dict[str, float]:
        """Label-based scores, the headline first (its key is ``self.id``)."""

    @abstractmethod
    def agreement(self, reference: Any, candidate: Any) -> float:
        """Fraction (0..1) of the candidate's predictions that match the baseline's."""

    def extras(self, predictions: Any, labels: np.ndarray, settings: MetricSettings) -> dict[str, Any]:
        """Structured results beside the scores (a confusion matrix)."""
        return {}

    def check(self, shape: tuple[int, ...], labels: np.ndarray | None, settings: MetricSettings) -> None:
        """Refuse, with the reason, outputs or labels this metric cannot score (when chosen explicitly)."""
        if not self.applies(shape, labels):
            raise DatasetError(f"the {self.id} metric does not apply to an output of shape {list(shape)}")


@cache
def metric_registry() -> dict[str, OutputMetric]:
    return _load(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load(entry_points: Iterable[metadata.EntryPoint]) -> dict[str, OutputMetric]:
    found: dict[str, OutputMetric] = {}
    for ep in entry_points:
        try:
            cls = ep.load()
            if not (isinstance(cls, type) and issubclass(cls, OutputMetric)):
                raise TypeError(f"{ep.value} is not an OutputMetric")
            found[cls.id] = cls()
        except Exception as exc:
            log.warning("metric %s (%s) skipped: %s", ep.name, ep.value, exc)
    return found


def choose_metric(shape: tuple[int, ...], labels: np.ndarray | None, settings: MetricSettings) -> OutputMetric | None:
    """The metric ``settings`` names, else the first registered kind that fits the output and labels;
    None when nothing fits (then only label-free fidelity is measured)."""
    registry = metric_registry()
    if settings.metric is not None:
        if settings.metric == "fidelity":
            return None
        if settings.metric not in registry:
            raise DatasetError(
                f"unknown metric '{settings.metric}' (known: {', '.join(sorted([*registry, 'fidelity']))})"
            )
        metric = registry[settings.metric]
        metric.check(shape, labels, settings)
        return metric
    for metric in sorted(registry.values(), key=lambda m: -m.priority):
        if metric.applies(shape, labels):
            return metric
    return None
