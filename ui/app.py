"""Start the window: a path on the command line opens it; otherwise reopen or load the demo."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def run(paths: list[str] | None = None) -> int:
    from PySide6.QtWidgets import QApplication
    from workbench.ui.main_window import MainWindow

    headless = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM"))
    if sys.platform.startswith("linux") and headless:
        print(
            "error: no display for the window (DISPLAY is not set); the CLI commands (workbench demo, info, "
            "eval, apply) work without one",
            file=sys.stderr,
        )
        return 2
    from PySide6.QtCore import QCoreApplication, Qt

    # The graph's QtWebEngine view is created lazily; it needs shared GL contexts set before the app exists.
    QCoreApplication.setAttribute(Qt.ApplicationAttribute.AA_ShareOpenGLContexts)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Model Workbench")
    app.setOrganizationName("model-workbench")
    app.setStyle("Fusion")  # follows the OS light/dark palette on every platform
    window = MainWindow()
    window.show()
    start(window, [Path(p) for p in paths or []])
    return app.exec()


def start(window, paths: list[Path]) -> None:
    """First start: the demo. Later starts: offer the last project. A path given: open it."""
    if paths:
        window.open_path(paths[0])
        return
    recent = [Path(p) for p in window.ws.recent.get("projects") if (Path(p) / "project.db").is_file()]
    if recent:
        window.offer_reopen(recent[0])
    else:
        window.open_demo()
