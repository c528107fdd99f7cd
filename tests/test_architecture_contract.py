"""The core stays Qt-free and installs into one namespace (no bare `ui` or `plugins` packages)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_core_and_plugins_import_without_qt(tmp_path):
    # setup: a finder that makes every Qt binding unimportable
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        class BlockQt:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"PySide6", "PyQt5", "PyQt6", "pyqtgraph", "qtpy", "superqt", "shiboken6"}:
                    raise ImportError(f"Qt is blocked in the core: {name}")
        sys.meta_path.insert(0, BlockQt())
        import workbench, workbench.plugins
        names = [m.name for m in pkgutil.walk_packages(workbench.__path__, "workbench.") if ".ui" not in m.name]
        for name in names:
            importlib.import_module(name)
        from workbench.plugin import discover_plugins
        registry = discover_plugins()
        assert not registry.failures, registry.failures
        print(len(names), sorted(registry.plugins))
        """
    )
    # execute
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    # assert
    assert result.returncode == 0, result.stderr
    assert "magnitude_prune" in result.stdout


def test_ui_and_plugins_are_not_top_level_packages(tmp_path):
    script = "import importlib.util as u; print(u.find_spec('ui'), u.find_spec('plugins'), u.find_spec('workbench.plugins') is not None)"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.split() == ["None", "None", "True"], result.stdout + result.stderr


def test_heavy_libraries_load_lazily(tmp_path):
    script = "import sys, workbench.cli, workbench.plugin, workbench.project; print(sorted(m for m in ('torch', 'onnxruntime') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
