"""Unstructured magnitude pruning: zero the smallest weights, globally or layer by layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, field_validator

from workbench.errors import PluginError
from workbench.onnx_prep import constants_to_initializers
from workbench.plugin import Plugin, PluginKind, PluginParams, Task
from workbench.weight_codec import weight_tensors

if TYPE_CHECKING:
    import onnx

    from workbench.model import Model

# Weight inputs (by op and input index) that pruning may zero; biases and norms stay dense.
_PRUNABLE_INPUTS = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


class MagnitudePruneParams(PluginParams):
    sparsity: float = Field(
        0.5,
        ge=0.0,
        le=0.99,
        description="Fraction of weights set to zero (0 keeps all, 0.99 keeps 1 %).",
        json_schema_extra={"search": [0.5, 0.98], "shrinks": "up"},
    )
    scope: Literal["global", "per_layer", "sensitivity"] = Field(
        "global",
        description="global: one magnitude threshold across all layers (small layers may lose less); "
        "per_layer: every layer loses the same fraction; sensitivity: per-layer ratios that reach the target "
        "where a sweep on the calibration split says pruning costs least",
    )
    pattern: Literal["unstructured", "2:4", "4:8"] = Field(
        "unstructured",
        # N:M fixes sparsity at 50 % for sparse tensor cores: a GPU speed pattern, not a size one for the edge
        json_schema_extra={"search": ["unstructured"]},
        description="unstructured: any weight may go; N:M keeps the N largest of every M consecutive input "
        "weights (50 % sparsity that sparse tensor cores accelerate); sparsity and scope are then ignored",
    )
    iterations: int = Field(
        1,
        ge=1,
        le=20,
        description="reach the target in this many steps (torch models; with fine-tuning)",
        json_schema_extra={"search": [1, 8], "recovers": "up"},
    )
    schedule: Literal["linear", "cubic"] = Field(
        "linear",
        description="how sparsity grows over the steps: linear, or Zhu & Gupta's cubic s·(1-(1-t/n)³), which "
        "prunes fast while weights are redundant and slowly near the target",
    )
    fine_tune_epochs: int = Field(
        0,
        ge=0,
        le=20,
        description="epochs of fine-tuning on labelled data after each step (torch models); pruned weights stay zero",
        json_schema_extra={"search": [0, 3], "recovers": "up"},
    )
    final_fine_tune_epochs: int = Field(
        0,
        ge=0,
        le=50,
        description="extra epochs after the last step",
        json_schema_extra={"search": [0, 12], "recovers": "up"},
    )
    fine_tune_lr: float = Field(
        5e-4,
        ge=1e-5,
        le=0.1,
        description="peak learning rate of each fine-tuning (Adam)",
        json_schema_extra={"search": [1e-4, 1e-2]},
    )
    fine_tune_batch: Literal[16, 32, 64, 128] = Field(
        64, description="fine-tuning batch size", json_schema_extra={"tune": False}
    )
    distill: bool = Field(
        False,
        description="fine-tune towards the unpruned model's outputs as well as the labels (distillation)",
        json_schema_extra={"recovers": "up"},
    )
    overrides: dict[str, float] = Field(
        default_factory=dict,
        description="Per-layer sparsity by layer (weight) name, taking precedence; 0 excludes a layer.",
    )

    @field_validator("overrides")
    @classmethod
    def _overrides_in_range(cls, value: dict[str, float]) -> dict[str, float]:
        for name, ratio in value.items():
            if not 0.0 <= ratio <= 0.99:
                raise ValueError(f"override for '{name}' must be within 0..0.99, got {ratio}")
        return value


class MagnitudePrune(Plugin):
    id = "magnitude_prune"
    title = "Magnitude pruning"
    kind = PluginKind.PRUNE
    formats = frozenset({"torch", "onnx"})
    Params = MagnitudePruneParams
    description = "Zero the weights of smallest magnitude in Conv/Linear (Gemm, MatMul) layers."

    def apply(self, model: Model, params: MagnitudePruneParams, task: Task) -> Model:  # type: ignore[override]
        if model.torch_module is not None and _is_eager(model.torch_module):
            return self._apply_torch(model, params, task)
        return self._apply_onnx(model, params, task)  # compiled torch graphs (TorchScript, export) too

    def _apply_torch(self, model: Model, params: MagnitudePruneParams, task: Task) -> Model:
        import torch
        from torch import nn

        module = model.copy_torch_module()
        targets = {
            f"{name}.weight": leaf.weight
            for name, leaf in module.named_modules()
            if isinstance(leaf, (nn.modules.conv._ConvNd, nn.Linear)) and getattr(leaf, "weight", None) is not None
        }
        tuning = params.fine_tune_epochs + params.final_fine_tune_epochs > 0
        data = task.data("train", "fine-tuning between pruning steps", labels=True) if tuning else None
        teacher = _logits(module, data.x) if data is not None and params.distill else None
        params = _with_sensitivity_ratios(model, params, task, set(targets))
        for step in range(1, params.iterations + 1):
            fraction = schedule_fraction(step, params.iterations, params.schedule)  # of the target, overrides too
            scaled = params.model_copy(
                update={
                    "sparsity": params.sparsity * fraction,
                    "iterations": 1,
                    "fine_tune_epochs": 0,
                    "scope": "global" if params.scope == "sensitivity" else params.scope,
                    "overrides": {k: v * fraction for k, v in params.overrides.items()},
                }
            )
            arrays = {name: w.detach().numpy() for name, w in targets.items()}
            masks = magnitude_masks(
                arrays, scaled, task.sub((step - 1) / params.iterations, (step - 0.5) / params.iterations)
            )
            with torch.no_grad():
                for name, mask in masks.items():
                    targets[name].mul_(torch.from_numpy(mask.astype(np.float32)))
            epochs = params.fine_tune_epochs + (params.final_fine_tune_epochs if step == params.iterations else 0)
            if data is not None and epochs:
                from workbench.training import train

                train(
                    module,
                    data.x,
                    labels=data.y,
                    teacher_logits=teacher,
                    epochs=epochs,
                    lr=params.fine_tune_lr,
                    batch_size=params.fine_tune_batch,
                    seed=step,
                    task=task.sub((step - 0.5) / params.iterations, step / params.iterations),
                    keep_zero=masks,
                )
        return model.derive(torch_module=module)

    def _apply_onnx(self, model: Model, params: MagnitudePruneParams, task: Task) -> Model:
        from onnx import numpy_helper

        proto = model.copy_onnx()
        constants_to_initializers(proto)
        stored = weight_tensors(proto)  # initializers and Constant values, inside If/Loop/Scan subgraphs too
        names = _prunable_onnx_weights(proto, set(stored))
        params = _with_sensitivity_ratios(model, params, task, set(names))
        params = params.model_copy(update={"scope": "global" if params.scope == "sensitivity" else params.scope})
        arrays = {name: numpy_helper.to_array(stored[name]) for name in names}
        masks = magnitude_masks(arrays, params, task)
        for name, mask in masks.items():
            pruned = np.where(mask, arrays[name], np.zeros((), dtype=arrays[name].dtype))
            stored[name].CopyFrom(numpy_helper.from_array(pruned, stored[name].name))  # in place, in its graph
        return model.derive(onnx_proto=proto)


def _logits(module, x: np.ndarray) -> np.ndarray:
    import torch

    module.eval()
    with torch.no_grad():
        return torch.cat([module(torch.from_numpy(x[i : i + 256])) for i in range(0, len(x), 256)]).numpy()


SENSITIVITY_LEVELS = (0.5, 0.75, 0.9, 0.95, 0.98, 0.99)


def _with_sensitivity_ratios(
    model: Model, params: MagnitudePruneParams, task: Task, weights: set[str]
) -> MagnitudePruneParams:
    """For ``scope="sensitivity"``: per-layer ratios from a sweep on the calibration split that reach the
    target sparsity; explicit overrides still win."""
    if params.scope != "sensitivity" or params.pattern != "unstructured":
        return params
    from workbench.plugin import discover_plugins
    from workbench.sensitivity import cached_sweep

    data = task.data("calibration", "per-layer pruning ratios from sensitivity (scope: sensitivity)")
    onnx_model = model.derive(onnx_proto=model.to_onnx())
    report = cached_sweep(  # one sweep per model and data: a search asks for it again and again
        onnx_model, data, discover_plugins(), sparsities=SENSITIVITY_LEVELS, include_int8=False, include_int4=False
    )
    ratios = {k: v for k, v in report.allocate_sparsity(params.sparsity).items() if k in weights}
    if not ratios:
        raise PluginError("the sensitivity sweep found none of this model's prunable weights by name")
    task.note(
        "per-layer sparsity from sensitivity (calibration split): "
        + ", ".join(f"{k} {v:.1%}" for k, v in ratios.items())
    )
    return params.model_copy(update={"overrides": ratios | params.overrides})


def schedule_fraction(step: int, steps: int, schedule: str) -> float:
    """The fraction of the target sparsity reached after ``step`` of ``steps`` (Zhu & Gupta 2017 for cubic)."""
    progress = step / steps
    return progress if schedule == "linear" else 1.0 - (1.0 - progress) ** 3


def _is_eager(module) -> bool:
    import torch

    return not isinstance(module, (torch.jit.ScriptModule, torch.fx.GraphModule))


def _prunable_onnx_weights(proto: onnx.ModelProto, initializers: set[str]) -> list[str]:
    from workbench.analysis import walk_graphs

    names = []
    for node in (node for graph in walk_graphs(proto.graph) for node in graph.node):
        index = _PRUNABLE_INPUTS.get(node.op_type)
        if index is not None and len(node.input) > index and node.input[index] in initializers:
            names.append(node.input[index])
    return list(dict.fromkeys(names))


def magnitude_masks(weights: dict[str, np.ndarray], params: MagnitudePruneParams, task: Task) -> dict[str, np.ndarray]:
    """Boolean keep-masks: the same magnitude rule for torch and ONNX weights."""
    unknown = set(params.overrides) - set(weights)
    if unknown:
        raise PluginError(
            f"overrides name unknown layer(s): {', '.join(sorted(unknown))}; prunable: {', '.join(weights)}"
        )
    if not weights:
        raise PluginError("the model has no Conv or Linear (Gemm/MatMul) weights to prune")
    masks: dict[str, np.ndarray] = {}
    if params.pattern != "unstructured":
        keep, group = (int(v) for v in params.pattern.split(":"))
        for name, w in weights.items():
            if params.overrides.get(name, None) == 0.0:
                masks[name] = np.ones(w.shape, dtype=bool)
            else:
                masks[name] = n_of_m_mask(w, keep, group)
        task.report(0.9, "pruned")
        return masks
    shared = {n: w for n, w in weights.items() if n not in params.overrides}
    if params.scope == "global" and shared:
        masks.update(_smallest_removed(shared, params.sparsity))
    else:
        for name, w in shared.items():
            masks.update(_smallest_removed({name: w}, params.sparsity))
    for name, ratio in params.overrides.items():
        masks.update(_smallest_removed({name: weights[name]}, ratio))
    task.report(0.9, "pruned")
    return masks


def _smallest_removed(group: dict[str, np.ndarray], sparsity: float) -> dict[str, np.ndarray]:
    """Keep-masks removing exactly round(sparsity * n) weights of smallest magnitude across ``group``.

    Ranking by index (not a ``> threshold`` test) keeps ties from pruning past the requested sparsity.
    """
    magnitudes = np.concatenate([np.abs(w).ravel() for w in group.values()])
    count = round(sparsity * magnitudes.size)
    keep = np.ones(magnitudes.size, dtype=bool)
    if count > 0:
        keep[np.argpartition(magnitudes, count - 1, kind="introselect")[:count]] = False
    masks, offset = {}, 0
    for name, w in group.items():
        masks[name] = keep[offset : offset + w.size].reshape(w.shape)
        offset += w.size
    return masks


def n_of_m_mask(weight: np.ndarray, keep: int, group: int) -> np.ndarray:
    """Keep the ``keep`` largest magnitudes in every ``group`` consecutive weights along the input axis.

    The input axis is the last one of each output row (Conv [out, in, kh, kw] is grouped over in·kh·kw in
    memory order, Linear [out, in] over in); a trailing remainder shorter than ``group`` stays dense.
    """
    rows = weight.reshape(weight.shape[0], -1)
    usable = rows.shape[1] - rows.shape[1] % group
    mask = np.ones(rows.shape, dtype=bool)
    if usable:
        blocks = np.abs(rows[:, :usable]).reshape(rows.shape[0], -1, group)
        order = np.argsort(blocks, axis=-1, kind="stable")
        drop = np.zeros(blocks.shape, dtype=bool)
        np.put_along_axis(drop, order[..., : group - keep], True, axis=-1)
        mask[:, :usable] = ~drop.reshape(rows.shape[0], usable)
    return mask.reshape(weight.shape)
