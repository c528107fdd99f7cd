"""Built-in architectures, defined in plain torch (no torchvision), so state-dict checkpoints load.

Each entry builds a module from keyword arguments and can recognise its own state dict, so a bare
checkpoint (only tensors, no code) is enough to rebuild the network safely.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[..., nn.Module]
    default_input_shape: Callable[[Mapping[str, Any]], tuple[int, ...]]
    infer_kwargs: Callable[[Mapping[str, torch.Tensor]], dict[str, Any] | None]
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)


def _build_lenet5(num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> nn.Module:
    from torch import nn

    c1, c2, f1, f2 = (max(1, round(c * width)) for c in (6, 16, 120, 84))
    # Classic LeNet-5 with ReLU and max-pooling; padding 2 gives 28x28 inputs the paper's 32x32 geometry.
    features = nn.Sequential(
        nn.Conv2d(in_channels, c1, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, kernel_size=5),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )
    classifier = nn.Sequential(
        nn.Flatten(),
        nn.Linear(c2 * 5 * 5, f1),
        nn.ReLU(),
        nn.Linear(f1, f2),
        nn.ReLU(),
        nn.Linear(f2, num_classes),
    )
    return nn.Sequential(features, classifier)


def _lenet5_kwargs(state: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    if not {"0.0.weight", "1.5.weight"} <= set(state):
        return None
    first, last = state["0.0.weight"], state["1.5.weight"]
    if first.ndim != 4 or last.ndim != 2:
        return None
    kwargs: dict[str, Any] = {"num_classes": int(last.shape[0]), "in_channels": int(first.shape[1])}
    if first.shape[0] != 6:
        kwargs["width"] = first.shape[0] / 6
    return kwargs


ARCHITECTURES: dict[str, Architecture] = {
    "lenet5": Architecture(
        name="lenet5",
        build=_build_lenet5,
        default_input_shape=lambda kw: (1, kw.get("in_channels", 1), 28, 28),
        infer_kwargs=_lenet5_kwargs,
        description="LeNet-5 (LeCun et al. 1998) for 28x28 images",
    ),
}


def _generic_kwargs(state: Mapping[str, torch.Tensor]) -> dict[str, Any] | None:
    """num_classes from the last weight, in_channels from the first (width 1.0); verified by shape match."""
    weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim >= 2]
    if not weights:
        return None
    return {"num_classes": int(weights[-1].shape[0]), "in_channels": int(weights[0].shape[1])}


# The zoo's networks by the name of their builder in workbench.zoo, with a default input (C, H, W) and a
# description. The builders import torch only when called, so opening an ONNX file never loads torch.
_ZOO = {
    "mobilenet_v2": ((3, 96, 96), "MobileNetV2 (inverted residuals)"),
    "mobilenet_v3_small": ((3, 96, 96), "MobileNetV3-small (SE, hard-swish)"),
    "squeezenet": ((3, 96, 96), "SqueezeNet 1.1-style (fire modules)"),
    "shufflenet_v2": ((3, 96, 96), "ShuffleNetV2 (channel split + shuffle)"),
    "efficientnet_lite": ((3, 96, 96), "EfficientNet-Lite0-style (no SE, ReLU6)"),
    "mobilevit_small": ((3, 64, 64), "small MobileViT-style (conv + transformer blocks)"),
    "ds_cnn": ((1, 49, 10), "DS-CNN for keyword spotting on MFCCs"),
}


def _zoo_builder(name: str) -> Callable[..., nn.Module]:
    def build(**kwargs: Any) -> nn.Module:
        from workbench import zoo

        return getattr(zoo, name)(**kwargs)

    return build


for _name, ((_channels, _height, _width), _description) in _ZOO.items():
    ARCHITECTURES[_name] = Architecture(
        name=_name,
        build=_zoo_builder(_name),
        default_input_shape=lambda kw, c=_channels, h=_height, w=_width: (1, kw.get("in_channels", c), h, w),
        infer_kwargs=_generic_kwargs,
        description=_description,
    )


def get_architecture(name: str) -> Architecture:
    from workbench.errors import WorkbenchError

    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise WorkbenchError(f"unknown architecture '{name}' (built in: {known})") from None


def match_architecture(state: Mapping[str, torch.Tensor]) -> tuple[Architecture, dict[str, Any]] | None:
    """Find the built-in architecture whose parameter names and shapes fit ``state`` exactly."""
    for arch in ARCHITECTURES.values():
        kwargs = arch.infer_kwargs(state)
        if kwargs is None:
            continue
        reference = arch.build(**kwargs).state_dict()
        if set(reference) == set(state) and all(tuple(reference[k].shape) == tuple(state[k].shape) for k in reference):
            return arch, kwargs
    return None


# Size attributes that structured pruning changes; recorded so a pruned network rebuilds from tensors only.
_SIZE_ATTRIBUTES = ("in_channels", "out_channels", "groups", "in_features", "out_features", "num_features")


def structure_of(module: nn.Module, reference: nn.Module) -> dict[str, dict[str, int]]:
    """Per-submodule size attributes that differ from ``reference`` (the unpruned architecture)."""
    reference_modules = dict(reference.named_modules())
    changed: dict[str, dict[str, int]] = {}
    for name, sub in module.named_modules():
        ref = reference_modules.get(name)
        diffs = {
            attr: int(getattr(sub, attr))
            for attr in _SIZE_ATTRIBUTES
            if hasattr(sub, attr) and ref is not None and getattr(sub, attr) != getattr(ref, attr)
        }
        if diffs:
            changed[name] = diffs
    return changed


def rebuild(
    name: str, kwargs: Mapping[str, Any], structure: Mapping[str, Mapping[str, int]], state: Mapping[str, torch.Tensor]
) -> nn.Module:
    """Build a built-in architecture, resize what pruning shrank, then load the weights."""
    import torch

    module = get_architecture(name).build(**kwargs)
    for module_name, attrs in structure.items():
        target = module.get_submodule(module_name)
        for attr, value in attrs.items():
            setattr(target, attr, value)
    for key, tensor in state.items():
        owner_name, _, leaf = key.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        current = getattr(owner, leaf, None)
        if isinstance(current, torch.Tensor) and current.shape != tensor.shape:
            if isinstance(current, torch.nn.Parameter):
                setattr(owner, leaf, torch.nn.Parameter(torch.empty_like(tensor)))
            else:
                owner.register_buffer(leaf, torch.empty_like(tensor))
    module.load_state_dict(state, strict=True)
    return module.eval()
