"""The Graph tab: netron, served privately by :class:`workbench.graph_server.GraphServer` (127.0.0.1, a
random per-session path, only the model on show), embedded with QtWebEngine when available."""

from __future__ import annotations

import importlib.util
import json
import time
import webbrowser

from PySide6.QtCore import QUrl, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

# Selects a node by name in netron's current graph; netron keys its table by node objects.
_FIND_JS = """(() => {{
  const view = window.__view__; const target = view && view._target;
  if (!target || !target._table) return false;
  for (const key of target._table.keys()) {{
    if (key && key.name === {name}) {{ target.scrollTo(target.select([key], 'sidebar')); return true; }}
  }}
  return false;
}})()"""


class GraphView(QWidget):
    found = Signal(str, bool)  # layer name, whether netron found it

    def __init__(self, parent: QWidget | None = None, *, use_webengine: bool = True) -> None:
        super().__init__(parent)
        self.url: str | None = None
        self._server = None  # a workbench.graph_server.GraphServer once a model is shown
        self.status = QLabel("No model open.")
        self.status.setWordWrap(True)
        self.browser_button = QPushButton("Open graph in the system browser")
        self.browser_button.clicked.connect(self.open_in_browser)
        self.browser_button.setEnabled(False)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
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

    def find_layer(self, name: str) -> None:
        if self.web is None or self.url is None:
            return
        self.web.page().runJavaScript(
            _FIND_JS.format(name=json.dumps(name)), 0, lambda ok: self.found.emit(name, bool(ok))
        )

    def open_in_browser(self) -> None:
        if self.url:
            webbrowser.open(self.url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.url = None
