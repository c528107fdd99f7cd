"""Datasets, preprocessing and measurements on real models and data."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.datasets import DatasetRef, Preprocessing, load_dataset, mnist_sample_ref
from workbench.errors import DatasetError
from workbench.evaluate import measure, snr_db, zip_size
from workbench.loading import load_model
from workbench.plugin import discover_plugins, run_plugin


def test_builtin_mnist_sample_splits_are_disjoint_and_fixed():
    train, test = load_dataset(mnist_sample_ref("train")), load_dataset(mnist_sample_ref("test"))
    assert train.x.shape == (4000, 1, 28, 28) and test.x.shape == (1000, 1, 28, 28)
    assert set(np.unique(test.y)) == set(range(10))
    assert abs(float(train.x.mean())) < 0.2  # mean/std normalisation applied
    np.testing.assert_array_equal(load_dataset(mnist_sample_ref("test")).x[:5], test.x[:5])


def test_image_folder_with_preprocessing(tmp_path):
    from PIL import Image

    for label, value in (("cat", 40), ("dog", 200)):
        (tmp_path / label).mkdir()
        for i in range(3):
            Image.fromarray(np.full((10, 12, 3), value + i, dtype=np.uint8)).save(tmp_path / label / f"{i}.png")
    ref = DatasetRef(
        kind="folder",
        path=str(tmp_path),
        preprocessing=Preprocessing(resize=(8, 8), mean=(0.5,), std=(0.25,)),
    )
    data = load_dataset(ref)
    assert data.x.shape == (6, 3, 8, 8) and data.class_names == ("cat", "dog")
    assert list(data.y) == [0, 0, 0, 1, 1, 1]
    assert data.x[0, 0, 0, 0] == pytest.approx((40 / 255 - 0.5) / 0.25, rel=1e-5)
    assert "resize 8x8" in ref.describe()


def test_npz_dataset_and_its_errors(tmp_path):
    np.savez(tmp_path / "ok.npz", x=np.ones((5, 16), np.float32), y=np.arange(5))
    data = load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "ok.npz")))
    assert data.x.shape == (5, 16) and data.x.dtype == np.float32 and data.y.tolist() == [0, 1, 2, 3, 4]
    np.savez(tmp_path / "bad.npz", x=np.ones((5, 16)), y=np.arange(4))
    with pytest.raises(DatasetError, match="bad.npz: 'x' has 5 samples but 'y' has 4"):
        load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "bad.npz")))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="junk.npz: not a readable .npz"):
        load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "junk.npz")))


def test_accuracy_fidelity_latency_and_size(demo_onnx):
    baseline = load_model(demo_onnx)
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), baseline, {"sparsity": 0.9})
    data = load_dataset(mnist_sample_ref("test", limit=300))
    base_metrics = measure(baseline, baseline=baseline, dataset=data, runs=10)
    pruned_metrics = measure(pruned, baseline=baseline, dataset=data, runs=10)
    assert base_metrics.accuracy > 0.9 and base_metrics.agreement == 1.0 and base_metrics.outputs_identical
    assert 0.1 < pruned_metrics.accuracy <= 1.0
    assert pruned_metrics.snr_db is not None and pruned_metrics.agreement < 1.0
    assert pruned_metrics.nonzero_params < 0.12 * pruned_metrics.params
    assert pruned_metrics.artifact_bytes == pytest.approx(base_metrics.artifact_bytes, rel=0.01)
    assert pruned_metrics.zip_bytes < base_metrics.zip_bytes / 4
    assert pruned_metrics.latency_ms_median > 0 and pruned_metrics.latency_ms_p90 >= pruned_metrics.latency_ms_median
    assert pruned_metrics.latency_ratio == pytest.approx(
        pruned_metrics.latency_ms_median / pruned_metrics.baseline_latency_ms_median
    )
    assert pruned_metrics.dataset.split == "evaluation" and pruned_metrics.input_shapes == {"input": [1, 1, 28, 28]}
    assert "onnxruntime" in pruned_metrics.host


def test_dataset_that_does_not_fit_the_model(mlp_onnx):
    with pytest.raises(DatasetError, match=r"samples are \[1, 28, 28\] but model input 'x' takes \[16\]"):
        measure(load_model(mlp_onnx), dataset=load_dataset(mnist_sample_ref("test", limit=10)), runs=0)


def test_unlabeled_data_still_gives_fidelity(tmp_path, mlp_onnx):
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(0).standard_normal((20, 16)).astype(np.float32))
    data = load_dataset(DatasetRef(kind="npz", path=str(tmp_path / "x.npz")))
    model = load_model(mlp_onnx)
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), model, {"sparsity": 0.3})
    metrics = measure(pruned, baseline=model, dataset=data, runs=0)
    assert metrics.accuracy is None and 0.0 <= metrics.agreement <= 1.0 and metrics.snr_db > 0


def test_snr_and_zip_helpers():
    ref = np.ones(100, np.float32)
    assert snr_db(ref, ref) is None
    assert snr_db(ref, ref * 1.1) == pytest.approx(20.0, abs=0.01)
    assert zip_size(b"\0" * 100_000) < 1000 < zip_size(np.random.default_rng(0).bytes(100_000))


def test_layer_latency_shares_cover_the_graph(demo_onnx):
    from workbench.evaluate import layer_latency_shares

    model = load_model(demo_onnx)
    shares = layer_latency_shares(model.onnx_bytes(), model.concrete_shapes(), runs=5)
    node_names = {n.name for n in model.onnx_proto.graph.node}
    assert set(shares) <= node_names and "/0/0.0/Conv" in shares
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["/0/0.0/Conv"] > shares["/1/1.5/Gemm"]  # 117,600 MACs vs 840
