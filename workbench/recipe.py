"""Recipes: a variant's lineage as data (YAML or JSON) that replays headless on the original model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench.datasets import DatasetRef, step_data
from workbench.errors import RecipeError
from workbench.fileio import atomic_write_text
from workbench.model import InputShapes, Model
from workbench.plugin import PluginRegistry, Task, run_plugin


class RecipeStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plugin: str
    params: dict[str, Any] = Field(default_factory=dict)


class RecipeBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str | None = Field(None, description="sha256 of the original model file")
    input_shapes: dict[str, list[int]]
    dataset: DatasetRef | None = Field(
        None, description="the project's data: steps that learn or calibrate use its train and calibration splits"
    )


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["model-workbench-recipe"] = "model-workbench-recipe"
    version: Literal[1] = 1
    base: RecipeBase
    steps: list[RecipeStep]
    result_sha256: str | None = Field(None, description="sha256 of the ONNX artifact the steps produced")

    def dumps(self, fmt: Literal["yaml", "json"] = "yaml") -> str:
        data = self.model_dump(mode="json")
        if fmt == "json":
            return json.dumps(data, indent=2) + "\n"
        return yaml.safe_dump(data, sort_keys=False)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        return atomic_write_text(path, self.dumps("json" if path.suffix.lower() == ".json" else "yaml"))

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        from workbench.untrusted import read_regular_bytes

        path = Path(path)
        try:
            text = read_regular_bytes(path, RecipeError).decode("utf-8")
        except RecipeError as exc:
            raise RecipeError(exc.reason.replace("file does not exist", "recipe file does not exist"), path) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise RecipeError(f"cannot read the recipe ({exc})", path) from None
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except RecursionError:
            raise RecipeError("the recipe is nested too deeply to read", path) from None
        except (ValueError, yaml.YAMLError) as exc:
            raise RecipeError(
                f"not valid {path.suffix.lstrip('.') or 'YAML'} ({str(exc).splitlines()[0]})", path
            ) from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "recipe"
            raise RecipeError(f"not a workbench recipe: {where}: {first['msg']}", path) from None


def replay(
    recipe: Recipe,
    model: Model,
    registry: PluginRegistry,
    task: Task | None = None,
    *,
    model_sha256: str | None = None,
) -> Model:
    """Apply the recipe's steps to ``model`` (the original), at the recipe's input shapes."""
    task = task or Task()
    if recipe.base.sha256 and model_sha256 and recipe.base.sha256 != model_sha256:
        raise RecipeError(
            f"the recipe was made from a different model file (sha256 {recipe.base.sha256[:12]}…, "
            f"this file {model_sha256[:12]}…)",
            model.source,
        )
    task.provide(**step_data(recipe.base.dataset))
    shapes = {k: tuple(v) for k, v in recipe.base.input_shapes.items()}
    current = model.with_input_shapes(InputShapes(shapes, "user"))
    total = max(len(recipe.steps), 1)
    for index, step in enumerate(recipe.steps):
        plugin = registry.get(step.plugin)
        task.report(index / total, f"step {index + 1}/{total}: {plugin.title}")
        current = run_plugin(plugin, current, step.params, task.sub(index / total, (index + 1) / total))
    return current
