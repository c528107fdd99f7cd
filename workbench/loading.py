"""Open model files: ONNX (with external data), TorchScript, torch.export ``.pt2`` and state dicts.

Every failure becomes a :class:`ModelLoadError` naming the file and the reason; nothing is written.
A pickled ``nn.Module`` is refused unless the caller says the file is trusted, because unpickling it
runs code stored in the file.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.archs import get_architecture, match_architecture
from workbench.errors import (
    InputShapeError,
    ModelLoadError,
    UntrustedPickleError,
    WorkbenchError,
    describe_exception,
    with_path,
)
from workbench.limits import check_allocation, human_bytes, memory_budget
from workbench.model import (
    ArchRef,
    InputShapes,
    Model,
    TensorSpec,
    default_input_shapes,
    parse_input_shapes,
    set_eval,
)
from workbench.untrusted import check_regular_file, open_regular, refuse_pickled_code, untrusted_pickle_error

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
    suffix = path.suffix.lower()
    if path.is_dir():
        raise ModelLoadError("is a directory, not a model file", path)
    if suffix not in MODEL_SUFFIXES:
        kinds = ", ".join(sorted(MODEL_SUFFIXES))
        if suffix == ".tflite":  # read and measured as it is, but not (yet) a project's starting model
            raise ModelLoadError(
                "a LiteRT .tflite is read with `workbench info`, measured with `workbench eval` and bundled as it is "
                "with `workbench export`; to compress it, open the model it was converted from (.onnx or a PyTorch "
                "checkpoint)",
                path,
            )
        raise ModelLoadError(f"unsupported file type '{suffix or '(none)'}'; expected one of {kinds}", path)
    if check_regular_file(path, ModelLoadError).st_size == 0:
        raise ModelLoadError("file is empty (0 bytes)", path)
    try:
        loaded = (
            _load_onnx(path) if suffix in ONNX_SUFFIXES else _load_torch(path, trust_pickle=trust_pickle, arch=arch)
        )
        model = _settle_shapes(loaded, path, input_shapes, remember_shapes)
        check_input_sizes(model)
        return model
    except WorkbenchError as exc:
        raise with_path(exc, path) from exc.__cause__
    except Exception as exc:  # damaged files reach library corners we cannot list; say what and where
        raise ModelLoadError(f"cannot open the model: {describe_exception(exc)}", path) from exc


def check_input_sizes(model: Model) -> None:
    """Refuse input shapes whose tensors alone exceed the memory budget (a file may declare any)."""
    import numpy as np

    if model.input_shapes is None:
        return
    weights = sum(len(i.raw_data) for i in model.onnx_proto.graph.initializer) if model.onnx_proto else 0
    budget = memory_budget(weights)
    dtypes = {spec.name: spec.dtype for spec in model.inputs}
    for name, shape in model.input_shapes.shapes.items():
        try:
            itemsize = np.dtype(dtypes.get(name, "float32")).itemsize
        except TypeError:
            itemsize = 8
        check_allocation(
            math.prod(int(d) for d in shape) * itemsize,
            f"input '{name}' at shape {'x'.join(map(str, shape))} ({model.input_shapes.source})",
            model.source,
            budget=budget,
            error=InputShapeError,
            hint="choose a smaller shape with --input-shape, or raise WORKBENCH_MEMORY_BUDGET_MB",
        )


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
        with open_regular(path, ModelLoadError) as handle:
            proto = onnx.load_model_from_string(handle.read())
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
    check_runtime_loads(proto, path)
    return Model(
        name=path.stem,
        inputs=tuple(onnx_graph_inputs(proto)),
        outputs=tuple(_value_infos_to_specs(proto.graph.output)),
        onnx_proto=proto,
        source=path,
    )


def check_runtime_loads(proto: onnx.ModelProto, path: Path | None) -> None:
    """Refuse what onnxruntime refuses (an opset it does not know, duplicate node names, ...): every
    measurement and export runs there, and a plugin must never write a file it cannot load."""

    from workbench.runtime import new_session, session_options

    options = session_options(optimize=False)  # validate, do not optimize
    try:
        data = proto.SerializeToString()
    except ValueError:
        return  # over protobuf's 2 GB limit: only the file-based loader could check it
    try:
        new_session(data, options)
    except Exception as exc:
        reason = describe_exception(exc).removeprefix("onnxruntime: ")
        raise ModelLoadError(f"onnxruntime cannot load this model: {reason}", path) from None


_PROTOBUF_LIMIT = 2**31 - 1
_SPARSE_CHECK_FROM = 64 << 20  # small files may well sit in a single sparse block


def _load_external_data(proto: onnx.ModelProto, path: Path) -> None:
    from onnx import TensorProto
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    base = path.parent
    total = 0
    sparse: list[str] = []
    for tensor in _all_tensors(proto):
        if not uses_external_data(tensor):
            continue
        try:
            info = ExternalDataInfo(tensor)
            offset, length = int(info.offset or 0), int(info.length or 0)
        except (ValueError, TypeError) as exc:
            raise ModelLoadError(f"tensor '{tensor.name}' has malformed external data ({exc})", path) from None
        location = (base / info.location).resolve()
        if base.resolve() not in location.parents:
            raise ModelLoadError(f"external data '{info.location}' points outside the model's folder", path)
        if not location.exists():
            raise ModelLoadError(
                f"missing external data file '{info.location}' (needed by tensor '{tensor.name}')", path
            )
        info_stat = check_regular_file(location, ModelLoadError)
        size = info_stat.st_size
        # The tensor's own dims say how many bytes it must hold; never read more than that.
        try:
            declared = _tensor_nbytes(tensor)
        except (KeyError, TypeError, ValueError):
            raise ModelLoadError(f"tensor '{tensor.name}' has an unknown data type {tensor.data_type}", path) from None
        if offset < 0 or length < 0 or (length and length != declared):
            raise ModelLoadError(
                f"tensor '{tensor.name}' declares {length} bytes of external data at offset {offset}, but its "
                f"shape {list(tensor.dims)} needs {declared}",
                path,
            )
        if size < offset + declared:
            raise ModelLoadError(
                f"external data file '{info.location}' is truncated: tensor '{tensor.name}' needs "
                f"{offset + declared} bytes, the file has {size}",
                path,
            )
        stored = getattr(info_stat, "st_blocks", None)
        if stored is not None and declared > _SPARSE_CHECK_FROM and stored * 512 < declared // 10:
            sparse.append(
                f"external data file '{info.location}' is sparse: tensor '{tensor.name}' declares "
                f"{human_bytes(declared)} but the file stores {human_bytes(stored * 512)} on disk"
            )
        total += declared
    if total > _PROTOBUF_LIMIT:
        raise ModelLoadError(
            f"the weights in external data total {human_bytes(total)}; models over 2 GB are not supported yet", path
        )
    if sparse:  # gigabytes of zeros that were never written: a bomb, not weights
        raise ModelLoadError(sparse[0], path)
    check_allocation(total, "the external data", path, budget=memory_budget(total), error=ModelLoadError)
    for tensor in _all_tensors(proto):
        if not uses_external_data(tensor):
            continue
        info = ExternalDataInfo(tensor)
        declared = _tensor_nbytes(tensor)
        try:
            with open_regular((base / info.location).resolve(), ModelLoadError) as handle:
                handle.seek(int(info.offset or 0))
                data = handle.read(declared)  # exactly what the shape needs, whatever "length" says
        except OSError as exc:
            raise ModelLoadError(f"cannot read external data ({_first_line(exc)})", path) from None
        if len(data) != declared:
            raise ModelLoadError(f"external data for tensor '{tensor.name}' ends early", path)
        tensor.raw_data = data
        tensor.data_location = TensorProto.DEFAULT
        del tensor.external_data[:]


def _tensor_nbytes(tensor: onnx.TensorProto) -> int:
    import numpy as np
    from onnx import helper

    nbytes = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    for dim in tensor.dims:
        nbytes *= max(int(dim), 0)
    return nbytes


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
    # Each route loads under the pickle guard: only --trust-pickle lets a pickle ask for code.
    kind = _sniff_torch_archive(path)
    if kind == "torchscript":
        return _load_torchscript(path, trust_pickle=trust_pickle)
    if kind == "export":
        return _load_exported_program(path, trust_pickle=trust_pickle)
    return _load_checkpoint(path, trust_pickle=trust_pickle, arch=arch)


def _sniff_torch_archive(path: Path) -> str:
    try:
        with open_regular(path, ModelLoadError) as handle:
            if not zipfile.is_zipfile(handle):
                return "pickle"
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return "pickle"  # torch.load reports the damage in its own words
    check_zip_expansion(members, path, ModelLoadError)
    names = [m.filename for m in members]
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    return "pickle"


def check_zip_expansion(members: list[zipfile.ZipInfo], path: Path, error: type[WorkbenchError]) -> None:
    """Refuse an archive whose members inflate far beyond their stored bytes (a decompression bomb)."""
    from workbench.limits import COMPRESSION_CHECK_FROM, MAX_COMPRESSION_RATIO

    expanded = sum(max(m.file_size, 0) for m in members)
    stored = sum(max(m.compress_size, 0) for m in members)
    if expanded > COMPRESSION_CHECK_FROM and expanded > MAX_COMPRESSION_RATIO * max(stored, 1):
        raise error(
            f"the archive declares {human_bytes(expanded)} packed into {human_bytes(stored)}: refusing what looks "
            "like a decompression bomb",
            path,
        )


def _load_torchscript(path: Path, *, trust_pickle: bool) -> Model:
    import torch

    try:
        # TorchScript's own C++ unpickler knows a fixed set of types and runs no Python; guarded anyway.
        with refuse_pickled_code(path, trusted=trust_pickle):
            module = torch.jit.load(str(path), map_location="cpu")
    except UntrustedPickleError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load TorchScript archive ({_first_line(exc)})", path) from None
    # TorchScript keeps no input shapes; the user supplies them (inputs: one float tensor of unknown rank).
    return Model(
        name=path.stem,
        inputs=(TensorSpec("input", "float32", (None, None, None, None)),),
        torch_module=set_eval(module),
        source=path,
    )


def _load_exported_program(path: Path, *, trust_pickle: bool) -> Model:
    import torch

    if not trust_pickle:
        # torch.export.load unpickles (weights, example inputs, opaque constants): it runs only on request.
        raise ModelLoadError(
            "refused: a torch.export program is unpickled when loaded, which can run code; if you trust this "
            "file, pass --trust-pickle (or export it to ONNX and open that)",
            path,
        )
    try:
        # torch.export.load unpickles with weights_only=False inside (weights, example inputs, opaque
        # constants): the guard refuses any pickle that asks for code, unless the user trusts the file.
        with refuse_pickled_code(path, trusted=trust_pickle), open_regular(path, ModelLoadError) as handle:
            program = torch.export.load(handle)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load torch.export program ({_first_line(exc)})", path) from None
    inputs = []
    for spec, example in zip(_user_input_names(program), program.example_inputs[0], strict=False):
        if not isinstance(example, torch.Tensor):
            raise ModelLoadError(f"example input '{spec}' is a {type(example).__name__}, not a tensor", path)
        inputs.append(TensorSpec(spec, str(example.dtype).removeprefix("torch."), tuple(example.shape)))
    return Model(name=path.stem, inputs=tuple(inputs), torch_module=program.module(), source=path)


def _user_input_names(program: Any) -> list[str]:
    from torch.export.graph_signature import InputKind

    return [s.arg.name for s in program.graph_signature.input_specs if s.kind == InputKind.USER_INPUT]


def _load_checkpoint(path: Path, *, trust_pickle: bool, arch: str | None) -> Model:
    import pickle

    import torch

    try:
        with refuse_pickled_code(path, trusted=trust_pickle), open_regular(path, ModelLoadError) as handle:
            obj = torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = _unsafe_globals(path) or _globals_named_in(str(exc))
        if not unsafe:
            raise ModelLoadError(f"not a PyTorch file, or it is corrupt ({_first_line(exc)})", path) from None
        if not trust_pickle:
            raise untrusted_pickle_error(unsafe, path) from None
        obj = _load_trusted_pickle(path)
    except WorkbenchError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"not a PyTorch file, or it is truncated ({_first_line(exc)})", path) from None

    from torch import nn

    if isinstance(obj, nn.Module):
        return _model_from_module(set_eval(obj), path)
    return _model_from_state_dict(obj, path, arch)


def _unsafe_globals(path: Path) -> list[str]:
    import torch

    try:
        with open_regular(path, ModelLoadError) as handle:
            return list(torch.serialization.get_unsafe_globals_in_checkpoint(handle))
    except Exception:
        return []


def _globals_named_in(message: str) -> list[str]:
    """What torch's weights-only unpickler refused, from its message (legacy files give no other way)."""
    import re

    if "Weights only load failed" not in message:
        return []
    return list(dict.fromkeys(re.findall(r"GLOBAL ([\w.]+)", message)))


def _load_trusted_pickle(path: Path) -> Any:
    import torch

    try:
        with open_regular(path, ModelLoadError) as handle:
            return torch.load(handle, map_location="cpu", weights_only=False)  # the user trusts this file
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
    _check_tensors_backed(state, path)
    arch_name = arch_name or meta.get("arch")
    declared_shape = meta.get("input_shape")
    if not isinstance(meta.get("arch_kwargs") or {}, dict) or (
        declared_shape is not None
        and not (
            isinstance(declared_shape, (list, tuple))
            and 1 <= len(declared_shape) <= 8
            and all(isinstance(d, int) and 0 < d < 2**31 for d in declared_shape)
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
        _check_fits_before_building(architecture, kwargs, state, path)
        module = architecture.build(**kwargs)
        module.load_state_dict(state, strict=True)
    except WorkbenchError as exc:
        raise ModelLoadError(exc.reason, path) from None
    except (RuntimeError, TypeError, ValueError) as exc:
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


def _check_tensors_backed(state: Mapping[str, Any], path: Path) -> None:
    """Tensors may be views (strides of 0) that declare far more elements than the file stores; the
    network rebuilt from them would allocate every declared byte."""
    declared = sum(t.numel() * t.element_size() for t in state.values())
    stored = path.stat().st_size
    if declared > 4 * stored + (16 << 20):
        raise ModelLoadError(
            f"its tensors declare {human_bytes(declared)} but the file holds {human_bytes(stored)}", path
        )


def _check_fits_before_building(
    architecture: Any, kwargs: Mapping[str, Any], state: Mapping[str, Any], path: Path
) -> None:
    """Build the network on torch's meta device (no memory) and compare it with the state_dict, so
    metadata such as ``num_classes: 13000000`` fails here instead of allocating gigabytes."""
    import torch

    try:
        with torch.device("meta"):
            skeleton = architecture.build(**kwargs)
    except (RuntimeError, TypeError, ValueError, OverflowError) as exc:
        raise ModelLoadError(
            f"cannot build {architecture.name} with {dict(kwargs)} ({_first_line(exc)})", path
        ) from None
    expected = skeleton.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [k for k in expected if k in state and tuple(expected[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        detail = (
            f"missing {', '.join(missing[:3])}"
            if missing
            else f"unexpected {', '.join(unexpected[:3])}"
            if unexpected
            else f"{wrong[0]} is {list(state[wrong[0]].shape)} in the file, {list(expected[wrong[0]].shape)} in "
            f"{architecture.name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
        )
        raise ModelLoadError(f"state_dict does not fit architecture {architecture.name} ({detail})", path)
    total = sum(t.numel() * t.element_size() for t in skeleton.state_dict(keep_vars=True).values())
    check_allocation(total, f"building {architecture.name}", path, error=ModelLoadError)


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
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()  # torch colours some messages
    return text.splitlines()[0][:300] if text else type(exc).__name__
