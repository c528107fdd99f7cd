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


def quality_of(m: Metrics) -> tuple[float | None, str]:
    if m.accuracy is not None:
        return m.accuracy * 100, "accuracy %"
    if m.agreement is not None:
        return m.agreement * 100, "agreement with baseline %"
    return None, ""


class TradeoffPlot(QWidget):
    variantClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.axis = QComboBox()
        self.axis.addItem("Size", "size")
        self.axis.addItem("Latency", "latency")
        self.axis.currentIndexChanged.connect(lambda _i: self.refresh())
        self.plot = pg.PlotWidget(background=None)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setMenuEnabled(False)
        self.front = pg.PlotDataItem(pen=pg.mkPen("#e6a100", width=2, style=pg.QtCore.Qt.PenStyle.DashLine))
        self.scatter = pg.ScatterPlotItem(hoverable=True, hoverPen=pg.mkPen("w", width=2), tip=self._tip)
        self.selected = pg.ScatterPlotItem(size=22, pen=pg.mkPen("#ff3d00", width=3), brush=None)
        self.preview = pg.ScatterPlotItem(
            size=14, symbol="d", pen=pg.mkPen("#9c27b0", width=2), brush=pg.mkBrush(156, 39, 176, 90)
        )
        for item in (self.front, self.scatter, self.selected, self.preview):
            self.plot.addItem(item)
        self.scatter.sigClicked.connect(self._clicked)
        self.caption = QLabel("Measured on this host. ★ baseline · ● variant · ◆ preview · dashed: Pareto front")
        self.caption.setWordWrap(True)
        top = QHBoxLayout()
        top.addWidget(QLabel("X axis:"))
        top.addWidget(self.axis)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.caption)
        self._variants: list[Variant] = []
        self._selected_id: str | None = None
        self._preview: Metrics | None = None
        self.points: dict[str, tuple[float, float]] = {}

    def set_variants(self, variants: list[Variant], selected_id: str | None) -> None:
        self._variants, self._selected_id = variants, selected_id
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
            x, (y, label) = self._x(variant.metrics), quality_of(variant.metrics)
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
                    "brush": pg.mkBrush("#1e88e5" if variant.is_root else "#43a047"),
                }
            )
        self.scatter.setData(spots)
        front_ids = pareto_front([(vid, x, y) for vid, (x, y) in self.points.items()])
        self.front.setData([self.points[i][0] for i in front_ids], [self.points[i][1] for i in front_ids])
        for spot in self.scatter.points():
            if spot.data() in front_ids:
                spot.setPen(pg.mkPen("#e6a100", width=2))
        sel = self.points.get(self._selected_id or "")
        self.selected.setData([sel[0]] if sel else [], [sel[1]] if sel else [])
        preview = self._preview
        if preview is not None and self._x(preview) is not None and quality_of(preview)[0] is not None:
            self.preview.setData([self._x(preview)], [quality_of(preview)[0]])
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
        quality, label = quality_of(m)
        latency = f"{m.latency_ms_median:.3f} ms" if m.latency_ms_median is not None else "-"
        return (
            f"{variant.name}\n{steps}\n{label}: {quality:.2f}\ndownload: {m.download:,} B "
            f"(ONNX {m.artifact_bytes:,} B)\nnon-zero params: {m.nonzero_params:,} / {m.params:,}\n"
            f"latency: {latency} (measured on this host)"
        )

    def _clicked(self, _item, points, _event=None) -> None:
        if len(points):
            self.variantClicked.emit(points[0].data())
