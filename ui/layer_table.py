"""The layer table: the core's analysis, sortable and filterable, with a totals strip.

Layers inside If/Loop/Scan subgraphs are nested under their control-flow row, one group row per
subgraph (then_branch, else_branch, body) carrying that subgraph's params and MACs. Sorting orders
siblings; the filter keeps the rows leading to a match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QLabel, QLineEdit, QMenu, QTreeView, QVBoxLayout, QWidget

from workbench.analysis import Analysis, LayerInfo
from workbench.placement import LayerPlacement

COLUMNS = [
    "Layer",
    "Op",
    "Target",
    "Input shapes",
    "Output shape",
    "Params",
    "Sparsity",
    "MACs",
    "Weight bytes",
    "Act. bytes",
]
TARGET = 2  # where the layer runs on the device chosen in the export panel
MACS = 7
NUMERIC = {5, 6, 7, 8, 9}
FILTER_ROLE = Qt.ItemDataRole.UserRole + 1  # what the filter matches: full names, not shortened ones
_ROOT = -1
_NOT_TAKEN = QColor("#9e9e9e")
# The placement colours, shared with the graph view.
PLACEMENT_COLORS = {"runs on the target": "#2e7d32", "falls back": "#ef6c00", "unsupported": "#c62828"}


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else ("×".join(map(str, shape)) or "scalar")


@dataclass
class _Node:
    """A row: a layer (index into the analysis' layers) or a subgraph group under a control-flow layer."""

    parent: int  # node id, _ROOT at the top
    row: int  # position among the parent's children
    layer: int | None = None
    branch: str | None = None  # group rows: the subgraph attribute
    children: list[int] = field(default_factory=list)
    not_taken: bool = False  # inside an If branch the analysis' inputs do not take
    label: str = ""  # layer rows: the name shown (without the prefix all rows of its subgraph share)
    # group rows: totals over the subgraph
    params: int = 0
    nonzero: int = 0
    weight_bytes: int = 0
    macs: int | None = None
    layer_count: int = 0


class LayerTableModel(QAbstractItemModel):
    def __init__(self) -> None:
        super().__init__()
        self.layers: list[LayerInfo] = []
        self._nodes: list[_Node] = []
        self._top: list[int] = []
        self._node_of_layer: list[int] = []
        self.placements: dict[str, LayerPlacement] = {}
        self.placement_device = ""

    def set_placements(self, placements: list[LayerPlacement], device: str) -> None:
        """Where each layer runs on ``device`` (the export panel's choice), shown in the Target column."""
        self.placements = {p.layer: p for p in placements}
        self.placement_device = device
        if self._nodes:
            last = len(self._top) - 1
            self.dataChanged.emit(self.index(0, TARGET), self.index(max(last, 0), TARGET))

    def set_analysis(self, analysis: Analysis | None) -> None:
        self.beginResetModel()
        self.layers = list(analysis.layers) if analysis else []
        self._build()
        self.endResetModel()

    def _build(self) -> None:
        self._nodes, self._top, self._node_of_layer = [], [], []
        by_name: dict[str, int] = {}
        groups: dict[tuple[str, str | None], int] = {}

        def add(node: _Node) -> int:
            siblings = self._top if node.parent == _ROOT else self._nodes[node.parent].children
            node.row = len(siblings)
            self._nodes.append(node)
            siblings.append(len(self._nodes) - 1)
            return len(self._nodes) - 1

        for index, layer in enumerate(self.layers):
            parent = _ROOT
            if layer.parent is not None and layer.parent in by_name:
                key = (layer.parent, layer.branch)
                if key not in groups:  # a branch the control-flow row did not list
                    groups[key] = add(_Node(by_name[layer.parent], 0, branch=layer.branch))
                parent = groups[key]
            node_id = add(_Node(parent, 0, layer=index))
            self._node_of_layer.append(node_id)
            by_name[layer.name] = node_id
            for branch, macs in layer.branch_macs.items():
                taken = layer.branch_taken
                group = _Node(node_id, 0, branch=branch, macs=macs, not_taken=taken is not None and taken != branch)
                groups[(layer.name, branch)] = add(group)
        for node in self._nodes:  # not-taken branches grey out all the way down; groups add up their layers
            if node.parent != _ROOT and self._nodes[node.parent].not_taken:
                node.not_taken = True
            if node.layer is None:
                self._label_children(node)
            elif not node.label:
                node.label = self.layers[node.layer].name
        for node in self._nodes:
            if node.layer is not None and node.parent != _ROOT:
                layer = self.layers[node.layer]
                for ancestor in self._ancestors(node):
                    if ancestor.layer is None:
                        ancestor.params += layer.params
                        ancestor.nonzero += layer.nonzero_params
                        ancestor.weight_bytes += layer.weight_bytes
                        ancestor.layer_count += 1

    def _label_children(self, group: _Node) -> None:
        """Inlining exporters prefix every node of a branch with its path ("If_0_then_branch__Inline_0__/");
        the nesting says that already, so the rows show the rest (the tooltip and the filter the full name)."""
        names = [self.layers[self._nodes[c].layer].name for c in group.children if self._nodes[c].layer is not None]
        first, last = (min(names), max(names)) if len(names) > 1 else ("", "")
        prefix = first[: next((i for i, (a, b) in enumerate(zip(first, last, strict=False)) if a != b), len(first))]
        cut = max(prefix.rfind("/"), prefix.rfind("__") + 1)
        for child in group.children:
            node = self._nodes[child]
            if node.layer is not None:
                name = self.layers[node.layer].name
                node.label = name[cut + 1 :] if cut > 0 and len(name) > cut + 1 else name

    def _ancestors(self, node: _Node):
        while node.parent != _ROOT:
            node = self._nodes[node.parent]
            yield node

    # --- Qt item model ---------------------------------------------------------------------------
    def index(self, row: int, column: int, parent: QModelIndex = QModelIndex()) -> QModelIndex:  # noqa: B008
        siblings = self._children(parent)
        if not 0 <= row < len(siblings) or not 0 <= column < len(COLUMNS):
            return QModelIndex()
        return self.createIndex(row, column, siblings[row])

    def parent(self, index: QModelIndex | None = None) -> Any:  # type: ignore[override]
        if index is None:
            return QObject.parent(self)
        if not index.isValid():
            return QModelIndex()
        parent_id = self._nodes[index.internalId()].parent
        if parent_id == _ROOT:
            return QModelIndex()
        return self.createIndex(self._nodes[parent_id].row, 0, parent_id)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt API
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._children(parent))

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def _children(self, parent: QModelIndex) -> list[int]:
        return self._nodes[parent.internalId()].children if parent.isValid() else self._top

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def node(self, index: QModelIndex) -> _Node | None:
        return self._nodes[index.internalId()] if index.isValid() else None

    def source_index(self, layer_index: int) -> QModelIndex:
        """The index of analysis row ``layer_index`` (column 0)."""
        node_id = self._node_of_layer[layer_index]
        return self.createIndex(self._nodes[node_id].row, 0, node_id)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = self._nodes[index.internalId()]
        column = index.column()
        if role == Qt.ItemDataRole.TextAlignmentRole and column in NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and node.not_taken:
            return QBrush(_NOT_TAKEN)
        if node.layer is None:
            return self._group_data(node, column, role)
        layer = self.layers[node.layer]
        if role == Qt.ItemDataRole.UserRole:  # sort key
            return self._sort_key(layer, column)
        if role == FILTER_ROLE:
            return layer.name if column == 0 else self.data(index, Qt.ItemDataRole.DisplayRole)
        if role == Qt.ItemDataRole.ToolTipRole and column == 0:
            return self._tooltip(layer, node)
        if role == Qt.ItemDataRole.ToolTipRole and column == MACS and layer.branch_macs:
            return self._macs_tooltip(layer)
        placement = self.placements.get(layer.name)
        if column == TARGET and placement is not None:
            if role == Qt.ItemDataRole.ForegroundRole:
                return QBrush(QColor(PLACEMENT_COLORS[placement.where]))
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"{placement.where} on {self.placement_device}: {placement.reason}"
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        return [
            node.label,
            layer.op_type,
            "" if placement is None else placement.where,
            "  ".join(_shape(s) for s in layer.input_shapes[:2]),
            _shape(layer.output_shapes[0]) if layer.output_shapes else "-",
            f"{layer.params:,}",
            "-" if layer.sparsity is None else f"{layer.sparsity:.1%}",
            "?" if layer.macs is None else f"{layer.macs:,}",
            f"{layer.weight_bytes:,}",
            "?" if layer.activation_bytes is None else f"{layer.activation_bytes:,}",
        ][column]

    def _group_data(self, node: _Node, column: int, role: int) -> Any:
        owner = self.layers[self._nodes[node.parent].layer]  # type: ignore[index]
        per_iteration = owner.op_type in ("Loop", "Scan")
        if role == Qt.ItemDataRole.UserRole:
            macs = -1 if node.macs is None else node.macs
            return [node.row, "", "", "", "", node.params, 0.0, macs, node.weight_bytes, -1][column]
        if role == FILTER_ROLE:
            return self._group_data(node, column, Qt.ItemDataRole.DisplayRole)
        if role == Qt.ItemDataRole.FontRole and column == 0:
            font = QFont()
            font.setItalic(True)
            return font
        if role == Qt.ItemDataRole.ToolTipRole:
            state = ""
            if owner.branch_taken is not None:
                state = " — " + ("taken" if owner.branch_taken == node.branch else "not taken") + " at these inputs"
            return (
                f"{owner.name} ▸ {node.branch}{state}\n{node.layer_count} layer(s), {node.params:,} params, "
                f"MACs {'?' if node.macs is None else f'{node.macs:,}'}" + (" per iteration" if per_iteration else "")
            )
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        label = node.branch or "?"
        if owner.branch_taken is not None:
            label += " (taken)" if owner.branch_taken == node.branch else " (not taken)"
        sparsity = "-" if node.params == 0 else f"{1.0 - node.nonzero / node.params:.1%}"
        macs = "?" if node.macs is None else f"{node.macs:,}" + (" /iter" if per_iteration else "")
        count = f"{node.layer_count} layer" + ("" if node.layer_count == 1 else "s")
        return [label, count, "", "", "", f"{node.params:,}", sparsity, macs, f"{node.weight_bytes:,}", ""][column]

    def _tooltip(self, layer: LayerInfo, node: _Node) -> str:
        text = f"{layer.name}\nweights: {', '.join(layer.weight_names) or 'none'}"
        if layer.parent is not None:
            text += f"\ninside {layer.parent} ▸ {layer.branch}"
            text += " (not taken at these inputs)" if node.not_taken else ""
        if layer.branch_macs:
            text += "\n" + self._macs_tooltip(layer)
        return text

    @staticmethod
    def _macs_tooltip(layer: LayerInfo) -> str:
        parts = ", ".join(f"{b} {'?' if m is None else f'{m:,}'}" for b, m in layer.branch_macs.items())
        if layer.op_type == "If":
            rule = (
                f"counts {layer.branch_taken}, the branch these inputs take"
                if layer.branch_taken
                else "counts the costlier branch (one runs per call)"
            )
        else:
            rule = "counts the body's MACs times the iterations (per iteration: the body's row)"
        return f"MACs per subgraph: {parts}; this row {rule}"

    def _sort_key(self, layer: LayerInfo, column: int) -> Any:
        placement = self.placements.get(layer.name)
        values = [
            layer.name,
            layer.op_type,
            "" if placement is None else placement.where,
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
        self.proxy.setFilterRole(FILTER_ROLE)
        self.proxy.setRecursiveFilteringEnabled(True)  # a nested match keeps its control-flow row
        self.proxy.setAutoAcceptChildRows(True)  # a matching control-flow row keeps its subgraphs
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter layers by name, op or shape…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        self.table = QTreeView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QTreeView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTreeView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setUniformRowHeights(True)
        self.table.setIndentation(14)
        self.table.setRootIsDecorated(False)  # shown once the analysis has control flow
        self.table.header().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.table.header().setStretchLastSection(True)
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
        nested = sum(1 for layer in analysis.layers if layer.depth)
        self.table.setRootIsDecorated(nested > 0)
        self.table.expandToDepth(1)  # control-flow rows show their subgraphs' own layers; deeper ones fold
        unknown = analysis.macs_unknown_layers
        self.summary.setText(
            f"<b>{len(analysis.layers)}</b> layers"
            + (f" ({nested} inside If/Loop/Scan)" if nested else "")
            + f" · <b>{analysis.params:,}</b> params "
            f"(<b>{analysis.nonzero_params:,}</b> non-zero, sparsity {analysis.sparsity:.1%}) · "
            f"weights {analysis.weight_bytes / 1024:,.1f} KiB · MACs {analysis.macs:,}"
            + (f" (+? in {len(unknown)} layers)" if unknown else "")
            + f" · peak activations ≈{analysis.peak_activation_bytes / 1024:,.1f} KiB (estimate)"
            + f" · input {analysis.input_shapes.describe() if analysis.input_shapes else '?'}"
        )
        for column, width in enumerate([170 + 30 * (nested > 0), 90, 115, 150, 100, 70, 65, 90, 90]):
            self.table.setColumnWidth(column, width)

    def select_row(self, source_row: int) -> None:
        index = self.proxy.mapFromSource(self.model.source_index(source_row))
        if not index.isValid():
            return
        parent = index.parent()
        while parent.isValid():
            self.table.expand(parent)
            parent = parent.parent()
        self.table.setCurrentIndex(index)
        self.table.scrollTo(index)

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        node = self.model.node(self.proxy.mapToSource(current))
        if node is not None and node.layer is not None:
            self.layerSelected.emit(node.layer)

    def _context_menu(self, pos) -> None:
        node = self.model.node(self.proxy.mapToSource(self.table.indexAt(pos)))
        if node is None or node.layer is None:
            return
        layer = self.model.layers[node.layer]
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
