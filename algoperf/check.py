"""`algoperf check`: validate a submission before any compute is spent, and the template copier."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from algoperf.errors import AlgoperfError
from algoperf.plugins import (
    REPO_ROOT,
    api_problems,
    find_submission,
    import_algoperf,
    import_submission_file,
)
from algoperf.tuning import JSON_NAME, YAML_NAME, SearchSpace, load_search_space


def _say(ok: bool, message: str) -> None:
    print(f"  {'ok  ' if ok else 'FAIL'} {message}")


def check_submission(
    name_or_path: str,
    framework: str | None = None,
    workload: str = "fashion_mnist",
    run_step: bool = True,
) -> bool:
    """Print a line per check; True when everything passed. Stops before the step on any failure."""
    source = find_submission(name_or_path)
    frameworks = [framework] if framework else source.frameworks
    print(f"checking submission {source.name!r} at {source.folder}")
    try:
        space = load_search_space(source.folder)
        _say(True, f"search space: {_describe(space)}")
    except AlgoperfError as e:
        _say(False, f"search space: {e}")
        return False
    ok = True
    for fw in frameworks:
        try:
            module = import_submission_file(source, fw)
        except AlgoperfError as e:
            _say(False, f"[{fw}] import: {e}")
            ok = False
            continue
        problems = api_problems(module, fw)
        kind = "optimizer plugin" if hasattr(module, "make_optimizer") else "full submission"
        if problems:
            for problem in problems:
                _say(False, f"[{fw}] {source.file(fw).name}: {problem}")
            ok = False
            continue
        if source.is_algoperf:
            kind = "AlgoPerf submission"
        _say(True, f"[{fw}] imports; {kind} API complete with the right signatures")
        if source.is_algoperf:
            for notice in import_algoperf(source, fw)[2]:
                _say(True, f"[{fw}] adapted: {notice}")
        if ok and run_step:
            ok = _one_step(str(source.algoperf_entry or source.folder), fw, workload) and ok
    print("all checks passed" if ok else "checks failed: fix the lines marked FAIL and run check again")
    return ok


def _describe(space: SearchSpace) -> str:
    """Which file was read and what it holds (a list of fixed points is the trials themselves)."""
    source = Path(space.source)
    if not source.is_file():
        return f"none (no {YAML_NAME} or {JSON_NAME}); every hparams.NAME=value override is taken"
    defaults = space.defaults()
    if space.max_trials is not None:
        return (
            f"{space.max_trials} fixed points from {source.name} (trial k of a study runs point k), "
            f"{len(space.params)} hyperparameters; defaults = point 0 {defaults}"
        )
    shadowed = (
        f"; {JSON_NAME} beside it is not read ({YAML_NAME} wins)"
        if source.name == YAML_NAME and (source.parent / JSON_NAME).is_file()
        else ""
    )
    return (
        f"{source.name}, {len(space.params)} hyperparameters ({len(space.tunable)} tuned), "
        f"defaults {defaults}{shadowed}"
    )


def _one_step(submission: str, framework: str, workload: str) -> bool:
    from algoperf.runner import run_trial
    from algoperf.schema import HardwareConfig, RunConfig

    # A profile of its own: the check must not depend on any hardware profile's workload list.
    hardware = HardwareConfig(
        name="check",
        workloads={workload: {"size": "small", "max_submission_time_s": 600, "eval_every_steps": 10**9}},
    )
    with tempfile.TemporaryDirectory() as tmp:
        cfg = RunConfig(
            workload=workload,
            submission=submission,
            framework=framework,
            hardware=hardware,
            results_dir=tmp,
            sweep="check",
            max_steps=2,
            eval_every_steps=10**9,
        )
        record = run_trial(cfg, progress=False)
    for line in record.get("adaptations") or []:
        if line.startswith("get_batch_size"):  # the import's own adaptations are shown above
            _say(True, f"[{framework}] adapted: {line}")
    if record["status"] == "failed":
        _say(False, f"[{framework}] two training steps on {workload} failed:\n{record['error']}")
        from algoperf.compat.hints import explain

        for explanation in explain(record["error"]):
            _say(False, f"[{framework}] what that means: {explanation}")
        return False
    _say(
        True,
        f"[{framework}] two training steps on {workload} ran "
        f"({record['submission_time_s']:.2f} s, status {record['status']})",
    )
    return True


def check_parity(name_or_path: str, workload: str = "fashion_mnist", steps: int = 10) -> bool:
    """`check --parity`: the plugin's torch and JAX optimizers from identical parameters on an
    identical objective (algoperf.parity), the largest difference after every step."""
    from algoperf.parity import ATOL, RTOL, format_report, update_parity

    try:
        result = update_parity(name_or_path, workload, steps)
    except AlgoperfError as e:
        _say(False, f"parity: {e}")
        return False
    print(f"  parity on {workload}'s parameters, {steps} steps (step hint {2 * steps}):")
    for line in format_report(result):
        print(f"       {line}")
    if result.moved <= 1e-4:
        _say(False, f"parity: the parameters barely moved (at most {result.moved:.1e}); nothing was compared")
        return False
    first = result.first_disagreement
    if first is None:
        _say(True, f"parity: torch and JAX agree at every step (rtol {RTOL:g}, atol {ATOL:g})")
        return True
    _say(False, f"parity: torch and JAX differ from step {first} (beyond rtol {RTOL:g}, atol {ATOL:g})")
    return False


def new_submission(name: str, directory: str = "submissions") -> Path:
    if not name.isidentifier():
        raise AlgoperfError(f"submission name {name!r} must be a Python identifier (e.g. my_adam).")
    target = Path(directory) / name
    if target.exists():
        raise AlgoperfError(f"{target} already exists; pick another name or delete it.")
    shutil.copytree(
        REPO_ROOT / "submissions" / "template", target, ignore=shutil.ignore_patterns("__pycache__")
    )
    return target
