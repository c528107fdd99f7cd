"""``workbench report PROJECT -o report.html``: the project on one self-contained page (plotly's script is
inlined, nothing is fetched): the variants, the Pareto plot, sensitivity curves, the chosen variant's
device budgets and recipe, the auto-tune study's history, and which figures were measured and which
estimated.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.fileio import atomic_write_text

if TYPE_CHECKING:
    from workbench.devices import DeviceProfile
    from workbench.project import Project, Variant
    from workbench.tuning.study import TuneResult

GREY, GREEN, BLUE, RED = "#b0b0b0", "#2e7d32", "#1565c0", "#c62828"


@dataclass
class ReportInputs:
    project: Project
    chosen: Variant
    device: DeviceProfile | None
    studies: list[TuneResult]


def write_report(
    project: Project, out: str | Path, *, variant_id: str | None = None, device_id: str | None = None
) -> Path:
    """Write the page atomically and return its path."""
    inputs = _inputs(project, variant_id, device_id)
    page = render(inputs)
    return atomic_write_text(Path(out), page)


def _inputs(project: Project, variant_id: str | None, device_id: str | None) -> ReportInputs:
    from workbench.devices import get_device
    from workbench.tuning.study import project_studies

    studies = project_studies(project.folder)
    best = next((s.best for s in reversed(studies) if s.best is not None and s.best.outcome is not None), None)
    known = {v.id for v in project.variants()}
    if variant_id is not None:
        chosen = project.find(variant_id)
    elif best is not None and best.outcome is not None and best.outcome.variant_id in known:
        chosen = project.get(best.outcome.variant_id)
    else:  # no study, or its best variant was deleted since
        chosen = project.variants()[-1]
    if device_id is None and studies:
        device_id = studies[-1].goal.get("device")
    return ReportInputs(project, chosen, get_device(device_id) if device_id else None, studies)


# --- the page ----------------------------------------------------------------------------------------
def render(inputs: ReportInputs) -> str:
    try:
        import plotly.offline
    except ImportError:
        raise WorkbenchError('the report draws its plots with plotly: pip install -e ".[tune]"') from None
    project, chosen = inputs.project, inputs.chosen
    sections = [
        _section("Trade-off", _figure(_pareto_figure(project, inputs))),
        _section(f"Device budgets: {html.escape(chosen.name)}", _budgets(project, chosen, inputs.device)),
        _section("Auto-tune studies", _studies_section(inputs.studies)),
        _section("Variants", _variants_table(project, chosen)),
        _section("Sensitivity", _sensitivity(project)),
        _section(
            f"Recipe: {html.escape(chosen.name)}", f"<pre>{html.escape(project.recipe(chosen.id).dumps('yaml'))}</pre>"
        ),
        _section("Measured and estimated", _provenance(project, inputs.device)),
    ]
    title = f"Model Workbench report: {html.escape(project.meta('name') or project.folder.name)}"
    return "\n".join(
        [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{title}</title>",
            f"<script>{plotly.offline.get_plotlyjs()}</script>",
            "<style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1200px}"
            "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 6px}"
            "th{background:#f4f4f4}td.n{text-align:right}tr.chosen{background:#e8f5e9}"
            "pre{background:#f7f7f7;padding:8px;overflow:auto}small{color:#555}</style></head><body>",
            f"<h1>{title}</h1>",
            f"<p><small>{html.escape(str(project.folder))} · written {time.strftime('%Y-%m-%d %H:%M')}</small></p>",
            *sections,
            "</body></html>",
        ]
    )


def _section(title: str, body: str) -> str:
    return f"<h2>{title}</h2>\n{body}"


def _figure(figure: Any) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def _quality(variant: Variant) -> tuple[float | None, str]:
    m = variant.metrics
    if m is None:
        return None, "-"
    if m.accuracy is not None:
        return m.accuracy, f"accuracy ({m.metric or 'top1'})"
    return (m.agreement, "agreement") if m.agreement is not None else (None, "-")


def _variants_table(project: Project, chosen: Variant) -> str:
    root = project.root.metrics
    rows = ["<table><tr><th>variant</th><th>step</th><th>file B</th><th>download B</th><th>smaller</th>"
            "<th>latency</th><th>quality</th><th>sparsity</th><th>notes</th></tr>"]  # fmt: skip
    for variant in project.variants():
        m = variant.metrics
        quality, name = _quality(variant)
        smaller = f"{root.download / m.download:.1f}x" if m is not None and root is not None else "-"
        cells = [
            html.escape(variant.name),
            html.escape(variant.plugin_id or "baseline"),
            f"{m.artifact_bytes:,}" if m else "-",
            f"{m.download:,}" if m else "-",
            smaller,
            f"{m.latency_ratio:.2f}x" if m and m.latency_ratio else "-",
            f"{quality:.2%} <small>{name}</small>" if quality is not None else "-",
            f"{m.sparsity:.1%}" if m else "-",
            html.escape("; ".join(variant.notes))[:300],
        ]
        klass = " class='chosen'" if variant.id == chosen.id else ""
        numeric = {2, 3, 4, 5, 7}
        rows.append(
            f"<tr{klass}>"
            + "".join(f"<td{' class=n' if i in numeric else ''}>{c}</td>" for i, c in enumerate(cells))
            + "</tr>"
        )
    rows.append("</table><p><small>Highlighted: the chosen variant. Sizes are the stored, compacted ONNX file and its "
                "xz download; latency is against the baseline, interleaved in one run.</small></p>")  # fmt: skip
    return "\n".join(rows)


def _pareto_figure(project: Project, inputs: ReportInputs) -> Any:
    import plotly.graph_objects as go

    root = project.root.metrics
    feasible: dict[str, bool] = {}
    for study in inputs.studies:
        for record in study.records:
            if record.outcome is not None:
                feasible[record.outcome.variant_id] = feasible.get(record.outcome.variant_id, False) or record.feasible
    figure = go.Figure()
    groups: dict[str, list[Variant]] = {"meets the goal": [], "breaks the goal": [], "variant": []}
    for variant in project.variants():
        if variant.metrics is None or _quality(variant)[0] is None:
            continue
        key = (
            "variant"
            if variant.id not in feasible
            else ("meets the goal" if feasible[variant.id] else "breaks the goal")
        )
        groups[key].append(variant)
    colours = {"meets the goal": BLUE, "breaks the goal": GREY, "variant": GREEN}
    for label, members in groups.items():
        if not members:
            continue
        figure.add_trace(
            go.Scatter(
                x=[v.metrics.download / 1024 for v in members],  # type: ignore[union-attr]
                y=[100 * (_quality(v)[0] or 0) for v in members],
                mode="markers",
                name=label,
                marker={"color": colours[label], "size": 9},
                text=[
                    f"{v.name}<br>latency {v.metrics.latency_ratio or 1:.2f}x" if v.metrics else v.name for v in members
                ],
                hoverinfo="text+x+y",
            )
        )
    chosen = inputs.chosen
    if chosen.metrics is not None and _quality(chosen)[0] is not None:
        figure.add_trace(
            go.Scatter(
                x=[chosen.metrics.download / 1024],
                y=[100 * (_quality(chosen)[0] or 0)],
                mode="markers",
                name="chosen",
                marker={"symbol": "star", "size": 18, "color": RED},
            )
        )
    name = _quality(project.root)[1] if root is not None else "quality"
    figure.update_layout(
        xaxis_title="download of each variant's ONNX file (KiB, xz; log); what the device ships: budgets below",
        yaxis_title=f"{name} %",
        xaxis_type="log",
        height=460,
        margin={"l": 60, "r": 20, "t": 30, "b": 50},
    )
    return figure


def _budgets(project: Project, chosen: Variant, device: DeviceProfile | None) -> str:
    import plotly.graph_objects as go

    from workbench.device_export import Budget, plan_export
    from workbench.tuning.trial import stored_shipped

    if device is None:
        return "<p>No device chosen (a study names one, or pass --device).</p>"
    plan = plan_export(project, chosen.id, device)
    storage, ram = plan.budgets
    labels = [f"{storage.label} (planned)", f"{ram.label} (estimated)"]
    shipped = stored_shipped(project.folder, chosen.id, device.id)  # what a search measured, where it did
    if shipped is not None:
        plan.budgets[0] = Budget(storage.label, shipped.bytes, storage.limit)
        labels[0] = f"{shipped.file} (measured)"
        if shipped.arena_bytes is not None:
            plan.budgets[1] = Budget("TFLM arena", shipped.arena_bytes, ram.limit)
            labels[1] = "TFLM arena (measured)"
    figure = go.Figure(
        go.Bar(
            x=[100 * b.fraction for b in plan.budgets],
            y=labels,
            orientation="h",
            marker={"color": [RED if b.fraction > 1 else GREEN for b in plan.budgets]},
            text=[f"{b.used:,} B of {b.limit:,} B ({100 * b.fraction:.3g} %)" for b in plan.budgets],
            textposition="outside",
        )
    )
    widest = max((100 * b.fraction for b in plan.budgets), default=100)
    figure.update_xaxes(range=[0, max(100.0, widest * 1.15)], ticksuffix=" %")  # bars against the whole budget
    figure.update_layout(
        xaxis_title=f"% of {device.name}'s budget", height=220, margin={"l": 200, "r": 20, "t": 20, "b": 40}
    )
    latency = "?" if plan.latency_estimate_s is None else f"{plan.latency_estimate_s * 1000:.3f} ms"
    notes = [
        f"exports as {plan.export_precision} ({plan.format}); latency on the device ≈ {latency} "
        "(estimate from the profile)"
    ]
    notes += [f"refused: {r}" for r in plan.refusals] + [f"warning: {w}" for w in plan.warnings]
    return _figure(figure) + "".join(f"<p><small>{html.escape(n)}</small></p>" for n in notes)


def _sensitivity(project: Project) -> str:
    import plotly.graph_objects as go

    parts = []
    for variant in project.variants():
        report = project.sensitivity(variant.id)
        if report is None:
            continue
        figure = go.Figure()
        for layer in report.layers:
            points = sorted((float(s), q) for s, q in layer.sparsity_quality.items())
            figure.add_trace(
                go.Scatter(
                    x=[100 * s for s, _ in points],
                    y=[100 * q for _, q in points],
                    mode="lines+markers",
                    name=layer.node,
                )
            )
        figure.update_layout(
            title=f"{variant.name}: {report.metric} with one layer pruned ({report.samples} calibration samples)",
            xaxis_title="sparsity of that layer %",
            yaxis_title=f"{report.metric} %",
            height=420,
        )
        parts.append(_figure(figure))
    return "\n".join(parts) or "<p>No sensitivity sweep in this project (the window's Sensitivity tab runs one).</p>"


def _studies_section(studies: list[TuneResult]) -> str:
    import plotly.graph_objects as go

    if not studies:
        return "<p>No auto-tune study in this project (<code>workbench tune</code> or the window's Auto-tune).</p>"
    parts = []
    for study in studies:
        done = [r for r in study.records if r.outcome is not None]
        figure = go.Figure()
        for feasible, colour, label in ((True, BLUE, "meets the goal"), (False, GREY, "breaks the goal")):
            members = [r for r in done if r.feasible == feasible]
            figure.add_trace(
                go.Scatter(
                    x=[r.number for r in members],
                    y=[1 / r.outcome.download_ratio for r in members],  # type: ignore[union-attr]
                    mode="markers",
                    name=label,
                    marker={"color": colour, "size": 8},
                    text=[r.describe_chain() for r in members],
                )
            )
        figure.update_layout(
            title=f"study {study.study_name}: {len(study.records)} trials, hypervolume {study.hypervolume:.4f}",
            xaxis_title="trial",
            yaxis_title="times smaller download",
            yaxis_type="log",
            height=380,
        )
        rows = ["<table><tr><th>trial</th><th>state</th><th>steps</th><th>smaller</th><th>latency</th><th>quality</th>"
                "<th>constraints</th></tr>"]  # fmt: skip
        for r in study.records:
            o = r.outcome
            broken = (
                ", ".join(k for k, c in o.constraints.items() if c.value > 0)
                if o
                else html.escape(str(r.error or ""))[:160]
            )
            rows.append(
                f"<tr><td class=n>{r.number}</td><td>{r.state}</td><td>{html.escape(r.describe_chain())[:200]}</td>"
                f"<td class=n>{f'{1 / o.download_ratio:.1f}x' if o else '-'}</td>"
                f"<td class=n>{f'{o.latency_ratio:.2f}x' if o else '-'}</td>"
                f"<td class=n>{f'{o.quality:.2%}' if o else '-'}</td><td>{broken or 'all met'}</td></tr>"
            )
        parts.append(_figure(figure) + "\n".join(rows) + "</table>")
    return "\n".join(parts)


def _provenance(project: Project, device: DeviceProfile | None) -> str:
    root = project.root.metrics
    host = html.escape(root.host) if root is not None else "this host"
    runtime = html.escape(root.runtime.describe()) if root is not None and root.runtime is not None else "onnxruntime"
    items = [
        f"<b>Measured</b> on {host}: file and download sizes (the stored file), accuracy and agreement (the evaluation "
        "split, one sample at a time), latency ratios (interleaved with the baseline in one run; "
        f"{runtime}), sparsity.",
        "<b>Measured</b> by the study: a trial's size and storage are the file the device's bundle ships, converted "
        "by its exporter (the .ort, .tflite or TFLM array; the stored ONNX where the device takes it as it is), "
        "xz-compressed for the download; its latency ratio is that file in its runtime against the baseline, where "
        "the host's timing means something for the device; accuracy and agreement are its variant's; a TFLM "
        "arena is measured by TFLM.",
        "<b>Estimated</b>: peak activations (the RAM budget, from the graph's shapes) where no TFLM arena is "
        "measured, and latency and energy on the device "
        + (
            f"(from the {html.escape(device.id)} profile: {html.escape(device.throughput_source)})"
            if device
            else "(from the device profile)"
        )
        + ".",
    ]
    return "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"
