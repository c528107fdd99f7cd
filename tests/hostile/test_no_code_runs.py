"""Class 1: no code from a file runs unless the user passed --trust-pickle.

Each route that can unpickle gets a real payload that writes a marker file. A control run proves the
payload is live (the unsafe loader does write the marker); then every workbench command that reads the
file must refuse it in one line, and the marker must never appear.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

COMMANDS = ("info", "eval", "export", "apply")


class Payload:
    """Unpickling this runs ``code`` (it asks for ``builtins.exec``)."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def marker_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('payload ran')"


def _linear_program(path: Path) -> None:
    import torch

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)

    torch.export.save(torch.export.export(Linear(), (torch.zeros(2, 4),)), path)


def _rewrite_zip(source: Path, target: Path, change) -> None:
    with zipfile.ZipFile(source) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    change(members)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _torch_payload(code: str) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save(Payload(code), buffer)
    return buffer.getvalue()


def make_pt2(folder: Path, route: str, marker: Path, suffix: str = ".pt2") -> Path:
    """A torch.export archive whose weights, example inputs or constants are a pickled payload."""
    from torch.export.pt2_archive.constants import OPAQUE_OBJ_FILENAME_PREFIX

    good = folder / "program_clean.pt2"
    if not good.exists():
        _linear_program(good)
    code = marker_code(marker)

    def change(members: dict[str, bytes]) -> None:
        root = next(n for n in members if n.endswith("archive_format")).split("/")[0]
        if route == "weights":
            key = f"{root}/data/weights/model_weights_config.json"
            config = json.loads(members[key])
            entry = next(iter(config["config"].values()))
            entry["use_pickle"] = True
            members[key] = json.dumps(config).encode()
            members[f"{root}/data/weights/{entry['path_name']}"] = _torch_payload(code)
        elif route == "sample_inputs":
            members[f"{root}/data/sample_inputs/model.pt"] = _torch_payload(code)
        else:  # an opaque constant, which torch reads with plain pickle.loads
            name = f"{OPAQUE_OBJ_FILENAME_PREFIX}0"
            members[f"{root}/data/constants/model_constants_config.json"] = json.dumps(
                {"config": {"obj": {"path_name": name, "is_param": False, "use_pickle": True, "tensor_meta": None}}}
            ).encode()
            members[f"{root}/data/constants/{name}"] = pickle.dumps(Payload(code))

    target = folder / f"program_{route}{suffix}"
    _rewrite_zip(good, target, change)
    good.unlink()
    return target


def make_pickle_checkpoint(folder: Path, kind: str, marker: Path) -> Path:
    import torch

    code = marker_code(marker)
    if kind == "zip":  # torch.save's default format, .pt
        path = folder / "pickled.pt"
        path.write_bytes(_torch_payload(code))
    elif kind == "legacy":  # torch's pre-1.6 format, .pth
        path = folder / "legacy.pth"
        with open(path, "wb") as handle:
            torch.save(Payload(code), handle, _use_new_zipfile_serialization=False)
    else:  # a bare protocol-0 pickle, .ckpt: no PROTO opcode, starts straight with GLOBAL
        path = folder / "raw.ckpt"
        path.write_bytes(pickle.dumps(Payload(code), protocol=0))
    return path


def make_torchscript(folder: Path, marker: Path) -> Path:
    """A TorchScript archive whose constants.pkl is a Python pickle that asks for exec."""
    import torch

    clean = folder / "script_clean.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), clean)
    target = folder / "script.pt"

    def change(members: dict[str, bytes]) -> None:
        for name in members:
            if name.endswith("constants.pkl") or name.endswith("/data.pkl"):
                members[name] = pickle.dumps(Payload(marker_code(marker)), protocol=2)

    _rewrite_zip(clean, target, change)
    clean.unlink()
    return target


def _support_files(folder: Path) -> tuple[Path, Path]:
    """Data and a recipe for eval / apply on a model with one [N, 4] input."""
    data = folder / "data.npz"
    np.savez(data, x=np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32))
    recipe = folder / "recipe.json"
    recipe.write_text(
        json.dumps(
            {
                "format": "model-workbench-recipe",
                "version": 1,
                "base": {"name": "model", "input_shapes": {"x": [1, 4]}},
                "steps": [{"plugin": "magnitude_prune", "params": {"sparsity": 0.5}}],
            }
        )
    )
    return data, recipe


def _command(command: str, model: Path, data: Path, recipe: Path, out: Path) -> list[str | Path]:
    return {
        "info": ["info", model],
        "eval": ["eval", model, "--data", data, "--input-shape", "1,4"],
        "export": ["export", model, "--device", "x86-server", "-o", out, "--input-shape", "1,4"],
        "apply": ["apply", "--recipe", recipe, model, "-o", out / "out.onnx"],
    }[command]


MODEL_ROUTES = {
    "pt2-weights": lambda folder, marker: make_pt2(folder, "weights", marker),
    "pt2-sample-inputs": lambda folder, marker: make_pt2(folder, "sample_inputs", marker),
    "pt2-opaque-constant": lambda folder, marker: make_pt2(folder, "opaque", marker),
    "pt2-renamed-pt": lambda folder, marker: make_pt2(folder, "weights", marker, suffix=".pt"),
    "pickle-zip-pt": lambda folder, marker: make_pickle_checkpoint(folder, "zip", marker),
    "pickle-legacy-pth": lambda folder, marker: make_pickle_checkpoint(folder, "legacy", marker),
    "pickle-protocol0-ckpt": lambda folder, marker: make_pickle_checkpoint(folder, "raw", marker),
    "torchscript-constants": lambda folder, marker: make_torchscript(folder, marker),
}

UNSAFE_LOADERS = {
    "pt2": "import torch; torch.export.load({path!r})",
    "pickle": "import torch; torch.load({path!r}, weights_only=False)",
    "torchscript": (
        "import zipfile, pickle; z = zipfile.ZipFile({path!r}); "
        "[pickle.loads(z.read(n)) for n in z.namelist() if n.endswith('constants.pkl')]"
    ),
}


def _unsafe_loader(route: str) -> str:
    return UNSAFE_LOADERS["pt2" if route.startswith("pt2") else route.split("-")[0]]


@pytest.mark.parametrize("route", sorted(MODEL_ROUTES))
def test_model_file_payload_never_runs(sandbox, route: str):
    # setup: the payload file, and proof that the payload is live
    marker = sandbox.root / "MARKER"
    model = MODEL_ROUTES[route](sandbox.files, marker)
    sandbox.prove_live(_unsafe_loader(route).format(path=str(model)), marker)
    data, recipe = _support_files(sandbox.files)
    unchanged = sandbox.snapshot()

    # execute + assert: every command refuses in one line and the payload never runs
    for command in COMMANDS:
        run = sandbox.cli(*_command(command, model, data, recipe, sandbox.root / "out"))
        sandbox.assert_refused(run, model)
        assert not marker.exists(), f"{command}: the payload ran\n{run.describe()}"
        assert not (sandbox.root / "out").exists() or not any((sandbox.root / "out").iterdir()), run.describe()
    unchanged()


def test_window_open_refuses_every_payload_route(sandbox):
    marker = sandbox.root / "MARKER"
    models = [make(sandbox.files, marker) for make in MODEL_ROUTES.values()]
    run, results = sandbox.open_in_window(*models)
    assert not marker.exists(), run.describe()
    for result, model in zip(results, models, strict=True):
        assert not result.get("hung") and not result["opened"], result
        assert model.name in result["notice"], result
        assert "refused" in result["notice"] or "cannot" in result["notice"], result
        assert not result["details"], f"a traceback was shown for {model.name}: {result['details'][:300]}"
    assert run.peak_rss_mb < 1024


def test_trust_pickle_is_the_only_way_to_run_a_pickled_module(sandbox):
    marker = sandbox.root / "MARKER"
    model = make_pickle_checkpoint(sandbox.files, "zip", marker)
    refused = sandbox.cli("info", model)
    sandbox.assert_refused(refused, model, reason="--trust-pickle")
    assert not marker.exists()
    trusted = sandbox.cli("info", model, "--trust-pickle")
    assert marker.exists(), trusted.describe()  # the flag did what it says: the user chose to run it


def test_npz_with_pickled_objects_is_refused(sandbox):
    marker = sandbox.root / "MARKER"
    data = sandbox.files / "objects.npz"
    np.savez(data, x=np.array([Payload(marker_code(marker))], dtype=object))
    sandbox.prove_live(f"import numpy as np; np.load({str(data)!r}, allow_pickle=True)['x']", marker)
    model = sandbox.files / "model.onnx"
    sandbox.tiny_onnx(model)
    unchanged = sandbox.snapshot()
    run = sandbox.cli("eval", model, "--data", data)
    sandbox.assert_refused(run, data, reason="Python objects")
    assert not marker.exists()
    unchanged()


def test_recipe_with_a_python_tag_is_refused(sandbox):
    marker = sandbox.root / "MARKER"
    recipe = sandbox.files / "recipe.yaml"
    recipe.write_text(f"format: !!python/object/apply:builtins.exec [{marker_code(marker)!r}]\n")
    sandbox.prove_live(f"import yaml; yaml.unsafe_load(open({str(recipe)!r}))", marker)
    model = sandbox.files / "model.onnx"
    sandbox.tiny_onnx(model)
    unchanged = sandbox.snapshot()
    run = sandbox.cli("apply", "--recipe", recipe, model, "-o", sandbox.root / "out.onnx")
    sandbox.assert_refused(run, recipe)
    assert not marker.exists() and not (sandbox.root / "out.onnx").exists()
    unchanged()


def test_project_artifact_with_a_payload_is_refused(sandbox):
    import sqlite3

    import torch

    from workbench.archs import get_architecture
    from workbench.fileio import sha256_bytes
    from workbench.loading import load_model
    from workbench.project import Project

    # setup: a real project whose baseline keeps torch weights; swap them for a payload
    checkpoint = sandbox.files / "lenet.pt"
    module = get_architecture("lenet5").build(num_classes=10, in_channels=1)
    torch.save(
        {"arch": "lenet5", "arch_kwargs": {"num_classes": 10, "in_channels": 1}, "state_dict": module.state_dict()},
        checkpoint,
    )
    folder = sandbox.root / "project"
    Project.create(folder, load_model(checkpoint, remember_shapes=False)).close()
    marker = sandbox.root / "MARKER"
    payload = _torch_payload(marker_code(marker))
    digest = sha256_bytes(payload)
    (folder / "artifacts" / f"{digest}.pt").write_bytes(payload)
    with sqlite3.connect(folder / "project.db") as db:
        db.execute("UPDATE variants SET torch_sha=?", (digest,))
    db.close()

    # execute
    run = sandbox.cli("export", folder, "--device", "x86-server", "-o", sandbox.root / "out")

    # assert
    sandbox.assert_refused(run, folder, reason="cannot be loaded")
    assert not marker.exists()
    control = sandbox.python(
        f"import torch; torch.load({str(folder / 'artifacts' / f'{digest}.pt')!r}, weights_only=False)"
    )
    assert marker.exists(), control.describe()  # the artifact really was a live payload


def test_a_clean_torch_export_program_loads_only_when_trusted(sandbox):
    program = sandbox.files / "clean.pt2"
    _linear_program(program)
    # torch.export.load unpickles, so even a clean program waits for the user's explicit trust
    sandbox.assert_refused(sandbox.cli("info", program), program, reason="--trust-pickle")
    sandbox.assert_succeeded(sandbox.cli("info", program, "--trust-pickle"))
