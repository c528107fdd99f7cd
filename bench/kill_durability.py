"""Kill the workbench with SIGKILL at random moments and check that nothing is lost or half-made.

Each trial starts a child that creates a project, applies a step, re-measures a variant or exports a
bundle (on PaddleOCR's text-direction classifier, a real third-party model), waits until the child is
ready, and kills it at a random moment of the work. Then it does what the next run of the workbench
does (open the project; start the next create or export in the same folder) and checks:

- lost variants: variants that were committed before the trial and are gone;
- incomplete variants left visible: variants without metrics;
- orphan files: temporary files, staging folders and artifacts no variant names;
- database integrity (SQLite's integrity_check on every project).

Goal: >= 50 kills, every count 0 and integrity ok.

    python bench/kill_durability.py [--kills 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = "1,3,48,192"
OPERATIONS = ("create", "apply", "measure", "export")

CHILD = r"""
import random, sys
from pathlib import Path
from workbench.device_export import export_for_device
from workbench.devices import get_device
from workbench.workspace import Workspace
operation, model, root, seed = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
workspace = Workspace()
project = root / "projects" / "main"
if operation != "create":
    workspace.open_project(project)
print("ready", flush=True)
if operation == "create":
    workspace.open_model(model, input_shapes=sys.argv[5], folder=root / "projects" / f"new-{seed}")
elif operation == "apply":
    workspace.apply("magnitude_prune", {"sparsity": round(rng.uniform(0.05, 0.95), 3)})
elif operation == "measure":
    workspace.measure_variant(rng.choice(workspace.variants()).id)
else:
    variant = rng.choice(workspace.variants())
    export_for_device(workspace.project, variant.id, get_device("x86-server"), root / "bundles" / f"b{seed}")
print("done", flush=True)
"""


def seed_model() -> Path:
    import rapidocr_onnxruntime

    return Path(rapidocr_onnxruntime.__file__).parent / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"


def run_child(root: Path, operation: str, seed: int, kill_after: float | None, env: dict) -> tuple[bool, float]:
    """Start the child; once it is ready, kill it after ``kill_after`` s (None: let it finish).
    Returns (killed, seconds of work)."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, operation, str(seed_model()), str(root), str(seed), SHAPE],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    line = child.stdout.readline()
    if line.strip() != "ready":
        child.wait()
        raise SystemExit(f"error: the {operation} child failed before it was ready")
    started = time.monotonic()
    if kill_after is None:
        child.wait()
        return False, time.monotonic() - started
    try:
        child.wait(timeout=kill_after)
        return False, time.monotonic() - started  # it finished first
    except subprocess.TimeoutExpired:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        return True, time.monotonic() - started


def inspect(root: Path) -> dict[str, object]:
    """What the next start of the workbench finds, after it tidied up as it does on open/create/export."""
    from workbench.device_export import EXPORTING
    from workbench.fileio import remove_abandoned
    from workbench.project import CREATING, Project

    projects = root / "projects"
    remove_abandoned(projects, (f".*{CREATING}*",))  # what the next create does first
    for bundles in (root / "bundles").glob("b*"):
        remove_abandoned(bundles, (f".*{EXPORTING}*",))  # what the next export to that folder does first
    found: dict[str, object] = {"variants": {}, "incomplete": [], "orphans": [], "integrity": []}
    for folder in sorted(p for p in projects.iterdir() if p.is_dir() and not p.name.startswith(".")):
        with Project.open(folder) as project:  # opening tidies what killed writers left
            variants = project.variants()
            found["variants"][folder.name] = {v.id for v in variants}
            found["incomplete"] += [f"{folder.name}/{v.id}" for v in variants if v.metrics is None]
            named = {f"{v.onnx_sha}.onnx" for v in variants} | {f"{v.torch_sha}.pt" for v in variants}
            found["orphans"] += [
                str(p.relative_to(root)) for p in (folder / "artifacts").iterdir() if p.name not in named
            ]
            found["orphans"] += [str(p.relative_to(root)) for p in folder.glob(".*") if p.name != ".lock"]
        with sqlite3.connect(folder / "project.db") as db:
            found["integrity"].append(db.execute("PRAGMA integrity_check").fetchone()[0])
        db.close()
    found["orphans"] += [str(p.relative_to(root)) for p in projects.glob(".*")]
    found["orphans"] += [str(p.relative_to(root)) for p in (root / "bundles").glob("b*/.*")]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    totals: collections.Counter[str] = collections.Counter()
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kill-") as tmp:
        root = Path(tmp)
        env = dict(
            os.environ,
            WORKBENCH_CONFIG_DIR=str(root / "config"),
            WORKBENCH_CACHE_DIR=str(root / "cache"),
            WORKBENCH_PROJECTS_DIR=str(root / "projects"),
        )
        os.environ.update({k: env[k] for k in ("WORKBENCH_CONFIG_DIR", "WORKBENCH_CACHE_DIR")})
        (root / "projects").mkdir()
        # The project the other operations work on: created once, in a child, without a kill.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from pathlib import Path; from workbench.workspace import Workspace; "
                "Workspace().open_model(sys.argv[1], input_shapes=sys.argv[2], folder=Path(sys.argv[3]))",
                str(seed_model()),
                SHAPE,
                str(root / "projects" / "main"),
            ],
            env=env,
            check=True,
        )
        # How long each operation's work takes once the child is ready (kills land within it).
        durations = {op: run_child(root, op, 10_000 + i, None, env)[1] for i, op in enumerate(OPERATIONS)}
        print("work per operation once ready: " + ", ".join(f"{op} {s:.2f}s" for op, s in durations.items()))
        before = inspect(root)["variants"]
        kills = trials = 0
        while kills < args.kills:
            trials += 1
            operation = rng.choice(OPERATIONS)
            killed, _ = run_child(root, operation, trials, rng.uniform(0.0, durations[operation]), env)
            kills += killed
            totals[f"{operation} {'killed' if killed else 'finished'}"] += 1
            after = inspect(root)
            lost = [f"{name}/{vid}" for name, ids in before.items() for vid in ids - after["variants"].get(name, set())]
            totals["lost variants"] += len(lost)
            totals["incomplete variants left visible"] += len(after["incomplete"])
            totals["orphan files"] += len(after["orphans"])
            totals["integrity failures"] += sum(1 for result in after["integrity"] if result != "ok")
            for kind, items in (("lost", lost), ("incomplete", after["incomplete"]), ("orphan", after["orphans"])):
                problems += [f"trial {trials} ({operation}, killed={killed}): {kind} {item}" for item in items]
            before = after["variants"]
        projects = len(before)
        variants = sum(len(ids) for ids in before.values())
    print(f"{kills} kills in {trials} trials; at the end {projects} projects with {variants} variants")
    for key in sorted(k for k in totals if k.endswith(("killed", "finished"))):
        print(f"  {key:22s} {totals[key]}")
    print()
    for key in ("lost variants", "incomplete variants left visible", "orphan files", "integrity failures"):
        print(f"{key:34s} {totals[key]}")
    print(f"{'database integrity':34s} {'ok' if totals['integrity failures'] == 0 else 'FAILED'}")
    for line in problems[:10]:
        print(f"  {line}")
    goal = kills >= 50 and all(
        totals[k] == 0
        for k in ("lost variants", "incomplete variants left visible", "orphan files", "integrity failures")
    )
    print(f"\ngoal (>= 50 kills; nothing lost, incomplete or orphaned; integrity ok): {'met' if goal else 'NOT met'}")
    return 0 if goal else 1


if __name__ == "__main__":
    sys.exit(main())
