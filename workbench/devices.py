"""Device profiles: YAML files validated by a pydantic schema. Built-in ones ship in
``workbench.resources/devices``; users add their own in ``<config dir>/devices/*.yaml``."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from workbench.errors import WorkbenchError
from workbench.settings import config_dir
from workbench.untrusted import read_regular_bytes

Precision = Literal["fp32", "fp16", "int8", "int8-weights", "int4"]
# A rate or an energy of 0, below 0, NaN or infinity turns every estimate into nonsense (or invalid JSON).
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class ExportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="the exporter (workbench.exporters entry point)")
    precision: Precision | None = Field(None, description="the precision written (None: the variant's)")
    fallback: str | None = Field(None, description="exporter used when the first refuses the model (said so)")
    also: list[str] = Field(default_factory=list, description="further formats written and verified beside it")
    steps: list[str] = Field(default_factory=list, description="what the export does, in order (informational)")


class DeviceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    name: str
    cpu: str = Field(description="CPU and accelerator")
    runtime: str
    precisions: list[Precision] = Field(min_length=1, description="precisions this device runs well")
    ram_bytes: int = Field(gt=0, description="memory budget for activations")
    storage_bytes: int = Field(gt=0, description="storage/flash budget for the model")
    throughput_macs_per_s: dict[Precision, PositiveFinite] = Field(
        min_length=1, description="sustained MAC/s per precision (estimate)"
    )
    throughput_source: str = Field(min_length=1, description="where the throughput figures come from")
    energy_per_mac_j: PositiveFinite
    energy_source: str = Field(min_length=1)
    supported_ops: list[str] | None = Field(None, description="operators the runtime has kernels for (None: all)")
    target_ops: list[str] | None = Field(
        None, description="LiteRT builtins the target runs (Coral's Edge TPU table, TFLM's kernels); None: all"
    )
    target_ops_source: str | None = None
    runtime_flash_bytes: int | None = Field(None, ge=0, description="flash the runtime itself takes (TFLM)")
    runtime_flash_source: str | None = None
    export: ExportSpec
    source_file: str | None = Field(None, exclude=True)

    def estimate(self, macs: int, precision: Precision) -> tuple[float | None, float]:
        """(latency s, energy J) per inference — estimates from the profile, not measurements."""
        rate = self.throughput_macs_per_s.get(precision) or self.throughput_macs_per_s.get("fp32")
        return (macs / rate if rate else None), macs * self.energy_per_mac_j


def _parse(text: str, where: str) -> DeviceProfile:
    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise WorkbenchError("the profile is nested too deeply to read", where) from None
    except yaml.YAMLError as exc:
        raise WorkbenchError(f"not valid YAML ({str(exc).splitlines()[0]})", where) from None
    try:
        profile = DeviceProfile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WorkbenchError(
            f"not a device profile: {'.'.join(str(p) for p in first['loc']) or 'profile'}: {first['msg']}", where
        ) from None
    profile.source_file = where
    return profile


def user_devices_dir() -> Path:
    return config_dir() / "devices"


def load_devices(extra_dir: Path | None = None) -> tuple[dict[str, DeviceProfile], list[str]]:
    """Built-in profiles, then the user's (which may override a built-in id). Returns (profiles, problems)."""
    profiles: dict[str, DeviceProfile] = {}
    problems: list[str] = []
    builtin = importlib.resources.files("workbench.resources") / "devices"
    for entry in sorted(builtin.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            profile = _parse(entry.read_text(encoding="utf-8"), f"built-in {entry.name}")
            profiles[profile.id] = profile
    folder = extra_dir or user_devices_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            try:
                profile = _parse(read_regular_bytes(path).decode("utf-8"), str(path))
            except (WorkbenchError, OSError, UnicodeDecodeError) as exc:
                problems.append(str(exc))  # one bad user file must not hide the others
                continue
            profiles[profile.id] = profile
    return profiles, problems


def get_device(device_id: str) -> DeviceProfile:
    profiles, _ = load_devices()
    try:
        return profiles[device_id]
    except KeyError:
        raise WorkbenchError(f"no device '{device_id}' (known: {', '.join(sorted(profiles))})") from None
