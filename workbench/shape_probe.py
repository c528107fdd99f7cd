"""Shapes static inference cannot settle, found by running the graph once, in a capped child process.

A graph may compute its own sizes from data (``ConstantOfShape``, ``Expand``, ``Tile``, ``Loop``), so
running it can ask for gigabytes or never end. The run happens in a separate interpreter with an
address-space limit and a time limit: a hostile or broken model costs the child, never the
workbench, and the caller learns why the probe stopped.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workbench.limits import MIB, human_bytes, memory_budget

PROBE_TIMEOUT_S = 120.0
_INTERPRETER_BYTES = 384 * MIB  # Python, numpy and onnxruntime mapped into the child's address space


@dataclass
class ProbeResult:
    shapes: dict[str, tuple[str, tuple[int, ...]]] = field(default_factory=dict)  # name -> (dtype, shape)
    failure: str | None = None  # why the probe gave no shapes
    over_budget: bool = False  # it stopped at the memory or time cap: running this model here is unsafe


def probe_shapes(
    model_bytes: bytes,
    input_shapes: Mapping[str, Sequence[int]],
    names: Sequence[str],
    *,
    budget: int | None = None,
    timeout: float = PROBE_TIMEOUT_S,
    constants: Mapping[str, tuple[str, Sequence[int], float]] | None = None,
) -> ProbeResult:
    """Run the model once on zeros at ``input_shapes`` (declared ``constants`` -- name: (dtype, shape,
    value) -- as declared, so an ``If`` on a sample rate takes its real branch) and return the shapes
    of ``names``."""
    budget = memory_budget(len(model_bytes)) if budget is None else budget
    with tempfile.TemporaryDirectory(prefix="workbench-probe-") as tmp:
        model_path = Path(tmp) / "model.onnx"
        model_path.write_bytes(model_bytes)
        request = {
            "inputs": {k: list(map(int, v)) for k, v in input_shapes.items()},
            "outputs": list(names),
            "constants": {k: [str(v[0]), list(map(int, v[1])), float(v[2])] for k, v in (constants or {}).items()},
            "address_space_limit": _INTERPRETER_BYTES + 2 * len(model_bytes) + budget,
        }
        (Path(tmp) / "request.json").write_text(json.dumps(request), encoding="utf-8")
        try:
            done = subprocess.run(
                [sys.executable, "-m", "workbench.shape_probe", tmp],
                capture_output=True,
                timeout=timeout,
                env=_child_env(),
                check=False,
            )
        except subprocess.TimeoutExpired:
            return ProbeResult(failure=f"a test run took longer than {timeout:.0f} s and was stopped", over_budget=True)
        except OSError as exc:
            return ProbeResult(failure=f"could not start the test run ({exc.strerror or exc})")
        if done.returncode == 0:
            try:
                found = json.loads(done.stdout.decode("utf-8").strip().splitlines()[-1])
                return ProbeResult({k: (str(v[0]), tuple(int(d) for d in v[1])) for k, v in found.items()})
            except (ValueError, TypeError, IndexError, UnicodeDecodeError):
                return ProbeResult(failure="the test run returned nothing readable")
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = message[-1][:160] if message else f"exit status {done.returncode}"
        if done.returncode == _OUT_OF_MEMORY or done.returncode < 0 or "alloc" in reason.lower():
            return ProbeResult(
                failure=f"a test run at these input shapes needs more than {human_bytes(budget)} of memory",
                over_budget=True,
            )
        return ProbeResult(failure=f"a test run failed: {reason}")


_OUT_OF_MEMORY = 86


def _limit_self(limit: int) -> None:
    """The child caps itself before importing anything big (a preexec_fn is unsafe in threaded parents)."""
    try:
        import resource
    except ImportError:  # not POSIX: the time limit still applies
        return
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"})
    return env


def _main(folder: str) -> int:
    """Child side: read the request, run once, print ``{name: [dtype, shape]}`` as JSON."""
    request = json.loads((Path(folder) / "request.json").read_text(encoding="utf-8"))
    _limit_self(int(request["address_space_limit"]))
    import numpy as np
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 4
    try:
        with contextlib.redirect_stdout(sys.stderr):  # onnxruntime prints load failures; stdout carries JSON
            session = ort.InferenceSession(
                str(Path(folder) / "model.onnx"), options, providers=["CPUExecutionProvider"]
            )
        constants = request.get("constants", {})
        feeds = {
            i.name: np.full(constants[i.name][1], constants[i.name][2], dtype=constants[i.name][0])
            if i.name in constants
            else zeros_for(i.type, request["inputs"].get(i.name, ()))
            for i in session.get_inputs()
        }
        values = session.run(request["outputs"], feeds)
    except MemoryError:
        return _OUT_OF_MEMORY
    except Exception as exc:
        text = str(exc).strip().splitlines()
        print(text[0][:300] if text else type(exc).__name__, file=sys.stderr)
        if "alloc" in str(exc).lower():
            return _OUT_OF_MEMORY
        return 1
    out = {
        name: [np.asarray(v).dtype.name, list(np.asarray(v).shape)]
        for name, v in zip(request["outputs"], values, strict=True)
    }
    sys.stdout.write(json.dumps(out))
    return 0


def zeros_for(type_name: str, shape: Sequence[int]):
    """A zero (or empty-string) feed for an onnxruntime input type such as ``tensor(float16)``."""
    import numpy as np

    from workbench.runtime import numpy_dtype

    dtype = numpy_dtype(type_name)
    return np.full(tuple(shape), "", dtype=object) if dtype is None else np.zeros(tuple(shape), dtype=dtype)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1]))
