"""A LiteRT ``.tflite`` opened in the window as it is: its operators as layer rows, measured in LiteRT's
interpreter (on the evaluation split once data is attached, on stated random inputs before), planned and
bundled for the devices that run it. Nothing converts or compresses it: that starts from the model it
came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.plugin import Task

if TYPE_CHECKING:
    import numpy as np

    from workbench.analysis import Analysis
    from workbench.artifact_metrics import ArtifactMetrics
    from workbench.datasets import DatasetRef
    from workbench.devices import DeviceProfile
    from workbench.metrics import MetricSettings
    from workbench.model import Model
    from workbench.placement import LayerPlacement
    from workbench.tflite_export import TflitePlan
    from workbench.tflite_file import TfliteFile

LATENCY_RUNS = 50


@dataclass
class LiteRtDocument:
    path: Path
    found: TfliteFile
    analysis: Analysis
    model: Model  # the file's inputs and outputs (float, as the session takes them), for data checks
    content: bytes
    dataset: DatasetRef | None = None
    scoring: MetricSettings | None = None
    metrics: ArtifactMetrics | None = None

    @classmethod
    def open(cls, path: str | Path, task: Task | None = None) -> LiteRtDocument:
        from workbench.errors import WorkbenchError
        from workbench.tflite_export import tflite_io_model
        from workbench.tflite_file import open_tflite, read_tflite, tflite_analysis
        from workbench.untrusted import read_regular_bytes

        task = task or Task()
        path = Path(path)
        task.report(0.05, f"reading {path.name}")
        found = read_tflite(path)
        session, _runtime = open_tflite(path)
        document = cls(
            path=path,
            found=found,
            analysis=tflite_analysis(found),
            model=tflite_io_model(path, session),
            content=read_regular_bytes(path, WorkbenchError),
        )
        document.measure(task.sub(0.2, 1.0))
        return document

    @property
    def precision(self) -> str:
        from workbench.tflite_file import file_precision

        return file_precision(self.found)

    def measure(self, task: Task | None = None) -> ArtifactMetrics:
        """The file in LiteRT, as a bundle measures it: the evaluation split, or stated random inputs."""
        from workbench.artifact_metrics import artifact_metrics, evaluation_data
        from workbench.datasets import evaluation_ref
        from workbench.tflite_file import open_tflite

        session, runtime = open_tflite(self.path)
        data = evaluation_data(evaluation_ref(self.dataset) if self.dataset is not None else None, self.model)
        self.metrics, _ = artifact_metrics(
            session,
            runtime,
            data,
            self.model.concrete_shapes(),
            folder=self.path.parent,
            baseline=None,
            runs=LATENCY_RUNS,
            task=task,
            scoring=self.scoring,
        )
        return self.metrics

    def attach_data(self, ref: DatasetRef, scoring: MetricSettings | None, task: Task | None = None) -> ArtifactMetrics:
        """Measure on ``ref``'s evaluation split from now on; data the file cannot take changes nothing."""
        previous = self.dataset, self.scoring
        self.dataset, self.scoring = ref, scoring
        try:
            return self.measure(task)
        except Exception:
            self.dataset, self.scoring = previous
            raise

    def plan(self, device: DeviceProfile) -> TflitePlan:
        from workbench.tflite_export import plan_tflite_export

        plan = plan_tflite_export(self.path, device)
        plan.latency_estimate_s, plan.energy_estimate_j = device.estimate(self.analysis.macs, plan.precision)
        return plan

    def placements(self, plan: TflitePlan) -> list[LayerPlacement]:
        """Where each operator runs: Coral's prediction for the file itself; a microcontroller's kernel table;
        LiteRT's CPU runs every builtin."""
        from workbench.placement import FALLS_BACK, ON_TARGET, UNSUPPORTED, LayerPlacement

        device = plan.device
        rows = self.analysis.layers
        if plan.placement:
            return [
                LayerPlacement(
                    row.name, row.op_type, ON_TARGET if op["placement"] == ON_TARGET else FALLS_BACK, op["reason"]
                )
                for row, op in zip(rows, plan.placement, strict=True)
            ]
        if plan.format == "tflm" and device.target_ops:
            kernels = set(device.target_ops)
            return [
                LayerPlacement(row.name, row.op_type, ON_TARGET, f"{device.name} has a {row.op_type} kernel")
                if row.op_type in kernels
                else LayerPlacement(row.name, row.op_type, UNSUPPORTED, f"no {row.op_type} kernel in its table")
                for row in rows
            ]
        if plan.format == "tflite":
            return [LayerPlacement(r.name, r.op_type, ON_TARGET, "a LiteRT builtin, on the CPU") for r in rows]
        return []

    def export(self, device: DeviceProfile, out_dir: str | Path, task: Task | None = None) -> Path:
        from workbench.tflite_export import export_tflite_file

        return export_tflite_file(self.path, device, out_dir, data=self.dataset, scoring=self.scoring, task=task)

    def layer_weights(self, row: int) -> np.ndarray | None:
        """The first parameter tensor of an operator as the kernels compute with it (dequantized)."""
        op = self.found.operators[row]
        return op.learned[0].values() if op.learned else None

    def quantization(self, row: int) -> str:
        """The operator's weight and output quantization, for the details panel."""
        op = self.found.operators[row]
        parts = [f"weights {op.learned[0].describe_quantization()}"] if op.learned else []
        if op.outputs:
            parts.append(f"output {op.outputs[0].describe_quantization()}")
        return " · ".join(parts)

    def describe(self) -> list[str]:
        found = self.found
        lines = [
            f"{self.path.name}: LiteRT flatbuffer, {self.precision}, {found.size:,} B "
            f"({found.weight_bytes:,} B of weights), {len(found.operators)} operators, {found.params:,} params",
        ]
        lines += [f"input {t.name}: {t.dtype}{list(t.shape)} {t.describe_quantization()}" for t in found.inputs]
        lines += [f"output {t.name}: {t.dtype}{list(t.shape)} {t.describe_quantization()}" for t in found.outputs]
        return lines
