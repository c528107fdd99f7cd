"""The layer table: the core's analysis, sortable and filterable, with a totals strip."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtWidgets import QHeaderView, QLabel, QLineEdit, QMenu, QTableView, QVBoxLayout, QWidget

from workbench.analysis import Analysis, LayerInfo

COLUMNS = ["Layer", "Op", "Input shapes", "Output shape", "Params", "Sparsity", "MACs", "Weight bytes", "Act. bytes"]
NUMERIC = {4, 5, 6, 7, 8}


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else ("×".join(map(str, shape)) or "scalar")


class LayerTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self.layers: list[LayerInfo] = []

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.beginResetModel()
        self.layers = list(analysis.layers) if analysis else []
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt API
        return 0 if parent.isValid() else len(self.layers)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        layer = self.layers[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.UserRole:  # sort key
            return self._sort_key(layer, column)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            return f"{layer.name}\nweights: {', '.join(layer.weight_names) or 'none'}"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return [
            layer.name,
            layer.op_type,
            "  ".join(_shape(s) for s in layer.input_shapes[:2]),
            _shape(layer.output_shapes[0]) if layer.output_shapes else "-",
            f"{layer.params:,}",
            "-" if layer.sparsity is None else f"{layer.sparsity:.1%}",
            "?" if layer.macs is None else f"{layer.macs:,}",
            f"{layer.weight_bytes:,}",
            "?" if layer.activation_bytes is None else f"{layer.activation_bytes:,}",
        ][column]

    @staticmethod
    def _sort_key(layer: LayerInfo, column: int) -> Any:
        values = [
            layer.name,
            layer.op_type,
            str(layer.input_shapes),
            str(layer.output_shapes),
            layer.params,
            layer.sparsity or 0.0,
            -1 if layer.macs is None else layer.macs,
            layer.weight_bytes,
            -1 if layer.activation_bytes is None else layer.activation_bytes,
        ]
        return values[column]


class LayerTableView(QWidget):
    """Emits the row index in the analysis (not the sorted view) of the selected layer."""

    layerSelected = Signal(int)
    overrideRequested = Signal(str, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = LayerTableModel()
        self.proxy = QSortFilterProxyModel()
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers by name, op or shape…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().currentRowChanged.connect(self._row_changed)
        self.summary = QLabel("Drop a model here")
        self.summary.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.filter)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.summary)

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.model.set_analysis(analysis)
        if analysis is None:
            self.summary.setText("Drop a model file anywhere on the window, or use File ▸ Open model…")
            return
        unknown = analysis.macs_unknown_layers
        self.summary.setText(
            f"<b>{len(analysis.layers)}</b> layers · <b>{analysis.params:,}</b> params "
            f"(<b>{analysis.nonzero_params:,}</b> non-zero, sparsity {analysis.sparsity:.1%}) · "
            f"weights {analysis.weight_bytes / 1024:,.1f} KiB · MACs {analysis.macs:,}"
            + (f" (+? in {len(unknown)} layers)" if unknown else "")
            + f" · peak activations ≈{analysis.peak_activation_bytes / 1024:,.1f} KiB (estimate)"
            + f" · input {analysis.input_shapes.describe() if analysis.input_shapes else '?'}"
        )
        for column, width in enumerate([170, 90, 150, 100, 70, 65, 90, 90]):
            self.table.setColumnWidth(column, width)

    def select_row(self, source_row: int) -> None:
        index = self.proxy.mapFromSource(self.model.index(source_row, 0))
        self.table.selectRow(index.row())

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.layerSelected.emit(self.proxy.mapToSource(current).row())

    def _context_menu(self, pos) -> None:
        index = self.table.indexAt(pos)
        if not index.isValid():
            return
        layer = self.model.layers[self.proxy.mapToSource(index).row()]
        if not layer.weight_names:
            return
        weight = layer.weight_names[0]
        menu = QMenu(self)
        menu.addSection(f"Pruning override for {weight}")
        for ratio in (0.25, 0.5, 0.75, 0.9):
            menu.addAction(f"Prune this layer {ratio:.0%}", lambda r=ratio: self.overrideRequested.emit(weight, r))
        menu.addAction("Exclude from pruning", lambda: self.overrideRequested.emit(weight, 0.0))
        menu.addAction("Clear override", lambda: self.overrideRequested.emit(weight, -1.0))
        menu.exec(self.table.viewport().mapToGlobal(pos))
