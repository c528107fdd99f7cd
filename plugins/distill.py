"""Knowledge distillation: train a smaller student to imitate the current variant (the teacher).

The student is the current architecture at a width multiplier, or one of the built-in efficient
architectures. The teacher's logits come from onnxruntime on the task's data, so any variant (even a
quantized ONNX one) can teach. Labels are optional: without them the student learns the teacher's
soft labels only. The loss per epoch streams to the GUI as a curve.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from workbench.errors import PluginError
from workbench.plugin import Plugin, PluginKind, PluginParams, Task

if TYPE_CHECKING:
    from workbench.model import Model

StudentChoice = Literal[
    "width",
    "lenet5",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "squeezenet",
    "shufflenet_v2",
    "efficientnet_lite",
    "mobilevit_small",
    "ds_cnn",
]


class DistillParams(PluginParams):
    student: StudentChoice = Field(
        "width",
        description="width: the current architecture, narrower; or a built-in net",
        json_schema_extra={"tune": False},  # a built-in net takes its own input kind: not searched blindly
    )
    width: float = Field(
        0.5, ge=0.1, le=1.0, description="student width multiplier", json_schema_extra={"shrinks": "down"}
    )
    epochs: int = Field(
        8,
        ge=1,
        le=100,
        description="passes over the training data",
        json_schema_extra={"search": [2, 12], "recovers": "up"},
    )
    temperature: float = Field(4.0, ge=1.0, le=20.0, description="softening of the teacher's outputs")
    alpha: float = Field(0.7, ge=0.0, le=1.0, description="weight of the teacher's soft labels vs. the true labels")
    learning_rate: float = Field(0.002, ge=1e-5, le=0.1, description="peak learning rate (one-cycle schedule)")
    samples: int = Field(
        4000, ge=32, le=200_000, description="training samples used from the data", json_schema_extra={"tune": False}
    )


class Distill(Plugin):
    id = "distill"
    title = "Knowledge distillation"
    kind = PluginKind.DISTILL
    formats = frozenset({"onnx", "torch"})
    Params = DistillParams
    description = "Train a smaller student (narrower or a built-in efficient net) on the teacher's outputs."

    def apply(self, model: Model, params: DistillParams, task: Task) -> Model:  # type: ignore[override]
        from workbench.archs import get_architecture
        from workbench.evaluate import runnable_batch
        from workbench.model import ArchRef
        from workbench.runtime import make_session, run_batches
        from workbench.training import train

        data = task.data("train", "distillation")
        shape = next(iter(model.concrete_shapes().values()))
        if tuple(data.x.shape[1:]) != tuple(shape[1:]):
            raise PluginError(f"training samples are {list(data.x.shape[1:])}; the model takes {list(shape[1:])}")
        x = data.x[: params.samples]
        labels = data.y[: params.samples] if data.y is not None else None
        task.report(0.02, "teacher predictions")
        teacher = run_batches(make_session(model.onnx_bytes()), x, max_batch=runnable_batch(model))
        if teacher.ndim != 2:
            raise PluginError(f"distillation needs a [batch, classes] output; the teacher gives {list(teacher.shape)}")
        name, kwargs = self._student_spec(model, params, num_classes=teacher.shape[1], in_channels=shape[1])
        student = get_architecture(name).build(**kwargs)
        train(
            student,
            x,
            labels=labels,
            teacher_logits=teacher,
            epochs=params.epochs,
            lr=params.learning_rate,
            temperature=params.temperature,
            alpha=params.alpha if labels is not None else 1.0,
            task=task.sub(0.05, 1.0),
        )
        return model.derive(torch_module=student, arch=ArchRef(name, kwargs))

    @staticmethod
    def _student_spec(model: Model, params: DistillParams, num_classes: int, in_channels: int) -> tuple[str, dict]:
        if params.student == "width":
            if model.arch is None:
                raise PluginError("a narrower copy needs a built-in architecture; pick a built-in student instead")
            kwargs = dict(model.arch.kwargs)
            kwargs["width"] = params.width * float(kwargs.get("width", 1.0))
            return model.arch.name, kwargs
        return params.student, {"num_classes": num_classes, "in_channels": in_channels, "width": params.width}
