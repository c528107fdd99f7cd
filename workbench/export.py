"""Export a variant as a bundle for a target runtime; for now "CPU (ONNX Runtime)".

The bundle folder is written under a temporary name and renamed into place, so a failed or
cancelled export leaves nothing behind. The model is reloaded in onnxruntime before the rename.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from workbench.errors import WorkbenchError
from workbench.fileio import atomic_write_bytes, atomic_write_text, sha256_bytes
from workbench.plugin import Task
from workbench.project import Project

CPU_ORT = "cpu-onnxruntime"


def export_variant(project: Project, variant_id: str, out_dir: str | Path, task: Task | None = None) -> Path:
    """Write ``out_dir/<variant name>-<id>/`` with model.onnx, manifest.json and recipe.yaml."""
    from workbench.evaluate import make_session

    task = task or Task()
    variant = project.get(variant_id)
    model = project.load_model(variant_id)
    out_dir = Path(out_dir)
    target = out_dir / f"{_safe(variant.name)}-{variant.id}"
    if target.exists():
        raise WorkbenchError("an export of this variant already exists there", target)
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".{target.name}.exporting-"))
    try:
        task.report(0.1, "writing model.onnx")
        data = model.onnx_bytes()
        atomic_write_bytes(staging / "model.onnx", data)
        task.report(0.4, "checking it loads in onnxruntime")
        session = make_session(data)
        recipe = project.recipe(variant_id)
        recipe.save(staging / "recipe.yaml")
        manifest = {
            "device": CPU_ORT,
            "runtime": "onnxruntime",
            "precision": "float32",
            "variant": {"id": variant.id, "name": variant.name},
            "inputs": [{"name": i.name, "dtype": i.type, "shape": i.shape} for i in session.get_inputs()],
            "outputs": [{"name": o.name, "dtype": o.type, "shape": o.shape} for o in session.get_outputs()],
            "input_shapes_measured": model.input_shapes.shapes if model.input_shapes else None,
            "metrics": variant.metrics.model_dump(mode="json") if variant.metrics else None,
            "files": {
                "model.onnx": sha256_bytes(data),
                "recipe.yaml": sha256_bytes((staging / "recipe.yaml").read_bytes()),
            },
        }
        atomic_write_text(staging / "manifest.json", json.dumps(manifest, indent=2, default=str))
        task.check()
        staging.chmod(0o755)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    task.report(1.0, f"exported to {target}")
    return target


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-")
    return "-".join(filter(None, cleaned.split("-")))[:60] or "variant"
