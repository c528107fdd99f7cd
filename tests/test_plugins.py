"""Plugin API: discovery, params, immutability, format conversion, and magnitude pruning itself."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest

from workbench.analysis import analyze
from workbench.errors import Cancelled, PluginError
from workbench.loading import load_model
from workbench.plugin import Plugin, PluginKind, PluginParams, Task, discover_plugins, run_plugin


def test_builtin_plugin_is_registered_through_the_entry_point():
    registry = discover_plugins()
    plugin = registry.get("magnitude_prune")
    assert plugin.kind == PluginKind.PRUNE and plugin.formats == {"torch", "onnx"}
    schema = plugin.schema()["properties"]
    assert schema["sparsity"]["minimum"] == 0.0 and schema["sparsity"]["maximum"] == 0.99
    assert schema["scope"]["enum"] == ["global", "per_layer", "sensitivity"] and schema["sparsity"]["description"]


def test_third_party_plugin_loads_and_broken_one_is_skipped(tmp_path, monkeypatch):
    (tmp_path / "thirdparty_wb.py").write_text(
        "from workbench.plugin import Plugin, PluginKind, PluginParams\n"
        "class Identity(Plugin):\n"
        "    id, title, kind, formats, Params = 'identity', 'Identity', PluginKind.GRAPH, frozenset({'onnx'}), PluginParams\n"
        "    def apply(self, model, params, task):\n"
        "        return model.derive(onnx_proto=model.copy_onnx())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    group = "workbench.plugins"
    registry = discover_plugins(
        [
            EntryPoint("identity", "thirdparty_wb:Identity", group),
            EntryPoint("broken", "no_such_module_xyz:Thing", group),
            EntryPoint("notaplugin", "os.path:join", group),
        ]
    )
    assert sorted(registry.plugins) == ["identity"]
    assert {f.name for f in registry.failures} == {"broken", "notaplugin"}
    assert "ModuleNotFoundError" in next(f.reason for f in registry.failures if f.name == "broken")
    sys.modules.pop("thirdparty_wb", None)


def test_invalid_params_name_the_field():
    plugin = discover_plugins().get("magnitude_prune")
    with pytest.raises(PluginError, match="sparsity: Input should be less than or equal to 0.99"):
        plugin.parse_params({"sparsity": 1.5})
    with pytest.raises(PluginError, match="sparsity_typo"):
        plugin.parse_params({"sparsity_typo": 0.5})


def _weights(model):
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.to_onnx().graph.initializer}


def test_global_pruning_on_onnx_hits_the_target_and_leaves_input_alone(mlp_onnx):
    model = load_model(mlp_onnx)
    before = {k: v.copy() for k, v in _weights(model).items()}
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), model, {"sparsity": 0.75})
    after = _weights(pruned)
    prunable = ["w0", "w1"]
    zeros = sum(int((after[n] == 0).sum()) for n in prunable)
    total = sum(after[n].size for n in prunable)
    assert zeros == round(0.75 * total)
    # the kept weights are exactly the largest ones, unchanged
    threshold = np.sort(np.concatenate([np.abs(before[n]).ravel() for n in prunable]))[zeros - 1]
    for name in prunable:
        kept = np.abs(before[name]) > threshold
        np.testing.assert_array_equal(after[name][kept], before[name][kept])
    np.testing.assert_array_equal(after["b0"], before["b0"])  # biases stay dense
    for name, value in _weights(model).items():
        np.testing.assert_array_equal(value, before[name])  # the input model is untouched


def test_per_layer_pruning_and_overrides_on_torch(demo_checkpoint):
    model = load_model(demo_checkpoint)
    params = {"sparsity": 0.5, "scope": "per_layer", "overrides": {"0.0.weight": 0.0, "1.5.weight": 0.9}}
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), model, params)
    assert pruned.has_torch_lineage and pruned.arch == model.arch
    state = pruned.torch_module.state_dict()
    assert float((state["0.0.weight"] == 0).float().mean()) == 0.0  # excluded
    assert float((state["0.3.weight"] == 0).float().mean()) == pytest.approx(0.5, abs=0.01)
    assert float((state["1.5.weight"] == 0).float().mean()) == pytest.approx(0.9, abs=0.01)
    assert int((model.torch_module.state_dict()["0.3.weight"] == 0).sum()) == 0


def test_unknown_override_is_a_clear_error(mlp_onnx):
    with pytest.raises(PluginError, match="overrides name unknown layer"):
        run_plugin(discover_plugins().get("magnitude_prune"), load_model(mlp_onnx), {"overrides": {"nope": 0.5}})


def test_pruning_a_paddle_model_with_constant_weights(paddle_cls_onnx):
    model = load_model(paddle_cls_onnx, input_shapes="1,3,48,192")
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), model, {"sparsity": 0.5})
    assert analyze(pruned).sparsity > 0.45
    assert analyze(model).sparsity < 0.01


class _OnnxOnly(Plugin):
    id, title, kind, formats, Params = (
        "onnx_only",
        "ONNX only",
        PluginKind.GRAPH,
        frozenset({"onnx"}),
        PluginParams,
    )

    def apply(self, model, params, task):
        assert model.onnx_proto is not None
        return model.derive(onnx_proto=model.copy_onnx())


def test_onnx_only_plugin_gets_an_export_of_a_torch_model(demo_checkpoint):
    model = load_model(demo_checkpoint)
    result = run_plugin(_OnnxOnly(), model, {})
    assert result.formats == {"onnx"}
    assert analyze(result).params == analyze(model).params


class _Mutator(Plugin):
    id, title, kind, formats, Params = "mutator", "Bad", PluginKind.GRAPH, frozenset({"onnx"}), PluginParams

    def apply(self, model, params, task):
        model.onnx_proto.graph.initializer[0].raw_data = b"\0" * len(model.onnx_proto.graph.initializer[0].raw_data)
        return model


def test_a_plugin_that_mutates_its_input_is_caught(mlp_onnx):
    with pytest.raises(PluginError, match="modified its input"):
        run_plugin(_Mutator(), load_model(mlp_onnx), {})


def test_exporter_fallback_reaches_dynamo_when_torchscript_fails(demo_checkpoint, monkeypatch):
    import torch

    from workbench.model import export_torch_to_onnx

    model = load_model(demo_checkpoint)
    real_export = torch.onnx.export

    def torchscript_broken(*args, dynamo=True, **kwargs):
        if not dynamo:
            raise RuntimeError("simulated TorchScript exporter failure")
        return real_export(*args, dynamo=dynamo, **kwargs)

    monkeypatch.setattr(torch.onnx, "export", torchscript_broken)
    proto = export_torch_to_onnx(model.torch_module, model.inputs, model.concrete_shapes())
    weights = {i.name for i in proto.graph.initializer}
    assert not [vi for vi in proto.graph.value_info if vi.name in weights]  # quantizer-safe
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        expected = model.torch_module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], expected, atol=1e-4)


def test_task_reports_and_cancels():
    seen = []
    task = Task(lambda f, m: seen.append((round(f, 2), m)))
    task.sub(0.5, 1.0).report(0.5, "half of the second half")
    assert seen == [(0.75, "half of the second half")]
    task.cancel()
    with pytest.raises(Cancelled):
        task.sub(0.0, 0.5).report(0.1)


def test_two_of_four_sparsity_pattern(demo_checkpoint):
    model = load_model(demo_checkpoint)
    pruned = run_plugin(discover_plugins().get("magnitude_prune"), model, {"pattern": "2:4"})
    fc1 = pruned.torch_module.state_dict()["1.1.weight"].numpy()  # [120, 400]: 100 groups of 4 per row
    groups = (fc1 != 0).reshape(120, 100, 4).sum(axis=-1)
    assert (groups == 2).all()
    original = model.torch_module.state_dict()["1.1.weight"].numpy().reshape(120, 100, 4)
    kept = np.abs(fc1.reshape(120, 100, 4))
    assert np.all(kept.max(axis=-1) == np.abs(original).max(axis=-1))  # the largest always survives


def test_four_of_eight_on_onnx_keeps_a_dense_remainder():
    from workbench.plugins.magnitude_prune import n_of_m_mask

    mask = n_of_m_mask(np.arange(1, 21, dtype=np.float32).reshape(2, 10), 4, 8)
    assert mask[:, :8].sum() == 8 and mask[:, 8:].all()
    assert mask[0, 4:8].all() and not mask[0, :4].any()


def test_iterative_pruning_with_fine_tuning_recovers_accuracy(demo_checkpoint):
    from workbench.datasets import load_dataset, mnist_sample_ref
    from workbench.evaluate import measure

    model = load_model(demo_checkpoint)
    train_data, test_data = load_dataset(mnist_sample_ref("train")), load_dataset(mnist_sample_ref("test", limit=500))
    prune = discover_plugins().get("magnitude_prune")
    one_shot = run_plugin(prune, model, {"sparsity": 0.9})
    tuned = run_plugin(prune, model, {"sparsity": 0.9, "iterations": 3, "fine_tune_epochs": 2}, Task(train=train_data))
    assert analyze(tuned).sparsity == pytest.approx(analyze(one_shot).sparsity, abs=0.01)  # zeros stay zero
    acc_one_shot = measure(one_shot, dataset=test_data, runs=0).accuracy
    acc_tuned = measure(tuned, dataset=test_data, runs=0).accuracy
    assert acc_tuned > 0.93 and acc_tuned > acc_one_shot + 0.03


def test_fine_tuning_without_labels_is_refused(demo_checkpoint):
    with pytest.raises(PluginError, match="fine-tuning between pruning steps needs the train split"):
        run_plugin(discover_plugins().get("magnitude_prune"), load_model(demo_checkpoint), {"fine_tune_epochs": 1})
