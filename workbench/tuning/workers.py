"""Where trials run: worker processes on this machine (the default), or tasks on an existing Ray cluster.

Both take ``(key, folder, chain, goal)`` and hand back ``(key, result)`` as trials finish; both stop at
once when asked (a running trial is killed: its variant is never half-stored, since a project stores a
step only when it is complete). Ray is the engine there: no scheduling happens here.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from typing import Any, Protocol

from workbench.errors import WorkbenchError
from workbench.tuning.trial import run_trial


class Workers(Protocol):
    capacity: int

    def submit(self, key: int, folder: str, chain: list[dict[str, Any]], goal: dict[str, Any]) -> None: ...

    def finished(self, timeout: float) -> list[tuple[int, dict[str, Any]]]: ...

    def running(self) -> int: ...

    def stop(self) -> None: ...


def _serve(jobs: Any, results: Any, threads: int) -> None:
    """A worker process: one trial at a time until it gets None, or its parent is gone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    import torch

    from workbench.cli import _quiet_libraries

    _quiet_libraries(debug=False)
    torch.set_num_threads(threads)
    parent = multiprocessing.parent_process()
    while True:
        try:
            job = jobs.get(timeout=1.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return  # the driver was killed: no one would read the result
            continue
        if job is None:
            return
        key, folder, chain, goal = job
        results.put(("started", key, os.getpid()))
        results.put(("done", key, run_trial(folder, chain, goal)))


class LocalWorkers:
    """``capacity`` long-lived worker processes (spawned: torch and fork do not mix), so each pays for
    importing torch once rather than per trial. A worker that dies fails the trial it held and is replaced."""

    def __init__(self, capacity: int = 1, threads: int | None = None) -> None:
        self._context = multiprocessing.get_context("spawn")
        self.capacity = capacity
        self._jobs = self._context.Queue()
        self._results = self._context.Queue()
        self._threads = threads or max(1, (os.cpu_count() or 1) // capacity)
        self._processes = [self._spawn() for _ in range(capacity)]
        self._pending: set[int] = set()
        self._holding: dict[int, int] = {}  # worker pid -> the trial it is running

    def _spawn(self) -> Any:
        process = self._context.Process(target=_serve, args=(self._jobs, self._results, self._threads), daemon=True)
        process.start()
        return process

    def submit(self, key: int, folder: str, chain: list[dict[str, Any]], goal: dict[str, Any]) -> None:
        self._pending.add(key)
        self._jobs.put((key, folder, chain, goal))

    def finished(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        messages = []
        try:
            messages.append(self._results.get(timeout=timeout))
            while True:
                messages.append(self._results.get_nowait())
        except queue.Empty:
            pass
        done = []
        for kind, key, payload in messages:
            if kind == "started":
                self._holding[payload] = key
            else:
                self._holding = {pid: k for pid, k in self._holding.items() if k != key}
                self._pending.discard(key)
                done.append((key, payload))
        for index, process in enumerate(self._processes):
            if process.is_alive():
                continue
            lost = self._holding.pop(process.pid, None)  # out of memory, a crash in native code
            if lost is not None and lost in self._pending:
                self._pending.discard(lost)
                done.append(
                    (lost, {"error": f"the worker process died while running this trial (exit {process.exitcode})"})
                )
            self._processes[index] = self._spawn()
        return done

    def running(self) -> int:
        return len(self._pending)

    def stop(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
        for process in self._processes:
            process.join(timeout=10)
        for channel in (self._jobs, self._results):
            channel.close()
            channel.cancel_join_thread()


class RayWorkers:
    """Trials as Ray tasks on the cluster at ``address`` (``ray start --head`` made it). Every node needs the
    workbench installed and the project folder at the same path (a shared filesystem)."""

    def __init__(self, address: str, capacity: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise WorkbenchError('Ray is not installed here: pip install -e ".[tune]"') from None
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, logging_level="ERROR")
        except Exception as exc:
            raise WorkbenchError(
                f"cannot reach the Ray cluster at {address} ({str(exc).splitlines()[0][:160]})"
            ) from None
        self._ray = ray
        self.capacity = capacity or max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._task = ray.remote(num_cpus=1, max_retries=0)(run_trial)
        self._refs: dict[Any, int] = {}

    def submit(self, key: int, folder: str, chain: list[dict[str, Any]], goal: dict[str, Any]) -> None:
        self._refs[self._task.remote(folder, chain, goal)] = key

    def finished(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        if not self._refs:
            return []
        ready, _ = self._ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
        done = []
        for ref in ready:
            key = self._refs.pop(ref)
            try:
                done.append((key, self._ray.get(ref)))
            except Exception as exc:  # the task's worker died or the cluster lost it
                done.append((key, {"error": f"Ray could not run the trial ({str(exc).splitlines()[0][:200]})"}))
        return done

    def running(self) -> int:
        return len(self._refs)

    def stop(self) -> None:
        for ref in list(self._refs):
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        self._ray.shutdown()
