"""The variants tree: lineage of every applied step; selecting one makes it current (undo by selection)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QInputDialog, QMenu, QMessageBox, QTreeWidget, QTreeWidgetItem

from workbench.project import Variant


class VariantsTree(QTreeWidget):
    variantSelected = Signal(str)
    renameRequested = Signal(str, str)
    deleteRequested = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.setHeaderLabels(["Variant", "Quality", "Download"])
        self.setColumnWidth(0, 160)
        self.setColumnWidth(1, 64)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)
        self.itemSelectionChanged.connect(self._selection_changed)
        self.items: dict[str, QTreeWidgetItem] = {}
        self._updating = False

    def set_variants(self, variants: list[Variant], current_id: str | None) -> None:
        self._updating = True
        self.clear()
        self.items = {}
        for variant in variants:  # parents always come before children (created earlier)
            m = variant.metrics
            quality = (
                "-"
                if m is None
                else (
                    f"{m.accuracy:.1%}"
                    if m.accuracy is not None
                    else f"{m.agreement:.1%} agr."
                    if m.agreement is not None
                    else "-"
                )
            )
            size = "-" if m is None else f"{m.download / 1024:,.1f} KiB"
            item = QTreeWidgetItem([variant.name, quality, size])
            item.setData(0, Qt.ItemDataRole.UserRole, variant.id)
            item.setToolTip(0, f"{variant.plugin_id or 'baseline'} {variant.params or ''}")
            parent = self.items.get(variant.parent_id or "")
            (parent.addChild(item) if parent else self.addTopLevelItem(item))
            self.items[variant.id] = item
        self.expandAll()
        if current_id in self.items:
            self.setCurrentItem(self.items[current_id])
        self._updating = False

    def select_variant(self, variant_id: str) -> None:
        if variant_id in self.items:
            self.setCurrentItem(self.items[variant_id])

    def _selection_changed(self) -> None:
        item = self.currentItem()
        if item is not None and not self._updating:
            self.variantSelected.emit(item.data(0, Qt.ItemDataRole.UserRole))

    def _menu(self, pos) -> None:
        item = self.itemAt(pos)
        if item is None:
            return
        variant_id = item.data(0, Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Rename…", lambda: self.ask_rename(variant_id))
        delete = menu.addAction("Delete…", lambda: self.ask_delete(variant_id))
        delete.setEnabled(item.parent() is not None)
        menu.exec(self.viewport().mapToGlobal(pos))

    def ask_rename(self, variant_id: str) -> None:
        current = self.items[variant_id].text(0)
        name, ok = QInputDialog.getText(self, "Rename variant", "Name:", text=current)
        if ok and name.strip():
            self.renameRequested.emit(variant_id, name.strip())

    def ask_delete(self, variant_id: str) -> None:
        name = self.items[variant_id].text(0)
        answer = QMessageBox.question(
            self, "Delete variant", f"Delete “{name}” and every variant derived from it? This cannot be undone."
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.deleteRequested.emit(variant_id)
