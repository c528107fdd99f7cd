"""Open model files: ONNX (with external data), TorchScript, torch.export ``.pt2`` and state dicts.

Every failure becomes a :class:`ModelLoadError` naming the file and the reason; nothing is written.
A pickled ``nn.Module`` is refused unless the caller says the file is trusted, because unpickling it
runs code stored in the file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.archs import get_architecture, match_architecture
from workbench.errors import InputShapeError, ModelLoadError, UntrustedPickleError, WorkbenchError
from workbench.model import (
    ArchRef,
    InputShapes,
    Model,
    TensorSpec,
    default_input_shapes,
    parse_input_shapes,
    set_eval,
)

if TYPE_CHECKING:
    import onnx
    from torch import nn

ONNX_SUFFIXES = {".onnx"}
TORCH_SUFFIXES = {".pt", ".pth", ".pt2", ".ckpt"}
MODEL_SUFFIXES = ONNX_SUFFIXES | TORCH_SUFFIXES


def load_model(
    path: str | Path,
    *,
    trust_pickle: bool = False,
    input_shapes: Mapping[str, tuple[int, ...]] | str | None = None,
    arch: str | None = None,
    remember_shapes: bool = True,
) -> Model:
    """Open ``path`` and settle its input shapes.

    Shapes come from ``input_shapes`` (the user, as a mapping or text like ``x=1,3,224,224``;
    remembered for next time), else from an earlier
    choice remembered for this file, else from the model when fixed, else a default guess. The Model
    records which of these it used.
    """
    path = Path(path)
    _check_readable(path)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        model = _load_onnx(path)
    elif suffix in TORCH_SUFFIXES:
        model = _load_torch(path, trust_pickle=trust_pickle, arch=arch)
    else:
        kinds = ", ".join(sorted(MODEL_SUFFIXES))
        raise ModelLoadError(f"unsupported file type '{suffix or '(none)'}'; expected one of {kinds}", path)
    return _settle_shapes(model, path, input_shapes, remember_shapes)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ModelLoadError("file does not exist", path)
    if path.is_dir():
        raise ModelLoadError("is a directory, not a model file", path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise ModelLoadError(f"cannot read the file ({exc.strerror or exc})", path) from None
    if size == 0:
        raise ModelLoadError("file is empty (0 bytes)", path)


def _settle_shapes(model: Model, path: Path, user: Mapping[str, tuple[int, ...]] | str | None, remember: bool) -> Model:
    from workbench.fileio import sha256_file
    from workbench.settings import ShapeMemory

    if isinstance(user, str):
        try:
            user = parse_input_shapes(user, model.inputs)
        except InputShapeError as exc:
            raise InputShapeError(exc.reason, path) from None
    if user:
        try:
            model = model.with_input_shapes(InputShapes(dict(user), "user"))
        except InputShapeError as exc:
            raise InputShapeError(exc.reason, path) from None
        if remember and model.dynamic_inputs:
            ShapeMemory().put(sha256_file(path), dict(user))
        return model
    if not model.dynamic_inputs:
        fixed = {s.name: tuple(int(d) for d in s.shape) for s in model.inputs}  # type: ignore[arg-type]
        return model.with_input_shapes(InputShapes(fixed, "model"))
    remembered = ShapeMemory().get(sha256_file(path))
    if remembered:
        try:
            return model.with_input_shapes(InputShapes(remembered, "remembered"))
        except InputShapeError:
            pass  # stale memory (a different input layout) is ignored, never fatal
    if model.input_shapes is not None:
        return model  # the file declared its own example shape (checkpoint metadata, torch.export)
    try:
        defaults = default_input_shapes(model.inputs)
    except InputShapeError as exc:
        raise InputShapeError(f"{exc.reason} (e.g. --input-shape 1,3,224,224)", path) from None
    return model.with_input_shapes(InputShapes(defaults, "default"))


# --- ONNX -----------------------------------------------------------------------------------------
def _load_onnx(path: Path) -> Model:
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"not a valid ONNX file, or it is truncated ({_first_line(exc)})", path) from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read the file ({exc.strerror or exc})", path) from None
    if proto.ir_version <= 0 or len(proto.graph.node) == 0 or len(proto.graph.output) == 0:
        raise ModelLoadError("not an ONNX model: the file holds no graph with nodes and outputs", path)
    _load_external_data(proto, path)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelLoadError(f"invalid ONNX model, possibly truncated ({_first_line(exc)})", path) from None
    except ValueError:
        pass  # >2 GB protos cannot be checked in memory; onnxruntime will still validate on load
    return Model(
        name=path.stem,
        inputs=tuple(onnx_graph_inputs(proto)),
        outputs=tuple(_value_infos_to_specs(proto.graph.output)),
        onnx_proto=proto,
        source=path,
    )


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import ExternalDataInfo, load_external_data_for_model, uses_external_data

    base = path.parent
    for tensor in _all_tensors(proto):
        if not uses_external_data(tensor):
            continue
        try:
            info = ExternalDataInfo(tensor)
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"tensor '{tensor.name}' has malformed external data ({exc})", path) from None
        location = (base / info.location).resolve()
        if base.resolve() not in location.parents:
            raise ModelLoadError(f"external data '{info.location}' points outside the model's folder", path)
        if not location.is_file():
            raise ModelLoadError(
                f"missing external data file '{info.location}' (needed by tensor '{tensor.name}')", path
            )
        needed = (info.offset or 0) + (info.length or 0)
        if info.length and location.stat().st_size < needed:
            raise ModelLoadError(
                f"external data file '{info.location}' is truncated: tensor '{tensor.name}' needs "
                f"{needed} bytes, the file has {location.stat().st_size}",
                path,
            )
    try:
        load_external_data_for_model(proto, str(base))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read external data ({_first_line(exc)})", path) from None


def _all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Initializers and attribute tensors of the graph and every subgraph (where external data may sit)."""
    from workbench.analysis import walk_graphs

    for graph in walk_graphs(proto.graph):
        yield from graph.initializer
        for node in graph.node:
            for attr in node.attribute:
                if attr.HasField("t"):
                    yield attr.t
                yield from attr.tensors


def onnx_graph_inputs(proto: onnx.ModelProto) -> list[TensorSpec]:
    """Real inputs: old exporters also list every initializer as a graph input."""
    weights = {init.name for init in proto.graph.initializer}
    return _value_infos_to_specs(vi for vi in proto.graph.input if vi.name not in weights)


def _value_infos_to_specs(value_infos) -> list[TensorSpec]:
    from onnx import helper

    specs = []
    for vi in value_infos:
        tensor_type = vi.type.tensor_type
        try:
            dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        except (KeyError, TypeError):
            dtype = "unknown"
        dims: list[int | str | None] = []
        for d in tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        specs.append(TensorSpec(vi.name, dtype, tuple(dims)))
    return specs


# --- torch ----------------------------------------------------------------------------------------
def _load_torch(path: Path, *, trust_pickle: bool, arch: str | None) -> Model:
    kind = _sniff_torch_archive(path)
    if kind == "torchscript":
        return _load_torchscript(path)
    if kind == "export":
        return _load_exported_program(path)
    return _load_checkpoint(path, trust_pickle=trust_pickle, arch=arch)


def _sniff_torch_archive(path: Path) -> str:
    if not zipfile.is_zipfile(path):
        return "pickle"
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "pickle"  # torch.load reports the damage in its own words
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    return "pickle"


def _load_torchscript(path: Path) -> Model:
    import torch

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelLoadError(f"cannot load TorchScript archive ({_first_line(exc)})", path) from None
    # TorchScript keeps no input shapes; the user supplies them (inputs: one float tensor of unknown rank).
    return Model(
        name=path.stem,
        inputs=(TensorSpec("input", "float32", (None, None, None, None)),),
        torch_module=set_eval(module),
        source=path,
    )


def _load_exported_program(path: Path) -> Model:
    import torch

    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelLoadError(f"cannot load torch.export program ({_first_line(exc)})", path) from None
    inputs = []
    for spec, example in zip(_user_input_names(program), program.example_inputs[0], strict=False):
        inputs.append(TensorSpec(spec, str(example.dtype).removeprefix("torch."), tuple(example.shape)))
    return Model(name=path.stem, inputs=tuple(inputs), torch_module=program.module(), source=path)


def _user_input_names(program: Any) -> list[str]:
    from torch.export.graph_signature import InputKind

    return [s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]


def _load_checkpoint(path: Path, *, trust_pickle: bool, arch: str | None) -> Model:
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_globals(path)
        if not unsafe:
            raise ModelLoadError(f"not a PyTorch file, or it is corrupt ({_first_line(exc)})", path) from None
        if not trust_pickle:
            raise UntrustedPickleError(
                f"refused: the file holds pickled Python objects ({', '.join(unsafe[:3])}); loading them "
                "would run code stored in the file. Save a state_dict or TorchScript instead, or pass "
                "--trust-pickle if you trust where this file came from",
                path,
            ) from None
        obj = _load_trusted_pickle(path)
    except Exception as exc:
        raise ModelLoadError(f"not a PyTorch file, or it is truncated ({_first_line(exc)})", path) from None

    from torch import nn

    if isinstance(obj, nn.Module):
        return _model_from_module(set_eval(obj), path)
    return _model_from_state_dict(obj, path, arch)


def _unsafe_globals(path: Path) -> list[str]:
    import torch

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:
        return []


def _load_trusted_pickle(path: Path) -> Any:
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)  # the user trusts this file
    except Exception as exc:
        raise ModelLoadError(f"trusted pickle failed to load ({_first_line(exc)})", path) from None


def _model_from_module(module: nn.Module, path: Path) -> Model:
    shape = getattr(module, "example_input_shape", None)
    dims = tuple(shape) if shape else (None, None, None, None)
    return Model(name=path.stem, inputs=(TensorSpec("input", "float32", dims),), torch_module=module, source=path)


def _model_from_state_dict(obj: Any, path: Path, arch_name: str | None) -> Model:
    import torch

    meta: dict[str, Any] = {}
    state = obj
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, meta = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError("holds no state_dict of tensors (nor a model) that the workbench can open", path)
    arch_name = arch_name or meta.get("arch")
    declared_shape = meta.get("input_shape")
    if not isinstance(meta.get("arch_kwargs") or {}, dict) or (
        declared_shape is not None
        and not (
            isinstance(declared_shape, (list, tuple)) and all(isinstance(d, int) and d > 0 for d in declared_shape)
        )
    ):
        raise ModelLoadError(
            "checkpoint metadata is malformed (arch_kwargs must be a dict, input_shape positive ints)", path
        )
    try:
        if arch_name:
            architecture = get_architecture(str(arch_name))
            kwargs = dict(meta.get("arch_kwargs") or architecture.infer_kwargs(state) or {})
        else:
            found = match_architecture(state)
            if found is None:
                raise ModelLoadError(
                    "state_dict matches no built-in architecture; pass --arch NAME, or export the model "
                    "to ONNX or TorchScript",
                    path,
                )
            architecture, kwargs = found
        module = architecture.build(**kwargs)
        module.load_state_dict(state, strict=True)
    except WorkbenchError as exc:
        raise ModelLoadError(exc.reason, path) from None
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"state_dict does not fit architecture ({_first_line(exc)})", path) from None
    shape = tuple(int(d) for d in (meta.get("input_shape") or architecture.default_input_shape(kwargs)))
    return Model(
        name=path.stem,
        inputs=(TensorSpec("input", "float32", ("batch", *shape[1:])),),
        torch_module=set_eval(module),
        arch=ArchRef(architecture.name, kwargs),
        source=path,
        input_shapes=InputShapes({"input": shape}, "model"),
    )


def model_files(path: Path, model: Model) -> list[Path]:
    """The model file and every external-data file it reads (never to be overwritten)."""
    files = [path]
    if model.source is not None and path.suffix.lower() in ONNX_SUFFIXES:
        import onnx
        from onnx.external_data_helper import ExternalDataInfo, uses_external_data

        header = onnx.load(str(path), load_external_data=False)
        files += [path.parent / ExternalDataInfo(t).location for t in _all_tensors(header) if uses_external_data(t)]
    return files


def model_from_module(module: nn.Module, name: str, input_shape: tuple[int, ...], arch: ArchRef | None = None) -> Model:
    """Wrap an in-memory torch module (the demo, tests) as a Model with a dynamic batch."""
    spec = TensorSpec("input", "float32", ("batch", *input_shape[1:]))
    return Model(
        name=name,
        inputs=(spec,),
        torch_module=set_eval(module),
        arch=arch,
        input_shapes=InputShapes({"input": tuple(input_shape)}, "model"),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
