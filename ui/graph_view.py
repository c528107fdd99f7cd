"""The Graph tab: netron, served privately by :class:`workbench.graph_server.GraphServer` (127.0.0.1, a
random per-session path, only the model on show), embedded with QtWebEngine when available."""

from __future__ import annotations

import importlib.util
import json
import time
import webbrowser

from PySide6.QtCore import QTimer, QUrl, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from workbench.layer_colors import COLOR_MODES, LayerValue

# Selects a node by name in netron's current graph; netron keys its table by node objects.
_FIND_JS = """(() => {{
  const view = window.__view__; const target = view && view._target;
  if (!target || !target._table) return false;
  for (const key of target._table.keys()) {{
    if (key && key.name === {name}) {{ target.scrollTo(target.select([key], 'sidebar')); return true; }}
  }}
  return false;
}})()"""


# Fills each named node's header in netron's drawing and gives it a tooltip; returns how many it coloured,
# or -1 while netron has not drawn the graph yet. While colours are on, a node without a value is grey (so
# netron's own category colours do not read as a verdict); with none, every node gets netron's colour back.
_COLOR_JS = """(() => {{
  const view = window.__view__; const target = view && view._target;
  if (!target || !target._table) return -1;
  const colors = {colors}; let count = 0; const colored = Object.keys(colors).length > 0;
  for (const [key, obj] of target._table.entries()) {{
    if (!key || !obj || !obj.element || typeof key.name !== 'string') continue;
    const path = obj.element.querySelector('path'); if (!path) continue;
    let title = obj.element.querySelector('title.workbench');
    const found = colors[key.name];
    path.style.fill = found ? found[0] : (colored ? '#bdbdbd' : '');
    if (found) {{
      if (!title) {{
        title = document.createElementNS('http://www.w3.org/2000/svg', 'title');
        title.setAttribute('class', 'workbench'); obj.element.appendChild(title);
      }}
      title.textContent = key.name + ': ' + found[1]; count += 1;
    }} else if (title) {{ title.remove(); }}
  }}
  return count;
}})()"""
GOOD, MIDDLE, BAD = (46, 125, 50), (239, 108, 0), (198, 40, 40)


def level_color(level: float) -> str:
    """Green (0) through amber to red (1)."""
    low, high, t = (GOOD, MIDDLE, level * 2) if level <= 0.5 else (MIDDLE, BAD, level * 2 - 1)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(low, high, strict=True))


class GraphView(QWidget):
    found = Signal(str, bool)  # layer name, whether netron found it
    colorModeChanged = Signal()

    def __init__(self, parent: QWidget | None = None, *, use_webengine: bool = True) -> None:
        super().__init__(parent)
        self.url: str | None = None
        self._server = None  # a workbench.graph_server.GraphServer once a model is shown
        self.status = QLabel("No model open.")
        self.status.setWordWrap(True)
        self.browser_button = QPushButton("Open graph in the system browser")
        self.browser_button.clicked.connect(self.open_in_browser)
        self.browser_button.setEnabled(False)
        self.color_mode = QComboBox()
        self.color_mode.addItem("No node colours", None)
        for mode, label in COLOR_MODES.items():
            self.color_mode.addItem(f"Colour nodes by {label}", mode)
        self.color_mode.currentIndexChanged.connect(lambda _i: self.colorModeChanged.emit())
        self.legend = QLabel("")
        self.coloured = -1  # nodes the last colouring reached (-1: not applied yet)
        self._colors: dict[str, list[str]] = {}
        self._retry = QTimer(self)
        self._retry.setInterval(400)
        self._retry.timeout.connect(self._apply_colors)
        self._tries = 0
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        bar = QHBoxLayout()
        bar.addWidget(self.color_mode)
        bar.addWidget(self.legend, 1)
        self._layout.addLayout(bar)
        self.web = None
        # The web view is created on first use: QtWebEngine costs about a second at start-up.
        self._webengine = use_webengine and importlib.util.find_spec("PySide6.QtWebEngineWidgets") is not None
        self._layout.addWidget(self.status)
        self._layout.addWidget(self.browser_button)
        if not self._webengine:
            self.status.setText("QtWebEngine is not installed: the graph opens in your browser instead.")

    def _ensure_web(self) -> None:
        if self.web is not None or not self._webengine:
            return
        from PySide6.QtWebEngineWidgets import QWebEngineView

        self.web = QWebEngineView()
        self._layout.insertWidget(0, self.web, 1)
        self.browser_button.hide()
        self.status.hide()

    def show_model(self, data: bytes, name: str = "model.onnx") -> None:
        from workbench.graph_server import GraphServer

        if self._server is None:
            self._server = GraphServer()
        self.url = self._server.show(data, name)
        self.browser_button.setEnabled(True)
        self._ensure_web()
        if self.web is None:
            self.status.setText(f"Graph of {name} served at {self.url}")
            return
        from PySide6.QtNetwork import QNetworkCookie

        # netron asks for cookie consent on first load; the consent cookie it sets itself skips that banner.
        cookie = QNetworkCookie(b"consent", str(int(time.time() * 1000)).encode())
        cookie.setDomain("127.0.0.1")
        cookie.setPath("/")
        self.web.page().profile().cookieStore().setCookie(cookie, QUrl(self.url))
        self.web.load(QUrl(self.url))
        self._tries = 0
        self._retry.start()  # colours, if any, once the new graph is drawn

    def find_layer(self, name: str) -> None:
        if self.web is None or self.url is None:
            return
        self.web.page().runJavaScript(
            _FIND_JS.format(name=json.dumps(name)), 0, lambda ok: self.found.emit(name, bool(ok))
        )

    def color_nodes(self, values: list[LayerValue], legend: str = "") -> None:
        """Colour the drawn graph's nodes by ``values`` (none: netron's own colours); applied once netron has
        drawn the graph."""
        self._colors = {v.layer: [level_color(v.level), v.label] for v in values if v.level is not None}
        self.legend.setText(legend)
        self._tries = 0
        self._apply_colors()

    def _apply_colors(self) -> None:
        if self.web is None or self.url is None:
            return
        self.web.page().runJavaScript(_COLOR_JS.format(colors=json.dumps(self._colors)), 0, self._colored)

    def _colored(self, count: object) -> None:
        self.coloured = int(count) if isinstance(count, (int, float)) else -1
        if self.coloured < 0 and self._tries < 50:  # netron is still drawing
            self._tries += 1
            self._retry.start()
        else:
            self._retry.stop()

    def open_in_browser(self) -> None:
        if self.url:
            webbrowser.open(self.url)

    def stop(self) -> None:
        self._retry.stop()
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.url = None
