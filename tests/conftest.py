"""Shared fixtures: tiny real models built in code, the trained demo model, and isolated user dirs."""

from __future__ import annotations

import glob
import itertools
import os
import sysconfig
from pathlib import Path

import numpy as np
import pytest

# The README's plain `pytest` must work with no screen: Qt renders offscreen; QtWebEngine runs as root.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests never read or write the user's real settings; the demo checkpoint is shared per session.
    monkeypatch.setenv("WORKBENCH_CONFIG_DIR", str(tmp_path_factory.mktemp("config")))
    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(_session_cache(tmp_path_factory)))


_CACHE: list[Path] = []


def _session_cache(factory: pytest.TempPathFactory) -> Path:
    if not _CACHE:
        _CACHE.append(factory.mktemp("cache"))
    return _CACHE[0]


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LeNet-5 trained for real on the MNIST sample (a few seconds), saved as a weights-only checkpoint."""
    from workbench.demo import train_demo_model

    return train_demo_model(tmp_path_factory.mktemp("demo") / "lenet5.pt")


@pytest.fixture(scope="session")
def demo_onnx(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.loading import load_model

    path = tmp_path_factory.mktemp("demo_onnx") / "lenet5.onnx"
    path.write_bytes(load_model(demo_checkpoint, remember_shapes=False).onnx_bytes())
    return path


def make_mlp_onnx(path: Path, sizes: tuple[int, ...] = (16, 32, 10), seed: int = 0, batch: int | str = "N") -> Path:
    """A small Gemm/Relu network written with onnx.helper: a real ONNX graph with known weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = "x"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = rng.standard_normal((fan_out, fan_in)).astype(np.float32)
        b = rng.standard_normal(fan_out).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        out = f"h{i}" if i < len(sizes) - 2 else "y"
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [out], name=f"fc{i}", transB=1))
        if out != "y":
            nodes.append(helper.make_node("Relu", [out], [f"{out}_relu"], name=f"relu{i}"))
            current = f"{out}_relu"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, sizes[-1]])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture
def mlp_onnx(tmp_path: Path) -> Path:
    return make_mlp_onnx(tmp_path / "mlp.onnx")


@pytest.fixture
def fixed_batch_mlp_onnx(tmp_path: Path) -> Path:
    """The MLP at batch 1: it opens without asking for a shape."""
    return make_mlp_onnx(tmp_path / "mlp1.onnx", batch=1)


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


@pytest.fixture(scope="session")
def paddle_cls_onnx() -> Path:
    """PaddleOCR's text-direction classifier (MobileNetV3, opset 11, dims -1/?) shipped by rapidocr."""
    found = glob.glob(str(_site_packages() / "rapidocr_onnxruntime" / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"))
    if not found:
        pytest.fail("rapidocr_onnxruntime is a test dependency: pip install -e '.[test]'")
    return Path(found[0])


@pytest.fixture(scope="session")
def onnx_light_models() -> list[Path]:
    """Model-zoo architectures (caffe2 exporter, opset 9, weights as graph inputs) shipped by onnx."""
    found = sorted((_site_packages() / "onnx" / "backend" / "test" / "data" / "light").glob("*.onnx"))
    assert found, "the onnx package no longer ships its light models"
    return found
