"""Run core work off the UI thread: one job at a time, progress and cooperative cancel.

Workers never touch widgets: results come back through queued signals. A job started while another
runs cancels the running one and starts once it has stopped (the latest request wins).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import torch  # noqa: F401  # imported on the main thread: torch first imported by a worker crashes the exit
from PySide6.QtCore import QObject, QThread, Signal

from workbench.errors import Cancelled, WorkbenchError, describe_exception, is_internal_error
from workbench.plugin import Task


class _Worker(QThread):
    progressed = Signal(float, str)
    measured = Signal(str, float)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str)
    was_cancelled = Signal()

    def __init__(self, fn: Callable[[Task], Any]) -> None:
        super().__init__()
        self.fn = fn
        self.task = Task(
            lambda fraction, message: self.progressed.emit(fraction, message),
            on_metric=lambda name, value: self.measured.emit(name, value),
            on_partial=lambda result: self.partial.emit(result),
        )

    def run(self) -> None:
        try:
            result = self.fn(self.task)
        except Cancelled:
            self.was_cancelled.emit()
        except WorkbenchError as exc:
            self.failed.emit(str(exc), "")
        except Exception as exc:
            # One line for the notice bar; a traceback only for what no input explains (a bug to report).
            details = traceback.format_exc() if is_internal_error(exc) else ""
            self.failed.emit(describe_exception(exc), details)
        else:
            self.succeeded.emit(result)


class JobRunner(QObject):
    started = Signal(str)
    progressed = Signal(float, str)
    metric = Signal(str, float)  # streamed values such as a training loss
    partial = Signal(object)  # finished pieces of a running job, such as a search's trials
    idle = Signal()
    failed = Signal(str, str)  # message, details
    cancelled = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker: _Worker | None = None
        self._label = ""
        self._pending: tuple[str, Callable[[Task], Any], Callable[[Any], None] | None] | None = None

    @property
    def busy(self) -> bool:
        return self._worker is not None

    @property
    def label(self) -> str:
        return self._label

    def run(self, label: str, fn: Callable[[Task], Any], on_done: Callable[[Any], None] | None = None) -> None:
        if self._worker is not None:
            self._pending = (label, fn, on_done)
            self._worker.task.cancel()
            return
        self._start(label, fn, on_done)

    def _start(self, label: str, fn: Callable[[Task], Any], on_done: Callable[[Any], None] | None) -> None:
        worker = _Worker(fn)
        self._worker, self._label = worker, label
        worker.progressed.connect(self.progressed)
        worker.measured.connect(self.metric)
        worker.partial.connect(self.partial)
        worker.succeeded.connect(lambda result: self._finish(worker, on_done, result))
        worker.failed.connect(lambda message, details: self._fail(worker, message, details))
        worker.was_cancelled.connect(lambda: self._cancelled(worker))
        self.started.emit(label)
        worker.start()

    def cancel(self) -> None:
        self._pending = None
        if self._worker is not None:
            self._worker.task.cancel()

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel and join: called when the window closes, so no thread outlives it."""
        self.cancel()
        if self._worker is not None:
            self._worker.wait(timeout_ms)
            self._worker = None

    def _done(self, worker: _Worker) -> bool:
        worker.wait()
        if worker is not self._worker:
            return False
        self._worker = None
        return True

    def _next(self) -> None:
        if self._pending is not None:
            label, fn, on_done = self._pending
            self._pending = None
            self._start(label, fn, on_done)
        else:
            self.idle.emit()

    def _finish(self, worker: _Worker, on_done: Callable[[Any], None] | None, result: Any) -> None:
        if not self._done(worker):
            return
        if on_done is not None and self._pending is None:
            try:
                on_done(result)
            except WorkbenchError as exc:
                self.failed.emit(str(exc), "")
            except Exception as exc:
                self.failed.emit(describe_exception(exc), traceback.format_exc() if is_internal_error(exc) else "")
        self._next()

    def _fail(self, worker: _Worker, message: str, details: str) -> None:
        if self._done(worker):
            self.failed.emit(message, details)
            self._next()

    def _cancelled(self, worker: _Worker) -> None:
        if self._done(worker):
            self.cancelled.emit(self._label)
            self._next()
