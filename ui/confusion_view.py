"""The selected variant's confusion matrix on the evaluation split: rows are true classes, columns the
predicted ones; counts written in the cells while they fit."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

MAX_WRITTEN = 20  # beyond this many classes the cells are too small for their counts


class ConfusionView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setWordWrap(True)
        self.plot = pg.PlotWidget(background=None)
        self.plot.setMenuEnabled(False)
        self.plot.setAspectLocked(True)
        self.plot.invertY(True)
        self.plot.setLabel("left", "true class")
        self.plot.setLabel("bottom", "predicted class")
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get("viridis"))
        self.plot.addItem(self.image)
        self._texts: list[pg.TextItem] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.plot, 1)
        self.show_matrix(None)

    def show_matrix(self, matrix: list[list[int]] | None, names: tuple[str, ...] = (), caption: str = "") -> None:
        for text in self._texts:
            self.plot.removeItem(text)
        self._texts = []
        if not matrix:
            self.title.setText(
                "No confusion matrix: it needs a classifier's [batch, classes] output and labelled evaluation "
                "data (Data ▸ Attach evaluation data…)."
            )
            self.image.clear()
            return
        counts = np.asarray(matrix, dtype=np.int64)
        classes = len(counts)
        names = tuple(names[:classes]) + tuple(str(i) for i in range(len(names), classes))
        self.image.setImage(counts.T.astype(np.float32), levels=(0, max(1, int(counts.max()))))
        ticks = [[(i + 0.5, names[i]) for i in range(classes)]] if classes <= MAX_WRITTEN else None
        self.plot.getAxis("bottom").setTicks(ticks)
        self.plot.getAxis("left").setTicks(ticks)
        if classes <= MAX_WRITTEN:
            peak = counts.max() or 1
            for row in range(classes):
                for column in range(classes):
                    if counts[row, column]:
                        colour = "k" if counts[row, column] > 0.6 * peak else "w"
                        text = pg.TextItem(str(counts[row, column]), color=colour, anchor=(0.5, 0.5))
                        text.setPos(column + 0.5, row + 0.5)
                        self.plot.addItem(text)
                        self._texts.append(text)
        correct = int(np.trace(counts))
        self.title.setText(
            f"{caption}{correct:,} of {int(counts.sum()):,} on the diagonal ({correct / max(1, counts.sum()):.2%}); "
            "rows: true class, columns: predicted"
        )
        self.plot.autoRange()
