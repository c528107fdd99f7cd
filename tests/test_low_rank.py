"""Low-rank SVD: exact at full energy, fewer weights at lower settings, and measured accuracy."""

from __future__ import annotations

import pytest
from workbench.plugins.low_rank import LowRankParams, choose_rank

from workbench.analysis import analyze
from workbench.datasets import load_dataset, mnist_sample_ref, random_inputs_ref
from workbench.errors import PluginError
from workbench.evaluate import measure
from workbench.loading import load_model
from workbench.plugin import discover_plugins, run_plugin


def test_rank_choice_by_energy_and_by_ratio():
    import numpy as np

    singular = np.array([10.0, 5.0, 1.0, 0.1])
    assert choose_rank(singular, 100, 100, LowRankParams(criterion="energy", energy=0.995)) == 3
    assert choose_rank(singular, 100, 100, LowRankParams(criterion="rank_ratio", rank_ratio=0.5)) == 2
    assert choose_rank(singular, 4, 4, LowRankParams(criterion="rank_ratio", rank_ratio=1.0)) is None  # saves nothing


def test_lenet_factorized_is_smaller_and_still_accurate(demo_checkpoint):
    model = load_model(demo_checkpoint)
    baseline = model.derive(onnx_proto=model.to_onnx())
    low = run_plugin(discover_plugins().get("low_rank"), model, {"criterion": "rank_ratio", "rank_ratio": 0.25})
    ops = [n.op_type for n in low.to_onnx().graph.node]
    assert ops.count("MatMul") >= 2 and analyze(low).params < 0.4 * analyze(baseline).params
    metrics = measure(low, baseline=baseline, dataset=load_dataset(mnist_sample_ref("test", limit=300)), runs=0)
    assert metrics.agreement > 0.85 and metrics.accuracy > 0.85  # measured: ~0.92 at a third of the weights


def test_conv_factorization_on_a_third_party_model(paddle_cls_onnx):
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192", remember_shapes=False)
    low = run_plugin(
        discover_plugins().get("low_rank"), model, {"criterion": "rank_ratio", "rank_ratio": 0.3, "min_params": 4096}
    )
    assert sum(n.name.endswith("_lr2") for n in low.to_onnx().graph.node) >= 1
    assert analyze(low).params < analyze(model).params
    data = load_dataset(random_inputs_ref((1, 3, 48, 192), 8))
    snr = measure(low, baseline=model, dataset=data, runs=0).snr_db
    assert snr is not None and snr > 0  # measured and reported, not assumed


def test_nothing_worth_factorizing_is_a_clear_error(mlp_onnx):
    with pytest.raises(PluginError, match="no layer was worth factorizing"):
        run_plugin(discover_plugins().get("low_rank"), load_model(mlp_onnx), {"min_params": 10**6})
