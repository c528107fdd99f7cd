"""Projects: a folder with an SQLite database of variants and content-addressed artifacts.

Every applied step is a Variant (id, parent, plugin, params, metrics, artifact). Artifacts are written
atomically under their sha256 before the database row that names them is committed, so a crash at any
point leaves the project as it was. Applying the same plugin and params to the same parent reuses the
stored variant.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.datasets import DatasetRef
from workbench.errors import ProjectError
from workbench.evaluate import Metrics
from workbench.fileio import atomic_write_bytes, current_umask, sha256_bytes
from workbench.model import ArchRef, InputShapes, Model, TensorSpec
from workbench.plugin import Plugin, Task, run_plugin
from workbench.recipe import Recipe, RecipeBase, RecipeStep

DB_NAME = "project.db"
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE variants (
    id TEXT PRIMARY KEY,
    parent_id TEXT REFERENCES variants(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    plugin_id TEXT,
    params_json TEXT NOT NULL DEFAULT '{}',
    cache_key TEXT UNIQUE,
    onnx_sha TEXT NOT NULL,
    torch_sha TEXT,
    arch_json TEXT,
    inputs_json TEXT NOT NULL,
    metrics_json TEXT,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Variant:
    id: str
    parent_id: str | None
    name: str
    plugin_id: str | None
    params: dict[str, Any]
    onnx_sha: str
    torch_sha: str | None
    metrics: Metrics | None
    created_at: float

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


def cache_key(parent_id: str, plugin_id: str, params: dict[str, Any]) -> str:
    text = json.dumps({"parent": parent_id, "plugin": plugin_id, "params": params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class Project:
    def __init__(self, folder: Path, connection: sqlite3.Connection) -> None:
        self.folder = folder
        self._db = connection

    # --- create / open ----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | Path,
        model: Model,
        *,
        dataset: DatasetRef | None = None,
        source_sha256: str | None = None,
    ) -> Project:
        """Make a new project whose root variant is ``model``; the folder appears complete or not at all."""
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ProjectError("already exists and is not an empty folder", folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.creating-"))
        try:
            staging.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would hide the project from others
            connection = sqlite3.connect(staging / DB_NAME, check_same_thread=False)
            connection.executescript(_SCHEMA)
            project = cls(staging, connection)
            meta = {
                "schema_version": str(SCHEMA_VERSION),
                "name": model.name,
                "created_at": str(time.time()),
                "source_name": model.source.name if model.source else model.name,
                "source_sha256": source_sha256 or "",
                "dataset": dataset.model_dump_json() if dataset else "",
            }
            with connection:
                connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
            project._insert_variant(model, parent_id=None, name="baseline", plugin_id=None, params={}, key=None)
            connection.close()
            if folder.exists():
                folder.rmdir()
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return cls.open(folder)

    @classmethod
    def open(cls, folder: str | Path) -> Project:
        folder = Path(folder)
        db = folder / DB_NAME
        if not db.is_file():
            raise ProjectError(f"not a workbench project (no {DB_NAME})", folder)
        try:
            # One job at a time uses the project, but not always on the thread that opened it (GUI workers).
            connection = sqlite3.connect(db, check_same_thread=False)
            connection.execute("PRAGMA foreign_keys = ON")
            version = connection.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ProjectError(f"project database is damaged ({exc})", folder) from None
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise ProjectError(f"unsupported project version {version and version[0]}", folder)
        return cls(folder, connection)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- metadata ---------------------------------------------------------------------------------
    def meta(self, key: str) -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else ""

    @property
    def dataset(self) -> DatasetRef | None:
        text = self.meta("dataset")
        return DatasetRef.model_validate_json(text) if text else None

    def set_dataset(self, ref: DatasetRef | None) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('dataset', ?)", (ref.model_dump_json() if ref else "",)
            )

    # --- variants ---------------------------------------------------------------------------------
    def variants(self) -> list[Variant]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM variants ORDER BY created_at, rowid").fetchall()
        return [_row_to_variant(row) for row in rows]

    def get(self, variant_id: str) -> Variant:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM variants WHERE id=?", (variant_id,)).fetchone()
        if row is None:
            raise ProjectError(f"no variant '{variant_id}' in this project", self.folder)
        return _row_to_variant(row)

    @property
    def root(self) -> Variant:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM variants WHERE parent_id IS NULL").fetchone()
        if row is None:
            raise ProjectError("project has no baseline variant", self.folder)
        return _row_to_variant(row)

    def lineage(self, variant_id: str) -> list[Variant]:
        """Root first, ``variant_id`` last."""
        chain = [self.get(variant_id)]
        while chain[-1].parent_id is not None:
            chain.append(self.get(chain[-1].parent_id))
        return chain[::-1]

    def load_model(self, variant_id: str) -> Model:
        import onnx

        row = self._db.execute(
            "SELECT name, onnx_sha, torch_sha, arch_json, inputs_json FROM variants WHERE id=?", (variant_id,)
        ).fetchone()
        if row is None:
            raise ProjectError(f"no variant '{variant_id}' in this project", self.folder)
        name, onnx_sha, torch_sha, arch_json, inputs_json = row
        inputs = json.loads(inputs_json)
        specs = tuple(TensorSpec(s["name"], s["dtype"], tuple(s["shape"])) for s in inputs["specs"])
        shapes = InputShapes({k: tuple(v) for k, v in inputs["shapes"].items()}, inputs["source"])
        proto = onnx.load_from_string(self._read_artifact(onnx_sha, ".onnx"))
        module, arch = None, None
        if torch_sha and arch_json:
            arch = ArchRef(**json.loads(arch_json))
            module = self._load_torch_artifact(torch_sha, arch)
        return Model(
            name=name,
            inputs=specs,
            onnx_proto=proto,
            torch_module=module,
            arch=arch,
            source=self.folder / "artifacts" / f"{onnx_sha}.onnx",
            input_shapes=shapes,
        )

    def artifact_path(self, variant_id: str) -> Path:
        return self.folder / "artifacts" / f"{self.get(variant_id).onnx_sha}.onnx"

    def apply(
        self,
        parent_id: str,
        plugin: Plugin,
        params: Any,
        task: Task | None = None,
        *,
        name: str | None = None,
    ) -> Variant:
        """Apply ``plugin`` to a variant and store the result; identical requests reuse the stored one."""
        task = task or Task()
        parsed = plugin.parse_params(params)
        param_values = parsed.model_dump(mode="json")
        key = cache_key(parent_id, plugin.id, param_values)
        cached = self._db.execute("SELECT id FROM variants WHERE cache_key=?", (key,)).fetchone()
        if cached:
            return self.get(cached[0])
        parent = self.load_model(parent_id)
        result = run_plugin(plugin, parent, parsed, task.sub(0.0, 0.9))
        task.check()  # a cancel during apply leaves no variant behind
        return self._insert_variant(
            result,
            parent_id=parent_id,
            name=name or _default_name(plugin, param_values),
            plugin_id=plugin.id,
            params=param_values,
            key=key,
        )

    def set_metrics(self, variant_id: str, metrics: Metrics) -> None:
        with self._db:
            self._db.execute("UPDATE variants SET metrics_json=? WHERE id=?", (metrics.model_dump_json(), variant_id))

    def save_sensitivity(self, variant_id: str, report) -> None:
        """Keep a variant's sensitivity sweep (a workbench.sensitivity.SensitivityReport) with the project."""
        self.get(variant_id)
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"sensitivity:{variant_id}", report.model_dump_json())
            )

    def sensitivity(self, variant_id: str):
        from workbench.sensitivity import SensitivityReport

        text = self.meta(f"sensitivity:{variant_id}")
        return SensitivityReport.model_validate_json(text) if text else None

    def rename(self, variant_id: str, name: str) -> None:
        self.get(variant_id)
        with self._db:
            self._db.execute("UPDATE variants SET name=? WHERE id=?", (name, variant_id))

    def delete(self, variant_id: str) -> None:
        """Delete a variant and its descendants (never the baseline)."""
        if self.get(variant_id).is_root:
            raise ProjectError("the baseline variant cannot be deleted", self.folder)
        with self._db:
            self._db.execute("DELETE FROM variants WHERE id=?", (variant_id,))

    def recipe(self, variant_id: str) -> Recipe:
        chain = self.lineage(variant_id)
        root_inputs = json.loads(
            self._db.execute("SELECT inputs_json FROM variants WHERE id=?", (chain[0].id,)).fetchone()[0]
        )
        return Recipe(
            base=RecipeBase(
                name=self.meta("source_name"),
                sha256=self.meta("source_sha256") or None,
                input_shapes=root_inputs["shapes"],
                dataset=self.dataset,
            ),
            steps=[RecipeStep(plugin=v.plugin_id or "", params=v.params) for v in chain[1:]],
            result_sha256=chain[-1].onnx_sha,
        )

    # --- storage ----------------------------------------------------------------------------------
    def _insert_variant(
        self,
        model: Model,
        *,
        parent_id: str | None,
        name: str,
        plugin_id: str | None,
        params: dict[str, Any],
        key: str | None,
    ) -> Variant:
        onnx_sha = self._write_artifact(model.onnx_bytes(), ".onnx")
        torch_sha, arch_json = None, None
        if model.torch_module is not None and model.arch is not None:
            torch_sha = self._write_artifact(_state_dict_bytes(model), ".pt")
            arch_json = json.dumps(
                {"name": model.arch.name, "kwargs": model.arch.kwargs, "structure": model.arch.structure},
                sort_keys=True,
            )
        shapes = model.input_shapes or InputShapes(model.concrete_shapes(), "model")
        inputs = {
            "specs": [{"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in model.inputs],
            "shapes": {k: list(v) for k, v in shapes.shapes.items()},
            "source": shapes.source,
        }
        variant_id = uuid.uuid4().hex[:10]
        with self._db:
            self._db.execute(
                f"INSERT INTO variants ({_COLUMNS}, arch_json, inputs_json) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    variant_id,
                    parent_id,
                    name,
                    plugin_id,
                    json.dumps(params, sort_keys=True),
                    key,
                    onnx_sha,
                    torch_sha,
                    None,
                    time.time(),
                    arch_json,
                    json.dumps(inputs),
                ),
            )
        return self.get(variant_id)

    def _write_artifact(self, data: bytes, suffix: str) -> str:
        digest = sha256_bytes(data)
        path = self.folder / "artifacts" / f"{digest}{suffix}"
        if not path.exists():
            atomic_write_bytes(path, data)
        return digest

    def _read_artifact(self, digest: str, suffix: str) -> bytes:
        path = self.folder / "artifacts" / f"{digest}{suffix}"
        try:
            data = path.read_bytes()
        except OSError:
            raise ProjectError(f"artifact {path.name} is missing", self.folder) from None
        if sha256_bytes(data) != digest:
            raise ProjectError(f"artifact {path.name} is damaged (its hash does not match)", self.folder)
        return data

    def _load_torch_artifact(self, digest: str, arch: ArchRef):
        import torch

        from workbench.archs import rebuild

        state = torch.load(io.BytesIO(self._read_artifact(digest, ".pt")), map_location="cpu", weights_only=True)
        return rebuild(arch.name, arch.kwargs, arch.structure, state)


_COLUMNS = "id, parent_id, name, plugin_id, params_json, cache_key, onnx_sha, torch_sha, metrics_json, created_at"


def _row_to_variant(row: tuple) -> Variant:
    vid, parent, name, plugin_id, params_json, _key, onnx_sha, torch_sha, metrics_json, created = row
    return Variant(
        id=vid,
        parent_id=parent,
        name=name,
        plugin_id=plugin_id,
        params=json.loads(params_json),
        onnx_sha=onnx_sha,
        torch_sha=torch_sha,
        metrics=Metrics.model_validate_json(metrics_json) if metrics_json else None,
        created_at=created,
    )


def _state_dict_bytes(model: Model) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({k: v.detach().clone() for k, v in model.torch_module.state_dict().items()}, buffer)  # type: ignore[union-attr]
    return buffer.getvalue()


def _default_name(plugin: Plugin, params: dict[str, Any]) -> str:
    """The plugin's title and the params that differ from its defaults, e.g. "Magnitude pruning (sparsity=0.9)"."""
    try:
        defaults = plugin.Params().model_dump(mode="json")
    except Exception:
        defaults = {}
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if defaults.get(k, object()) != v and v not in ({}, []))
    return f"{plugin.title} ({shown})" if shown else plugin.title
