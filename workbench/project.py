"""Projects: a folder with an SQLite database of variants and content-addressed artifacts.

Every applied step is a Variant (id, parent, plugin, params, metrics, artifact). A variant becomes
visible complete or not at all: its artifacts are written atomically under their sha256 and measured
before the one database row that names them (with its metrics) is committed, so a crash at any point
leaves the project as it was. Applying the same plugin and params to the same parent reuses the stored
variant.

A project file may be damaged or hand-edited. Opening one validates every row and the lineage: a
variant whose fields cannot be read, whose parent is missing, or whose ancestry loops is set aside with
the reason (see :attr:`Project.problems`), and every walk over the lineage is bounded. What a killed
writer left behind (temporary files, artifacts no row names) is removed when no other process has the
project open.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from workbench.compaction import NameMap, restore_names
from workbench.datasets import DatasetRef, evaluation_ref, step_data
from workbench.errors import ProjectError, describe_exception
from workbench.evaluate import Metrics
from workbench.feeds import InputSpec
from workbench.fileio import (
    TMP_SUFFIX,
    FolderLock,
    atomic_write_bytes,
    current_umask,
    remove_abandoned,
    sha256_bytes,
    staging_dir,
)
from workbench.metrics import MetricSettings
from workbench.model import ArchRef, InputShapes, Model, TensorSpec
from workbench.plugin import Plugin, Task, run_plugin
from workbench.recipe import Recipe, RecipeBase, RecipeStep

M = TypeVar("M", bound=BaseModel)

DB_NAME = "project.db"
ARTIFACTS = "artifacts"
SCHEMA_VERSION = 1
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CREATING = ".creating-"  # staging folders of Project.create, beside the project
COPYING = ".copying-"  # staging folders of Project.save_copy
Measure = Callable[[Model, Task], Metrics]
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
    created_at REAL NOT NULL,
    notes_json TEXT,
    names_json TEXT
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
    notes: tuple[str, ...] = ()  # what the step said the user must know (calibration data, fallbacks)

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
        self._lock: FolderLock | None = None
        self._broken: dict[str, str] = {}  # variant id -> why it is set aside
        self.problems: list[str] = []  # one line per broken variant, for the CLI and the window

    # --- create / open ----------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        folder: str | Path,
        model: Model,
        *,
        dataset: DatasetRef | None = None,
        source_sha256: str | None = None,
        metrics: Metrics | None = None,
        scoring: MetricSettings | None = None,
    ) -> Project:
        """Make a new project whose root variant is ``model`` (measured: ``metrics``); the folder appears
        complete or not at all. ``model.input_spec`` becomes the project's input spec."""
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise ProjectError("already exists and is not an empty folder", folder)
        remove_abandoned(folder.parent, (f".*{CREATING}*",))
        with staging_dir(folder.parent, f".{folder.name}{CREATING}") as staging:
            staging.chmod(0o777 & ~current_umask())  # mkdtemp's 0700 would hide the project from others
            connection = sqlite3.connect(staging / DB_NAME, check_same_thread=False)
            try:
                connection.executescript(_SCHEMA)
                project = cls(staging, connection)
                meta = {
                    "schema_version": str(SCHEMA_VERSION),
                    "name": model.name,
                    "created_at": str(time.time()),
                    "source_name": model.source.name if model.source else model.name,
                    "source_sha256": source_sha256 or "",
                    "dataset": evaluation_ref(dataset).model_dump_json() if dataset else "",
                    "input_spec": model.input_spec.model_dump_json() if model.input_spec is not None else "",
                    "scoring": scoring.model_dump_json() if scoring is not None else "",
                }
                with connection:
                    connection.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
                project._insert_variant(
                    model, parent_id=None, name="baseline", plugin_id=None, params={}, key=None, metrics=metrics
                )
            finally:
                connection.close()
            if folder.exists():
                folder.rmdir()
            staging.rename(folder)
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
        except sqlite3.Error as exc:
            raise ProjectError(f"project database is damaged ({exc})", folder) from None
        if version is None or str(version[0]) != str(SCHEMA_VERSION):
            connection.close()
            shown = "missing" if version is None else repr(version[0])[:40]
            raise ProjectError(f"unsupported project version ({shown}; this workbench reads {SCHEMA_VERSION})", folder)
        project = cls(folder, connection)
        try:
            project._add_notes_column()
            project._validate()
        except BaseException:
            connection.close()
            raise
        project._lock = FolderLock(folder)
        project._tidy()
        return project

    def close(self) -> None:
        self._db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def save_copy(self, target: str | Path) -> Path:
        """Copy the project to a new folder (which appears complete or not at all)."""
        import shutil

        target = Path(target)
        if target.exists():
            raise ProjectError("already exists", target)
        remove_abandoned(target.parent, (f".*{COPYING}*",))
        with staging_dir(target.parent, f".{target.name}{COPYING}") as staging:
            staging.chmod(0o777 & ~current_umask())
            copy = sqlite3.connect(staging / DB_NAME)
            try:
                self._db.backup(copy)  # a consistent snapshot, even mid-transaction elsewhere
            except sqlite3.Error as exc:
                raise ProjectError(f"could not copy the project database ({exc})", self.folder) from None
            finally:
                copy.close()
            artifacts = self.folder / ARTIFACTS
            if artifacts.is_dir():
                shutil.copytree(artifacts, staging / ARTIFACTS, ignore=shutil.ignore_patterns(f".*{TMP_SUFFIX}"))
            staging.rename(target)
        return target

    # --- database access --------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise ProjectError(f"project database is damaged or locked ({exc})", self.folder) from None

    def _row(self, sql: str, args: tuple = ()) -> tuple | None:
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def _write(self, sql: str, args: tuple = ()) -> None:
        try:
            with self._db:
                self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise ProjectError(f"could not write to the project database ({exc})", self.folder) from None

    def _add_notes_column(self) -> None:
        """Projects made before steps had notes gain the column (an additive change: old readers ignore it)."""
        columns = {str(row[1]) for row in self._rows("PRAGMA table_info(variants)")}
        if "notes_json" not in columns:
            self._write("ALTER TABLE variants ADD COLUMN notes_json TEXT")
        if "names_json" not in columns:  # artifacts stored before compaction keep their own names
            self._write("ALTER TABLE variants ADD COLUMN names_json TEXT")

    # --- validation -------------------------------------------------------------------------------
    def _validate(self) -> None:
        """Read every row and walk every lineage once; set aside what cannot be trusted, with the reason."""
        rows = self._rows(f"SELECT {_COLUMNS}, inputs_json FROM variants")
        parents: dict[str, str | None] = {}
        names: dict[str, str] = {}
        broken: dict[str, str] = {}
        for row in rows:
            vid = str(row[0])
            names[vid] = str(row[2])[:60]
            parents[vid] = None if row[1] is None else str(row[1])
            try:
                _row_to_variant(row[:-1])
                _parse_inputs(row[-1])
            except (ValueError, TypeError, KeyError, IndexError, RecursionError, ValidationError) as exc:
                broken[vid] = f"its stored fields cannot be read ({_short(exc)})"
        roots = [vid for vid, parent in parents.items() if parent is None]
        if not roots:
            raise ProjectError("project has no baseline variant", self.folder)
        for extra in roots[1:]:
            broken.setdefault(extra, "a second baseline (a variant without a parent)")
        for vid in parents:
            if vid in broken:
                continue
            seen = [vid]
            current = parents[vid]
            while current is not None:
                if current not in parents:
                    broken[vid] = f"its ancestor '{current}' is missing"
                    break
                if current in seen:
                    loop = " → ".join([*seen[seen.index(current) :], current])
                    broken[vid] = f"its lineage loops ({loop})"
                    break
                if current in broken:
                    broken[vid] = f"its ancestor '{current}' is broken"
                    break
                seen.append(current)
                current = parents[current]
        if roots[0] in broken:
            raise ProjectError(f"the baseline variant is damaged: {broken[roots[0]]}", self.folder)
        self._broken = broken
        self.problems = [f"variant {vid} ('{names[vid]}') is set aside: {why}" for vid, why in broken.items()]

    def _tidy(self) -> None:
        """Remove what killed writers left: temp files now, unreferenced artifacts when alone."""
        artifacts = self.folder / ARTIFACTS
        remove_abandoned(artifacts, (f".*{TMP_SUFFIX}",))
        remove_abandoned(self.folder, (f".*{TMP_SUFFIX}",))
        if self._lock is None:
            return
        with self._lock.alone() as alone:
            if not alone or not artifacts.is_dir():
                return
            referenced = set()
            for onnx_sha, torch_sha in self._rows("SELECT onnx_sha, torch_sha FROM variants"):
                referenced.add(f"{onnx_sha}.onnx")
                referenced.add(f"{torch_sha}.pt")
            for path in artifacts.iterdir():
                named = _SHA256.match(path.stem) and path.suffix in (".onnx", ".pt")
                if named and path.name not in referenced and path.is_file():
                    path.unlink(missing_ok=True)  # written just before a crash, never committed

    # --- metadata ---------------------------------------------------------------------------------
    def meta(self, key: str) -> str:
        row = self._row("SELECT value FROM meta WHERE key=?", (key,))
        return str(row[0]) if row else ""

    @property
    def dataset(self) -> DatasetRef | None:
        text = self.meta("dataset")
        try:
            return DatasetRef.model_validate_json(text) if text else None
        except ValidationError as exc:
            raise ProjectError(f"the project's dataset reference is damaged ({_short(exc)})", self.folder) from None

    def set_dataset(self, ref: DatasetRef | None) -> None:
        text = evaluation_ref(ref).model_dump_json() if ref else ""
        self._write("INSERT OR REPLACE INTO meta VALUES ('dataset', ?)", (text,))

    @property
    def input_spec(self) -> InputSpec | None:
        """Constant and state inputs, declared once for every variant's runs."""
        return self._meta_model("input_spec", InputSpec)

    def set_input_spec(self, spec: InputSpec | None) -> None:
        text = spec.model_dump_json() if spec is not None and (spec.constants or spec.state) else ""
        self._write("INSERT OR REPLACE INTO meta VALUES ('input_spec', ?)", (text,))

    @property
    def scoring(self) -> MetricSettings | None:
        """How outputs are scored (metric, charset), as the user chose or the project's data implies."""
        return self._meta_model("scoring", MetricSettings)

    def set_scoring(self, settings: MetricSettings | None) -> None:
        text = settings.model_dump_json() if settings is not None else ""
        self._write("INSERT OR REPLACE INTO meta VALUES ('scoring', ?)", (text,))

    def _meta_model(self, key: str, cls: type[M]) -> M | None:
        text = self.meta(key)
        try:
            return cls.model_validate_json(text) if text else None
        except ValidationError as exc:
            what = key.replace("_", " ")
            raise ProjectError(f"the project's {what} is damaged ({_short(exc)})", self.folder) from None

    # --- variants ---------------------------------------------------------------------------------
    def variants(self) -> list[Variant]:
        """Every readable variant with an intact lineage (see :attr:`problems` for the others)."""
        rows = self._rows(f"SELECT {_COLUMNS} FROM variants ORDER BY created_at, rowid")
        return [_row_to_variant(row) for row in rows if str(row[0]) not in self._broken]

    def get(self, variant_id: str) -> Variant:
        if variant_id in self._broken:
            raise ProjectError(f"variant '{variant_id}' is set aside: {self._broken[variant_id]}", self.folder)
        row = self._row(f"SELECT {_COLUMNS} FROM variants WHERE id=?", (variant_id,))
        if row is None:
            raise ProjectError(f"no variant '{variant_id}' in this project", self.folder)
        try:
            return _row_to_variant(row)
        except (ValueError, TypeError, KeyError, IndexError, RecursionError, ValidationError) as exc:
            raise ProjectError(f"variant '{variant_id}' is damaged ({_short(exc)})", self.folder) from None

    def find(self, wanted: str) -> Variant:
        """A variant by id or name; a set-aside one raises with the reason."""
        for variant in self.variants():
            if wanted in (variant.id, variant.name):
                return variant
        if wanted in self._broken:
            self.get(wanted)  # raises, saying why it is set aside
        ids = ", ".join(v.id for v in self.variants())
        raise ProjectError(f"no variant '{wanted}' (ids: {ids})", self.folder)

    @property
    def root(self) -> Variant:
        row = self._row("SELECT id FROM variants WHERE parent_id IS NULL ORDER BY created_at, rowid")
        if row is None:
            raise ProjectError("project has no baseline variant", self.folder)
        return self.get(str(row[0]))

    def lineage(self, variant_id: str) -> list[Variant]:
        """Root first, ``variant_id`` last (bounded: a damaged file cannot make it loop)."""
        chain = [self.get(variant_id)]
        limit = self._count()
        while chain[-1].parent_id is not None:
            if len(chain) > limit:
                raise ProjectError(f"the lineage of variant '{variant_id}' loops", self.folder)
            chain.append(self.get(chain[-1].parent_id))
        return chain[::-1]

    def descendants(self, variant_id: str) -> set[str]:
        """``variant_id`` and every variant below it."""
        children: dict[str, list[str]] = {}
        for vid, parent in self._rows("SELECT id, parent_id FROM variants"):
            children.setdefault(str(parent), []).append(str(vid))
        found, frontier = {variant_id}, [variant_id]
        while frontier:
            for child in children.get(frontier.pop(), []):
                if child not in found:
                    found.add(child)
                    frontier.append(child)
        return found

    def _count(self) -> int:
        row = self._row("SELECT COUNT(*) FROM variants")
        return int(row[0]) if row else 0

    def load_model(self, variant_id: str) -> Model:
        import onnx
        from google.protobuf.message import DecodeError

        self.get(variant_id)
        row = self._row(
            "SELECT name, onnx_sha, torch_sha, arch_json, inputs_json, names_json FROM variants WHERE id=?",
            (variant_id,),
        )
        if row is None:
            raise ProjectError(f"no variant '{variant_id}' in this project", self.folder)
        name, onnx_sha, torch_sha, arch_json, inputs_json, names_json = row
        try:
            specs, shapes = _parse_inputs(inputs_json)
            arch = ArchRef(**json.loads(arch_json)) if torch_sha and arch_json else None
            names = NameMap.model_validate_json(names_json) if names_json else NameMap()
        except (ValueError, TypeError, KeyError, IndexError, RecursionError) as exc:
            raise ProjectError(f"variant '{variant_id}' is damaged ({_short(exc)})", self.folder) from None
        try:
            # The artifact is compacted; the model the workbench works on has its original names back.
            proto = restore_names(onnx.load_from_string(self._read_artifact(onnx_sha, ".onnx")), names)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ProjectError(f"artifact {onnx_sha}.onnx cannot be read ({_short(exc)})", self.folder) from None
        module = self._load_torch_artifact(torch_sha, arch) if arch is not None else None
        model = Model(
            name=str(name),
            inputs=specs,
            onnx_proto=proto,
            torch_module=module,
            arch=arch,
            source=self.folder / ARTIFACTS / f"{onnx_sha}.onnx",
            input_shapes=shapes,
            input_spec=self.input_spec,
        )
        if names_json:  # compaction is idempotent: the stored file is this model's artifact
            model._artifact_cache.append((self._read_artifact(onnx_sha, ".onnx"), names))
        return model

    def artifact_path(self, variant_id: str) -> Path:
        return self.folder / ARTIFACTS / f"{self.get(variant_id).onnx_sha}.onnx"

    def apply(
        self,
        parent_id: str,
        plugin: Plugin,
        params: Any,
        task: Task | None = None,
        *,
        name: str | None = None,
        measure: Measure | None = None,
    ) -> Variant:
        """Apply ``plugin`` to a variant and store the result; identical requests reuse the stored one.

        ``measure`` runs on the result before anything is stored, so the variant appears with its metrics.
        """
        task = task or Task()
        task.provide(**step_data(self.dataset))  # train and calibration splits only: figures use evaluation
        parsed = plugin.parse_params(params)
        param_values = parsed.model_dump(mode="json")
        key = cache_key(parent_id, plugin.id, param_values)
        cached = self._row("SELECT id FROM variants WHERE cache_key=?", (key,))
        if cached and str(cached[0]) not in self._broken:
            return self.get(str(cached[0]))
        parent = self.load_model(parent_id)
        notes_before = len(task.notes)
        result = run_plugin(plugin, parent, parsed, task.sub(0.0, 0.7 if measure else 0.9))
        notes = task.notes[notes_before:]
        metrics = measure(result, task.sub(0.7, 0.95)) if measure is not None else None
        task.check()  # a cancel during apply or measure leaves no variant behind
        done_meanwhile = self._row("SELECT id FROM variants WHERE cache_key=?", (key,))
        if done_meanwhile:  # another process (a parallel search trial) stored the same step first
            return self.get(str(done_meanwhile[0]))
        try:
            return self._insert_variant(
                result,
                parent_id=parent_id,
                name=name or _default_name(plugin, param_values),
                plugin_id=plugin.id,
                params=param_values,
                key=key,
                metrics=metrics,
                notes=notes,
            )
        except ProjectError:
            raced = self._row("SELECT id FROM variants WHERE cache_key=?", (key,))
            if raced:  # stored by another process between the check and the insert: the same step
                return self.get(str(raced[0]))
            raise

    def unmeasured(self) -> list[str]:
        """Variants stored without metrics (by older versions, or a CLI step that measures nothing)."""
        return [v.id for v in self.variants() if v.metrics is None]

    def set_metrics(self, variant_id: str, metrics: Metrics) -> None:
        self.get(variant_id)
        self._write("UPDATE variants SET metrics_json=? WHERE id=?", (metrics.model_dump_json(), variant_id))

    def save_sensitivity(self, variant_id: str, report) -> None:
        """Keep a variant's sensitivity sweep (a workbench.sensitivity.SensitivityReport) with the project."""
        self.get(variant_id)
        self._write(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (f"sensitivity:{variant_id}", report.model_dump_json())
        )

    def sensitivity(self, variant_id: str):
        from workbench.sensitivity import SensitivityReport

        text = self.meta(f"sensitivity:{variant_id}")
        try:
            return SensitivityReport.model_validate_json(text) if text else None
        except ValidationError:
            return None  # a damaged sweep is only a cache: the user can run it again

    def rename(self, variant_id: str, name: str) -> None:
        self.get(variant_id)
        self._write("UPDATE variants SET name=? WHERE id=?", (name, variant_id))

    def delete(self, variant_id: str) -> None:
        """Delete a variant and its descendants (never the baseline)."""
        if self.get(variant_id).is_root:
            raise ProjectError("the baseline variant cannot be deleted", self.folder)
        self._write("DELETE FROM variants WHERE id=?", (variant_id,))

    def recipe(self, variant_id: str) -> Recipe:
        chain = self.lineage(variant_id)
        row = self._row("SELECT inputs_json FROM variants WHERE id=?", (chain[0].id,))
        _specs, shapes = _parse_inputs(row[0] if row else "")
        return Recipe(
            base=RecipeBase(
                name=self.meta("source_name"),
                sha256=self.meta("source_sha256") or None,
                input_shapes={k: list(v) for k, v in shapes.shapes.items()},
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
        metrics: Metrics | None = None,
        notes: list[str] | None = None,
    ) -> Variant:
        artifact, names = model.artifact()
        onnx_sha = self._write_artifact(artifact, ".onnx")
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
        self._write(
            f"INSERT INTO variants ({_COLUMNS}, arch_json, inputs_json, names_json) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                variant_id,
                parent_id,
                name,
                plugin_id,
                json.dumps(params, sort_keys=True),
                key,
                onnx_sha,
                torch_sha,
                metrics.model_dump_json() if metrics is not None else None,
                time.time(),
                json.dumps(notes or []),
                arch_json,
                json.dumps(inputs),
                names.model_dump_json(),
            ),
        )
        return self.get(variant_id)

    def _write_artifact(self, data: bytes, suffix: str) -> str:
        digest = sha256_bytes(data)
        path = self.folder / ARTIFACTS / f"{digest}{suffix}"
        if not path.exists():
            atomic_write_bytes(path, data)
        return digest

    def _read_artifact(self, digest: str, suffix: str) -> bytes:
        if not _SHA256.match(str(digest)):
            raise ProjectError(f"an artifact name in the database is not a sha256 ({str(digest)[:40]!r})", self.folder)
        path = self.folder / ARTIFACTS / f"{digest}{suffix}"
        try:
            from workbench.untrusted import read_regular_bytes

            data = read_regular_bytes(path, ProjectError)
        except (OSError, ProjectError):
            raise ProjectError(f"artifact {path.name} is missing or unreadable", self.folder) from None
        if sha256_bytes(data) != digest:
            raise ProjectError(f"artifact {path.name} is damaged (its hash does not match)", self.folder)
        return data

    def _load_torch_artifact(self, digest: str, arch: ArchRef):
        import torch

        from workbench.archs import rebuild

        data = self._read_artifact(digest, ".pt")
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            return rebuild(arch.name, arch.kwargs, arch.structure, state)
        except Exception as exc:  # weights_only refuses any pickled code; say so in one line
            reason = f"the torch weights of {digest[:12]}… cannot be loaded ({describe_exception(exc)})"
            raise ProjectError(reason, self.folder) from None


_COLUMNS = (
    "id, parent_id, name, plugin_id, params_json, cache_key, onnx_sha, torch_sha, metrics_json, created_at, notes_json"
)


def _row_to_variant(row: tuple) -> Variant:
    vid, parent, name, plugin_id, params_json, _key, onnx_sha, torch_sha, metrics_json, created, notes_json = row
    params = json.loads(params_json)
    if not isinstance(params, dict):
        raise TypeError(f"params are a {type(params).__name__}, not an object")
    notes = json.loads(notes_json) if notes_json else []
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise TypeError("notes are not a list of text")
    for sha in (onnx_sha, torch_sha):
        if sha is not None and not _SHA256.match(str(sha)):
            raise ValueError(f"artifact name {str(sha)[:40]!r} is not a sha256")
    return Variant(
        id=str(vid),
        parent_id=None if parent is None else str(parent),
        name=str(name),
        plugin_id=None if plugin_id is None else str(plugin_id),
        params=params,
        onnx_sha=str(onnx_sha),
        torch_sha=None if torch_sha is None else str(torch_sha),
        metrics=Metrics.model_validate_json(metrics_json) if metrics_json else None,
        created_at=float(created),
        notes=tuple(notes),
    )


def _parse_inputs(text: str) -> tuple[tuple[TensorSpec, ...], InputShapes]:
    inputs = json.loads(text)
    specs = tuple(TensorSpec(str(s["name"]), str(s["dtype"]), tuple(s["shape"])) for s in inputs["specs"])
    shapes = {str(k): tuple(int(d) for d in v) for k, v in inputs["shapes"].items()}
    source = inputs["source"]
    if source not in ("model", "default", "user", "remembered"):
        raise ValueError(f"unknown shape source {str(source)[:20]!r}")
    return specs, InputShapes(shapes, source)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:120]}" if text else type(exc).__name__


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
    shown = ", ".join(
        f"{k}={f'{v:.3g}' if isinstance(v, float) else v}"  # a searched 0.5000549 reads as 0.5
        for k, v in params.items()
        if defaults.get(k, object()) != v and v not in ({}, [])
    )
    return f"{plugin.title} ({shown})" if shown else plugin.title
