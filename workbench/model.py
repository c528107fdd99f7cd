"""The Model handle: an ONNX graph and/or a torch module (its lineage), plus the input shapes in use.

A Model is treated as immutable: plugins build a new one with :meth:`Model.derive`; nothing in the core
edits a model that another object can still see.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import InputShapeError, PluginError

if TYPE_CHECKING:
    import onnx
    from torch import nn

    from workbench.compaction import NameMap
    from workbench.feeds import InputSpec

log = logging.getLogger(__name__)

Dim = int | str | None  # fixed size, symbolic name, or unknown
Format = Literal["onnx", "torch"]
ShapeSource = Literal["model", "default", "user", "remembered"]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name, e.g. "float32"
    shape: tuple[Dim, ...]

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) or d < 0 for d in self.shape)

    @property
    def rank_unknown(self) -> bool:
        return bool(self.shape) and all(d is None for d in self.shape)

    def describe(self) -> str:
        if self.rank_unknown:
            return f"{self.name}: {self.dtype}[shape unknown]"
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"


@dataclass(frozen=True)
class InputShapes:
    """Concrete input shapes an analysis or measurement used, and where they came from."""

    shapes: dict[str, tuple[int, ...]]
    source: ShapeSource

    def describe(self) -> str:
        parts = [f"{name}={'x'.join(map(str, shape))}" for name, shape in self.shapes.items()]
        return f"{', '.join(parts)} ({self.source})"


@dataclass(frozen=True)
class ArchRef:
    """A built-in architecture and its constructor arguments (see :mod:`workbench.archs`)."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    structure: dict[str, dict[str, int]] = field(default_factory=dict)  # sizes structured pruning changed


@dataclass(frozen=True, eq=False)
class Model:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...] = ()
    onnx_proto: onnx.ModelProto | None = None
    torch_module: nn.Module | None = None
    arch: ArchRef | None = None
    source: Path | None = None
    input_shapes: InputShapes | None = None
    input_spec: InputSpec | None = None  # constant side inputs and recurrent state (see workbench.feeds)
    _onnx_cache: list = field(default_factory=list, repr=False)  # torch lineage exported once, lazily
    _artifact_cache: list = field(default_factory=list, repr=False)  # compacted once, lazily

    @property
    def formats(self) -> frozenset[Format]:
        found: set[Format] = set()
        if self.onnx_proto is not None:
            found.add("onnx")
        if self.torch_module is not None:
            found.add("torch")
        return frozenset(found)

    @property
    def has_torch_lineage(self) -> bool:
        return self.torch_module is not None

    @property
    def dynamic_inputs(self) -> list[TensorSpec]:
        return [spec for spec in self.inputs if spec.is_dynamic]

    def derive(self, **changes: Any) -> Model:
        """A new Model; an edited torch module drops the stale ONNX, an edited graph drops the torch side."""
        if "torch_module" in changes and "onnx_proto" not in changes:
            changes["onnx_proto"] = None
        if "onnx_proto" in changes and "torch_module" not in changes:
            changes["torch_module"] = None
            changes.setdefault("arch", None)
        changes["_onnx_cache"] = []
        changes["_artifact_cache"] = []
        return replace(self, **changes)

    def with_input_spec(self, spec: InputSpec | None) -> Model:
        """The same graph fed differently: the artifact is unchanged, so its caches stay."""
        return replace(self, input_spec=spec)

    def with_input_shapes(self, shapes: InputShapes) -> Model:
        check_shapes_fit(self.inputs, shapes.shapes)
        return replace(self, input_shapes=shapes, _onnx_cache=[], _artifact_cache=[])

    def concrete_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.input_shapes is not None:
            return dict(self.input_shapes.shapes)
        if self.dynamic_inputs:
            names = ", ".join(spec.describe() for spec in self.dynamic_inputs)
            raise InputShapeError(f"input shape needed for dynamic input(s) {names}", self.source)
        return {spec.name: tuple(int(d) for d in spec.shape) for spec in self.inputs}  # type: ignore[arg-type]

    def copy_torch_module(self) -> nn.Module:
        if self.torch_module is None:
            raise PluginError("model has no torch lineage", self.source)
        return copy.deepcopy(self.torch_module)

    def copy_onnx(self) -> onnx.ModelProto:
        import onnx

        proto = onnx.ModelProto()
        proto.CopyFrom(self.to_onnx())
        return proto

    def to_onnx(self) -> onnx.ModelProto:
        """The ONNX graph; a torch-only model is exported once (read-only: copy before editing)."""
        if self.onnx_proto is not None:
            return self.onnx_proto
        if not self._onnx_cache:
            if self.torch_module is None:
                raise PluginError("model has neither an ONNX graph nor a torch module", self.source)
            self._onnx_cache.append(export_torch_to_onnx(self.torch_module, self.inputs, self.concrete_shapes()))
        return self._onnx_cache[0]

    def onnx_bytes(self) -> bytes:
        """Deterministic serialization with the graph's own names, so the same graph always hashes the same."""
        return self.to_onnx().SerializeToString(deterministic=True)

    def artifact(self) -> tuple[bytes, NameMap]:
        """The file the workbench stores, measures and ships: the graph losslessly compacted (short names,
        no value_info or default zero points, no duplicate initializers), and the map back to its names."""
        if not self._artifact_cache:
            from workbench.compaction import compact

            compacted, names = compact(self.to_onnx())
            self._artifact_cache.append((compacted.SerializeToString(deterministic=True), names))
        return self._artifact_cache[0]

    def artifact_bytes(self) -> bytes:
        return self.artifact()[0]


def check_shapes_fit(inputs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]]) -> None:
    by_name = {spec.name: spec for spec in inputs}
    unknown = set(shapes) - set(by_name)
    if unknown:
        raise InputShapeError(
            f"no input named {', '.join(sorted(unknown))}; the model's inputs are {', '.join(by_name)}"
        )
    for name, spec in by_name.items():
        if name not in shapes:
            raise InputShapeError(f"missing shape for input '{name}' ({spec.describe()})")
        shape = tuple(shapes[name])
        if any(d <= 0 for d in shape):
            raise InputShapeError(f"input '{name}': dimensions must be positive, got {list(shape)}")
        if spec.rank_unknown:
            continue  # TorchScript keeps no shapes: any rank the user gives is taken
        if len(shape) != len(spec.shape):
            raise InputShapeError(f"input '{name}' has rank {len(spec.shape)}, got shape {list(shape)}")
        for got, want in zip(shape, spec.shape, strict=True):
            if isinstance(want, int) and want > 0 and got != want:
                raise InputShapeError(f"input '{name}' is fixed at {list(spec.shape)}, got {list(shape)}")


def parse_input_shapes(text: str, inputs: Sequence[TensorSpec]) -> dict[str, tuple[int, ...]]:
    """Parse ``1,3,224,224`` (single input) or ``x=1,3,224,224;mask=1,128`` into shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    for part in filter(None, (p.strip() for p in text.replace(" ", "").split(";"))):
        name, _, dims = part.rpartition("=")
        if not name:
            if len(inputs) != 1:
                raise InputShapeError(f"the model has {len(inputs)} inputs: name each one, e.g. name=1,3,224,224")
            name = inputs[0].name
        try:
            shapes[name] = tuple(int(d) for d in dims.replace("x", ",").split(",") if d)
        except ValueError:
            raise InputShapeError(f"cannot read input shape '{part}': use integers like 1,3,224,224") from None
    for spec in inputs:  # a fixed input (a scalar sample rate) needs no shape from the user
        if spec.name not in shapes and not spec.is_dynamic and not spec.rank_unknown:
            shapes[spec.name] = tuple(int(d) for d in spec.shape)  # type: ignore[arg-type]
    check_shapes_fit(inputs, shapes)
    return shapes


def default_input_shapes(inputs: Sequence[TensorSpec]) -> dict[str, tuple[int, ...]]:
    """A guess for dynamic dims: batch 1; image height/width 224; anything else 1."""
    shapes = {}
    for spec in inputs:
        if spec.rank_unknown:
            raise InputShapeError(f"the model does not record the shape of input '{spec.name}': give one")
        dims: list[int] = []
        rank = len(spec.shape)
        channels_first = rank == 4 and isinstance(spec.shape[1], int) and spec.shape[1] in (1, 3, 4)
        for i, d in enumerate(spec.shape):
            if isinstance(d, int) and d > 0:
                dims.append(d)
            elif i == 0:
                dims.append(1)
            elif rank == 4 and ((channels_first and i in (2, 3)) or (not channels_first and i in (1, 2))):
                dims.append(224)
            else:
                dims.append(1)
        shapes[spec.name] = tuple(dims)
    return shapes


# --- torch → ONNX ---------------------------------------------------------------------------------
ExportRoute = Literal["torchscript", "dynamo"]


def export_torch_to_onnx(
    module: nn.Module,
    inputs: Sequence[TensorSpec],
    shapes: Mapping[str, tuple[int, ...]],
    routes: Sequence[ExportRoute] = ("torchscript", "dynamo"),
) -> onnx.ModelProto:
    """Export with torch's TorchScript exporter, falling back to the dynamo exporter.

    The TorchScript route goes first: it is ~50x faster here and its graphs carry no value_info for
    weights (which breaks onnxruntime's quantizer on dynamo output). The batch dimension stays dynamic.
    """
    import numpy as np
    import onnx
    import torch

    examples = tuple(
        torch.zeros(shapes[spec.name], dtype=torch.from_numpy(np.zeros(0, dtype=spec.dtype)).dtype) for spec in inputs
    )
    names = [spec.name for spec in inputs]
    set_eval(module)
    failures = []
    for route in routes:
        buffer = io.BytesIO()
        try:
            # The TorchScript exporter prints its whole IR when it fails; keep that off the user's terminal.
            with (
                torch.no_grad(),
                warnings.catch_warnings(),
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                # The TorchScript exporter is chosen on purpose (see docstring); its deprecation notice is noise.
                warnings.simplefilter("ignore", DeprecationWarning)
                if route == "torchscript":
                    torch.onnx.export(
                        module,
                        examples,
                        buffer,
                        dynamo=False,
                        input_names=names,
                        output_names=["output"],
                        dynamic_axes={n: {0: "batch"} for n in names} | {"output": {0: "batch"}},
                        opset_version=17,
                    )
                else:
                    batch = torch.export.Dim("batch", min=1)
                    torch.onnx.export(
                        module,
                        examples,
                        buffer,
                        dynamo=True,
                        input_names=names,
                        output_names=["output"],
                        dynamic_shapes=tuple({0: batch} for _ in names),
                        verbose=False,
                        optimize=True,
                    )
            proto = onnx.load_from_string(buffer.getvalue())
        except Exception as exc:
            failures.append(f"{route}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            log.info("ONNX export via %s failed: %s", route, exc)
            continue
        _drop_initializer_value_info(proto)
        proto.producer_name, proto.producer_version = "model-workbench", _torch_version()
        return proto
    raise PluginError("could not export the torch model to ONNX: " + "; ".join(failures))


def set_eval(module: nn.Module) -> nn.Module:
    """Inference mode; torch.export's unlifted GraphModules refuse eval() and are inference-only anyway."""
    import torch

    if not isinstance(module, torch.fx.GraphModule):
        module.eval()
    return module


def _drop_initializer_value_info(proto: onnx.ModelProto) -> None:
    # value_info entries for weights make onnxruntime's quantizer fail shape inference on transposed weights.
    weights = {init.name for init in proto.graph.initializer}
    kept = [vi for vi in proto.graph.value_info if vi.name not in weights]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)


def _torch_version() -> str:
    import torch

    return str(torch.__version__)
