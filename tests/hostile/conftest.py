"""The hostile-input harness: run the real CLI (or the window) in a child process on a generated file.

Every case checks the same things: the exit code, one line on stderr that names the file, no
traceback, no payload marker, the input left as it was, nothing left behind, and the child's peak
resident memory (from ``wait4``, which covers the child's own children too, such as the shape probe).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

RSS_LIMIT_MB = 1024  # the goal: any bad input of <= 1 MB stays under 1 GB


@dataclass
class Run:
    args: list[str]
    code: int
    stdout: str
    stderr: str
    peak_rss_mb: float
    seconds: float

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def describe(self) -> str:
        return (
            f"workbench {' '.join(self.args)} -> exit {self.code}, {self.peak_rss_mb:.0f} MB, {self.seconds:.1f}s\n"
            f"stdout: {self.stdout[-800:]}\nstderr: {self.stderr[-1500:]}"
        )


@dataclass
class Sandbox:
    """Private config, cache and projects folders for the child, and a folder for the case's files."""

    root: Path

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def projects(self) -> Path:
        return self.root / "projects"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "WORKBENCH_CONFIG_DIR": str(self.root / "config"),
                "WORKBENCH_CACHE_DIR": str(self.root / "cache"),
                "WORKBENCH_PROJECTS_DIR": str(self.projects),
                "QT_QPA_PLATFORM": "offscreen",
                "QTWEBENGINE_DISABLE_SANDBOX": "1",
                "PYTHONDONTWRITEBYTECODE": "1",
            }
        )
        return env

    def cli(self, *args: str | Path, timeout: float = 180) -> Run:
        command = [sys.executable, "-m", "workbench.cli", *map(str, args)]
        return self._spawn(command, [str(a) for a in args], timeout)

    def python(self, code: str, timeout: float = 180) -> Run:
        return self._spawn([sys.executable, "-c", code], ["<python>"], timeout)

    def _spawn(self, command: list[str], shown: list[str], timeout: float) -> Run:
        import subprocess
        import threading
        import time

        started = time.monotonic()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.root,
            env=self.env(),
        )
        # Read both pipes on threads (a full pipe would block the child) while wait4 reaps it.
        out: dict[str, bytes] = {}
        readers = [
            threading.Thread(target=lambda: out.__setitem__("o", process.stdout.read())),
            threading.Thread(target=lambda: out.__setitem__("e", process.stderr.read())),
        ]
        for reader in readers:
            reader.start()
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                for reader in readers:
                    reader.join()
                pytest.fail(f"HANG: {' '.join(shown)} did not finish in {timeout:.0f}s")
            time.sleep(0.02)
        for reader in readers:
            reader.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        return Run(
            shown,
            process.returncode,
            out.get("o", b"").decode("utf-8", "replace"),
            out.get("e", b"").decode("utf-8", "replace"),
            usage.ru_maxrss / 1024,
            time.monotonic() - started,
        )

    def snapshot(self) -> Callable[[], None]:
        """Remember the case's files now; the returned check asserts they are as they were, that nothing
        was added beside them, and that no project, staging folder or temp file was left behind."""
        before = tree_state(self.files)

        def check() -> None:
            after = tree_state(self.files)
            assert after == before, f"input files changed or new files appeared: {sorted(set(after) ^ set(before))}"
            leftovers = list(self.projects.rglob("*")) if self.projects.exists() else []
            assert not leftovers, f"left behind in the projects folder: {leftovers[:5]}"
            strays = [p for p in self.root.rglob("*") if p.name.endswith(".tmp") or "-creating-" in p.name]
            assert not strays, f"temporary files left behind: {strays[:5]}"

        return check

    @staticmethod
    def save_graph(
        path: Path, nodes, inputs, outputs, initializers=(), *, opset: int = 17, ir_version: int = 8, external=None
    ) -> Path:
        """An ONNX file built in code (IR 8: one every onnxruntime here reads), optionally with external data."""
        import onnx
        from onnx import helper

        graph = helper.make_graph(nodes, path.stem, inputs, outputs, list(initializers))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = ir_version
        path.parent.mkdir(parents=True, exist_ok=True)
        if external:
            onnx.save(model, path, save_as_external_data=True, location=external, size_threshold=0)
        else:
            onnx.save(model, path)
        return path

    def tiny_onnx(self, path: Path, external: str | None = None) -> Path:
        """x [N, 4] -> MatMul -> y [N, 3]: the smallest real model a command can open and run."""
        import numpy as np
        from onnx import TensorProto, helper, numpy_helper

        return self.save_graph(
            path,
            [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
            [numpy_helper.from_array(np.ones((4, 3), np.float32), "w")],
            external=external,
        )

    def prove_live(self, code: str, marker: Path) -> None:
        """Run an unsafe loader on a payload and check it writes ``marker`` (else a test proves nothing)."""
        control = self.python(code)
        assert marker.exists(), f"the payload is not live, so this test would prove nothing\n{control.describe()}"
        marker.unlink()

    @staticmethod
    def assert_refused(run: Run, named: Path | str, *, reason: str | None = None) -> None:
        """A clean refusal: non-zero exit, one stderr line naming the file, no traceback, bounded memory."""
        assert run.code != 0, run.describe()
        assert run.code != 3, "reported as an internal error\n" + run.describe()
        assert len(run.lines) == 1, "expected exactly one line on stderr\n" + run.describe()
        assert "Traceback" not in run.stderr + run.stdout, run.describe()
        name = str(named)
        named_it = name in run.lines[0] or Path(name).name in run.lines[0]
        assert named_it, f"the line does not name {name}\n{run.describe()}"
        if reason is not None:
            assert reason in run.lines[0], f"expected '{reason}'\n{run.describe()}"
        assert run.peak_rss_mb < RSS_LIMIT_MB, run.describe()

    @staticmethod
    def assert_succeeded(run: Run) -> None:
        assert run.code == 0, run.describe()
        assert "Traceback" not in run.stderr + run.stdout, run.describe()
        assert run.peak_rss_mb < RSS_LIMIT_MB, run.describe()

    def open_in_window(self, *paths: Path, timeout: float = 300) -> tuple[Run, list[dict]]:
        """Open each file through the window's open step (offscreen), as a user dropping it would."""
        import json

        code = WINDOW_OPEN.replace("sys.argv[1:]", repr([str(p) for p in paths]))
        run = self.python(code, timeout=timeout)
        assert run.code == 0, run.describe()
        return run, json.loads(run.stdout.strip().splitlines()[-1])


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path)
    box.files.mkdir()
    return box


def tree_state(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 (or the kind of non-regular file) of everything under ``folder``."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink() or not path.exists():
            state[key] = "link"
        elif path.is_fifo():
            state[key] = "fifo"
        elif path.is_file():
            big = path.stat().st_size >= 64 << 20
            state[key] = f"big:{path.stat().st_size}" if big else hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            state[key] = "dir"
    return state


WINDOW_OPEN = r"""
import sys, json
from pathlib import Path
from PySide6.QtWidgets import QApplication
app = QApplication([])
from workbench.ui.main_window import MainWindow
window = MainWindow(use_webengine=False)
results = []
for name in sys.argv[1:]:
    window.notice.hide()
    window.open_path(Path(name))
    for _ in range(6000):  # up to 60 s per file
        app.processEvents()
        if not window.jobs.busy:
            break
        import time; time.sleep(0.01)
    else:
        results.append({"file": name, "hung": True})
        break
    app.processEvents()
    results.append({
        "file": name,
        "notice": "" if window.notice.isHidden() else window.notice.message.text(),
        "details": window.notice.details.toPlainText(),
        "opened": window.ws.project is not None,
    })
window.close()
print(json.dumps(results))
"""
