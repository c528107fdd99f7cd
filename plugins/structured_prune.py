"""Structured channel/filter pruning with Torch-Pruning: channels are really removed, so tensors shrink
and MACs and latency drop. Torch-Pruning's dependency graph keeps residual adds, concatenations and
depthwise convolutions consistent by pruning coupled layers as one group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from workbench.errors import PluginError
from workbench.plugin import Plugin, PluginKind, PluginParams, Task

if TYPE_CHECKING:
    from torch import nn

    from workbench.model import Model


class StructuredPruneParams(PluginParams):
    ratio: float = Field(
        0.3,
        ge=0.0,
        le=0.9,
        description="Fraction of channels removed from each prunable group.",
        json_schema_extra={"search": [0.1, 0.7], "shrinks": "up"},
    )
    importance: Literal["l1", "l2", "bn_scale", "taylor"] = Field(
        "l2",
        description="How channels are ranked: weight magnitude (L1/L2), BatchNorm scale, or first-order Taylor "
        "(needs labelled data)",
    )
    global_pruning: bool = Field(False, description="rank channels across all groups instead of within each group")
    round_to: Literal[1, 2, 4, 8, 16] = Field(1, description="keep channel counts multiples of this (SIMD-friendly)")
    group_ratios: dict[str, float] = Field(
        default_factory=dict, description="Per-layer ratio by module name (the group it leads), taking precedence"
    )


class StructuredPrune(Plugin):
    id = "structured_prune"
    title = "Structured channel pruning"
    kind = PluginKind.PRUNE
    formats = frozenset({"torch"})
    Params = StructuredPruneParams
    description = "Remove whole channels/filters (Torch-Pruning dependency groups); the model really shrinks."

    def apply(self, model: Model, params: StructuredPruneParams, task: Task) -> Model:  # type: ignore[override]
        import torch
        import torch_pruning as tp

        from workbench.archs import get_architecture, structure_of

        module = model.copy_torch_module()
        if isinstance(module, (torch.jit.ScriptModule, torch.fx.GraphModule)):
            raise PluginError(
                "structured pruning needs an eager torch module (a state-dict checkpoint), not a compiled graph"
            )
        shape = next(iter(model.concrete_shapes().values()))
        example = torch.zeros(shape)
        named = dict(module.named_modules())
        unknown = set(params.group_ratios) - set(named)
        if unknown:
            raise PluginError(f"group_ratios name unknown module(s): {', '.join(sorted(unknown))}")
        importance = {
            "l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
            "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "bn_scale": tp.importance.BNScaleImportance,
            "taylor": tp.importance.GroupTaylorImportance,
        }[params.importance]()
        pruner = tp.pruner.MetaPruner(
            module,
            example,
            importance=importance,
            pruning_ratio=params.ratio,
            pruning_ratio_dict={named[k]: v for k, v in params.group_ratios.items()} or None,
            global_pruning=params.global_pruning,
            ignored_layers=_output_layers(module, example),
            round_to=params.round_to if params.round_to > 1 else None,
        )
        if params.importance == "taylor":
            self._taylor_gradients(module, task)
        task.report(0.5, "removing channels")
        module.eval()
        pruner.step()
        module.zero_grad(set_to_none=True)
        with torch.no_grad():
            out = module(example)
        if out is None:
            raise PluginError("pruned model produced no output")
        arch = model.arch
        if arch is not None:
            reference = get_architecture(arch.name).build(**arch.kwargs)
            arch = type(arch)(arch.name, dict(arch.kwargs), structure_of(module, reference))
        return model.derive(torch_module=module, arch=arch)

    @staticmethod
    def _taylor_gradients(module: nn.Module, task: Task) -> None:
        import torch

        data = task.data("calibration", "Taylor importance (or choose l1, l2 or bn_scale)", labels=True)
        module.eval()
        module.zero_grad()
        x, y = torch.from_numpy(data.x[:256]), torch.from_numpy(data.y[:256])
        torch.nn.functional.cross_entropy(module(x), y).backward()


def _output_layers(module: nn.Module, example) -> list[nn.Module]:
    """The last Linear/Conv produces the model's output classes: never prune its outputs."""
    from torch import nn

    order: list[nn.Module] = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: order.append(m))
        for m in module.modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))
    ]
    import torch

    with torch.no_grad():
        module(example)
    for hook in hooks:
        hook.remove()
    return order[-1:]
