"""Scatter of every variant: quality (accuracy, or agreement) against size or latency, Pareto front drawn."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from workbench.evaluate import Metrics
from workbench.pareto import pareto_front
from workbench.project import Variant

AXES = {"size": "download size (KiB, xz, log)", "latency": "latency median (ms, this host)"}


SCORE_LABELS = {
    "top1": "top-1 accuracy %",
    "top5": "top-5 accuracy %",
    "miou": "mIoU %",
    "pixel_accuracy": "pixel accuracy %",
    "ctc": "exact match %",
    "cer": "character error rate %",
}


def quality_of(m: Metrics, key: str | None = None) -> tuple[float | None, str]:
    """The figure the plot's y-axis shows for ``key`` (None: the headline, accuracy else agreement).
    Keys: a score id (top1, top5, miou, ctc, cer), ``agreement``, or ``cosine:OUTPUT`` / ``snr:OUTPUT``."""
    if key is None:
        if m.accuracy is not None:
            return m.accuracy * 100, SCORE_LABELS.get(m.metric or "top1", "accuracy %")
        if m.agreement is not None:
            return m.agreement * 100, "agreement with baseline %"
        fidelity = next(iter((m.output_fidelity or {}).values()), None)
        return (fidelity.cosine * 100, "cosine similarity to baseline %") if fidelity else (None, "")
    if key == "agreement":
        return (None if m.agreement is None else m.agreement * 100), "agreement with baseline %"
    kind, _, output = key.partition(":")
    if output:
        fidelity = (m.output_fidelity or {}).get(output)
        if fidelity is None:
            return None, key
        if kind == "cosine":
            return fidelity.cosine * 100, f"cosine similarity of {output} %"
        return (fidelity.snr_db if fidelity.snr_db is not None else 100.0), f"SNR of {output} (dB; 100: identical)"
    value = (m.scores or {}).get(key)
    return (None if value is None else value * 100), SCORE_LABELS.get(key, f"{key} %")


def metric_choices(variants: list[Variant]) -> list[tuple[str, str | None]]:
    """(label, key) for every figure some variant has: the y-axis can show any of them."""
    choices: list[tuple[str, str | None]] = [("Headline (accuracy, else agreement)", None)]
    keys: dict[str, str] = {}
    for variant in variants:
        m = variant.metrics
        if m is None:
            continue
        for score in m.scores or {}:
            keys.setdefault(score, SCORE_LABELS.get(score, score).removesuffix(" %"))
        if m.agreement is not None:
            keys.setdefault("agreement", "agreement with baseline")
        for output in m.output_fidelity or {}:
            keys.setdefault(f"cosine:{output}", f"cosine similarity: {output}")
            keys.setdefault(f"snr:{output}", f"SNR: {output}")
    return choices + [(label, key) for key, label in keys.items()]


class TradeoffPlot(QWidget):
    variantClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axis = QComboBox()
        self.axis.addItem("Size", "size")
        self.axis.addItem("Latency", "latency")
        self.axis.currentIndexChanged.connect(lambda _i: self.refresh())
        self.y_metric = QComboBox()
        self.y_metric.setToolTip("the figure on the y-axis: every metric the project's variants have")
        self.y_metric.addItem("Headline (accuracy, else agreement)", None)
        self.y_metric.currentIndexChanged.connect(lambda _i: self.refresh())
        self.plot = pg.PlotWidget(background=None)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(False)
        self.front = pg.PlotDataItem(pen=pg.mkPen("#e6a100", width=2, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.scatter = pg.ScatterPlotItem(hoverable=True, hoverPen=pg.mkPen("w", width=2), tip=self._tip)
        self.selected = pg.ScatterPlotItem(size=22, pen=pg.mkPen("#ff3d00", width=3), brush=None)
        self.preview = pg.ScatterPlotItem(
            size=14, symbol="d", pen=pg.mkPen("#9c27b0", width=2), brush=pg.mkBrush(156, 39, 176, 90)
        )
        self.best = pg.ScatterPlotItem(size=26, symbol="star", pen=pg.mkPen("#e6a100", width=2), brush=None)
        for item in (self.front, self.scatter, self.selected, self.preview, self.best):
            self.plot.addItem(item)
        self.scatter.sigClicked.connect(self._clicked)
        self.caption = QLabel("Measured on this host. ★ baseline · ● variant · ◆ preview · dashed: Pareto front")
        self.caption.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("X axis:"))
        top.addWidget(self.axis)
        top.addWidget(QLabel("Y axis:"))
        top.addWidget(self.y_metric, 1)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption)
        self._variants: list[Variant] = []
        self._selected_id: str | None = None
        self._preview: Metrics | None = None
        self._feasible: dict[str, bool] = {}  # an auto-tune goal: variants that meet it, and those that do not
        self._best: str | None = None
        self.points: dict[str, tuple[float, float]] = {}

    def set_variants(self, variants: list[Variant], selected_id: str | None) -> None:
        self._variants, self._selected_id = variants, selected_id
        chosen = self.y_metric.currentData()
        self.y_metric.blockSignals(True)
        self.y_metric.clear()
        for label, key in metric_choices(variants):
            self.y_metric.addItem(label, key)
        self.y_metric.setCurrentIndex(max(0, self.y_metric.findData(chosen)))
        self.y_metric.blockSignals(False)
        self.refresh()

    def set_feasibility(self, feasible: dict[str, bool], best: str | None) -> None:
        """Grey the variants that break a search's goal; ring the best one that meets it."""
        self._feasible, self._best = dict(feasible), best
        self.refresh()

    def set_preview(self, metrics: Metrics | None) -> None:
        self._preview = metrics
        self.refresh()

    def _x(self, m: Metrics) -> float | None:
        if self.axis.currentData() == "latency":
            return m.latency_ms_median
        return math.log10(max(m.download, 1) / 1024)

    def refresh(self) -> None:
        latency = self.axis.currentData() == "latency"
        self.plot.setLogMode(x=False, y=False)
        self.points = {}
        spots, y_label = [], "accuracy %"
        for variant in self._variants:
            if variant.metrics is None:
                continue
            x, (y, label) = self._x(variant.metrics), quality_of(variant.metrics, self.y_metric.currentData())
            if x is None or y is None:
                continue
            y_label = label
            self.points[variant.id] = (x, y)
            spots.append(
                {
                    "pos": (x, y),
                    "data": variant.id,
                    "size": 16 if variant.is_root else 11,
                    "symbol": "star" if variant.is_root else "o",
                    "brush": pg.mkBrush(
                        "#1e88e5"
                        if variant.is_root
                        else "#bdbdbd"
                        if self._feasible.get(variant.id) is False
                        else "#43a047"
                    ),
                }
            )
        self.scatter.setData(spots)
        sign = -1 if self.y_metric.currentData() == "cer" else 1  # an error rate is better lower
        front_ids = pareto_front([(vid, x, sign * y) for vid, (x, y) in self.points.items()])
        self.front.setData([self.points[i][0] for i in front_ids], [self.points[i][1] for i in front_ids])
        for spot in self.scatter.points():
            if spot.data() in front_ids:
                spot.setPen(pg.mkPen("#e6a100", width=2))
        best = self.points.get(self._best or "")
        self.best.setData([best[0]] if best else [], [best[1]] if best else [])
        sel = self.points.get(self._selected_id or "")
        self.selected.setData([sel[0]] if sel else [], [sel[1]] if sel else [])
        preview = self._preview
        key = self.y_metric.currentData()
        if preview is not None and self._x(preview) is not None and quality_of(preview, key)[0] is not None:
            self.preview.setData([self._x(preview)], [quality_of(preview, key)[0]])
        else:
            self.preview.setData([], [])
        self.plot.setLabel("bottom", AXES["latency" if latency else "size"])
        self.plot.setLabel("left", y_label)
        if not latency:
            self.plot.getAxis("bottom").setTicks(None)
            self.plot.getAxis("bottom").tickStrings = lambda values, scale, spacing: [f"{10**v:,.1f}" for v in values]
        else:
            self.plot.getAxis("bottom").tickStrings = lambda values, scale, spacing: [f"{v:.3f}" for v in values]
        self.plot.enableAutoRange()

    def pareto_ids(self) -> list[str]:
        return pareto_front([(vid, x, y) for vid, (x, y) in self.points.items()])

    def _tip(self, x: float, y: float, data: str) -> str:
        variant = next((v for v in self._variants if v.id == data), None)
        if variant is None or variant.metrics is None:
            return ""
        m = variant.metrics
        steps = f"{variant.plugin_id} {variant.params}" if variant.plugin_id else "original model"
        quality, label = quality_of(m, self.y_metric.currentData())
        latency = f"{m.latency_ms_median:.3f} ms" if m.latency_ms_median is not None else "-"
        return (
            f"{variant.name}\n{steps}\n{label}: {quality:.2f}\ndownload: {m.download:,} B "
            f"(ONNX {m.artifact_bytes:,} B)\nnon-zero params: {m.nonzero_params:,} / {m.params:,}\n"
            f"latency: {latency} (measured on this host)"
        )

    def _clicked(self, _item, points, _event=None) -> None:
        if len(points):
            self.variantClicked.emit(points[0].data())
