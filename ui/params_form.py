"""Controls generated from a plugin's Params JSON schema: no plugin-specific widget code.

Bounded numbers become sliders with a live value label, enums become combo boxes, booleans check
boxes; descriptions become tooltips. ``changed`` fires while a slider moves, ``committed`` when it is
released or another control changes.
"""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QSlider, QWidget


class ParamsForm(QWidget):
    changed = Signal(dict)
    committed = Signal(dict)

    def __init__(self, schema: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.schema = schema
        self._getters: dict[str, Any] = {}
        self.sliders: dict[str, QSlider] = {}
        self.value_labels: dict[str, QLabel] = {}
        self.extra: dict[str, Any] = {}  # params the form has no control for (e.g. per-layer overrides)
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name, prop in schema.get("properties", {}).items():
            widget = self._control(name, _resolve(prop, schema))
            if widget is None:
                continue
            widget.setToolTip(prop.get("description", ""))
            label = QLabel(prop.get("title", name.replace("_", " ").capitalize()))
            label.setToolTip(prop.get("description", ""))
            layout.addRow(label, widget)

    def _control(self, name: str, prop: dict[str, Any]) -> QWidget | None:
        kind = prop.get("type")
        default = prop.get("default")
        if "enum" in prop:
            combo = QComboBox()
            for value in prop["enum"]:
                combo.addItem(str(value), value)  # the value itself: numeric choices (bits, block sizes) stay numbers
            if default is not None:
                combo.setCurrentText(str(default))
            combo.currentTextChanged.connect(lambda _t: self._emit(commit=True))
            self._getters[name] = combo.currentData
            return combo
        if kind == "boolean":
            box = QCheckBox()
            box.setChecked(bool(default))
            box.toggled.connect(lambda _v: self._emit(commit=True))
            self._getters[name] = box.isChecked
            return box
        if kind in ("number", "integer") and "minimum" in prop and "maximum" in prop:
            low, high = float(prop["minimum"]), float(prop["maximum"])
            integer = kind == "integer"
            # A round step (0.001 for 0..0.99) so values like 0.9 are exact, not 0.8999.
            step = 1.0 if integer else 10 ** math.floor(math.log10((high - low) / 100))
            steps = max(1, round((high - low) / step))
            decimals = 0 if integer else max(0, -round(math.log10(step)))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, steps)
            value_label = QLabel()
            value_label.setMinimumWidth(48)
            value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

            # Rates spanning decades (1e-5..0.1) move on a log scale, or small defaults would snap to the minimum.
            logarithmic = not integer and low > 0 and high / low >= 100
            if logarithmic:
                steps = 200
                slider.setRange(0, steps)

            def value() -> float | int:
                fraction = slider.value() / max(steps, 1)
                if logarithmic:
                    return float(f"{low * (high / low) ** fraction:.2g}")
                raw = low + (high - low) * fraction
                return round(raw) if integer else round(raw, 4)

            def show() -> None:
                v = value()
                text = f"{v:g}" if logarithmic else f"{v:.{min(decimals, 2)}f}"
                value_label.setText(str(v) if integer else text)

            start = float(default if default is not None else low)
            if logarithmic:
                slider.setValue(round(math.log(start / low) / math.log(high / low) * steps))
            else:
                slider.setValue(round((start - low) / (high - low) * steps))
            show()
            slider.valueChanged.connect(lambda _v: (show(), self._emit(commit=not slider.isSliderDown())))
            slider.sliderReleased.connect(lambda: self._emit(commit=True))
            self._getters[name] = value
            self.sliders[name] = slider
            self.value_labels[name] = value_label
            box = QWidget()
            row = QHBoxLayout(box)
            row.setContentsMargins(0, 0, 0, 0)
            row.addWidget(slider, 1)
            row.addWidget(value_label)
            return box
        return None  # dicts/lists (overrides) are set elsewhere, e.g. from the layer table

    def values(self) -> dict[str, Any]:
        values = {name: getter() for name, getter in self._getters.items()}
        return values | {k: v for k, v in self.extra.items() if v}

    def set_extra(self, name: str, value: Any) -> None:
        self.extra[name] = value
        self._emit(commit=True)

    def _emit(self, commit: bool) -> None:
        values = self.values()
        self.changed.emit(values)
        if commit:
            self.committed.emit(values)


def _resolve(prop: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref / allOf into $defs, keeping the field's own description and default."""
    ref = prop.get("$ref") or next((p.get("$ref") for p in prop.get("allOf", []) if "$ref" in p), None)
    if not ref:
        return prop
    target = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
    return target | {k: v for k, v in prop.items() if k in ("description", "default", "title")}
