"""Compilation a JAX AlgoPerf submission pays in its first steps, with the harness placing its
state as the train step's outputs are (what trials do) and without (the state where the
submission built it): XLA compilations and their seconds, per step.

    .venv/bin/python benchmarks/compat_compile.py PATH [--workload qm9] [--steps 4]

PATH is a JAX AlgoPerf submission (folder or file), e.g. algorithms/baselines/external_tuning/
jax_nadamw_full_budget.py from a clone of github.com/mlcommons/algorithmic-efficiency. Runs in
this process, one variant after the other, each in a fresh subprocess so neither reuses the
other's compiled code; the last two lines are the figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys


def measure(path: str, workload_name: str, steps: int, placed: bool) -> dict:
    from algoperf.compat import adapter
    from algoperf.compat.workload import TrialTimes
    from algoperf.frameworks.jax import BACKEND as fw
    from algoperf.frameworks.jax import compile_count
    from algoperf.plugins import find_submission, load_submission, workload_class
    from algoperf.rules import WorkloadView
    from algoperf.spec import Hyperparameters
    from algoperf.tuning import load_search_space

    if not placed:
        adapter._Devices.place = lambda self, tree: tree
        adapter._Devices.placed = lambda self, tree: tree
        adapter._Devices.as_pmap_output = lambda self, tree: tree
    fw.set_threads(1)
    source = find_submission(path)
    submission = load_submission(source, "jax")
    workload = workload_class(workload_name, "jax")()
    view = WorkloadView(workload)
    splits = workload.load_splits()
    params, model_state = workload.init_model_fn(0)
    submission.compat.configure(view, TrialTimes(3600.0, None))
    hparams = Hyperparameters(load_search_space(source.folder).defaults())
    batch_size = submission.get_batch_size(workload.full_name) or workload.default_batch_size
    queue = workload.train_batches(workload.to_device(splits.train), batch_size, 0)
    state = submission.init_optimizer_state(
        workload=view,
        model_params=params,
        model_state=model_state,
        hyperparameters=hparams,
        rng=fw.step_rng(1, -1),
    )
    counts, seconds = [], []
    for step in range(steps):
        count, spent = compile_count(), fw.compile_time_s()
        batch = submission.data_selection(
            workload=view,
            input_queue=queue,
            optimizer_state=state,
            current_param_container=params,
            model_state=model_state,
            hyperparameters=hparams,
            global_step=step,
            rng=fw.step_rng(1, 2 * step),
        )
        state, params, model_state = submission.update_params(
            workload=view,
            current_param_container=params,
            current_params_types=workload.param_types,
            model_state=model_state,
            hyperparameters=hparams,
            batch=batch,
            loss_type=workload.loss_type,
            optimizer_state=state,
            eval_results=[],
            global_step=step,
            rng=fw.step_rng(1, 2 * step + 1),
        )
        fw.sync(params, state)
        counts.append(compile_count() - count)
        seconds.append(round(fw.compile_time_s() - spent, 2))
    return {"placed": placed, "compilations": counts, "compile_s": seconds, "total_s": round(sum(seconds), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path")
    parser.add_argument("--workload", default="qm9")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--variant", choices=["placed", "unplaced"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:  # one measurement, in a process of its own
        print(json.dumps(measure(args.path, args.workload, args.steps, args.variant == "placed")))
        return
    for variant in ("unplaced", "placed"):
        command = [
            sys.executable,
            __file__,
            args.path,
            "--workload",
            args.workload,
            "--steps",
            str(args.steps),
        ]
        out = subprocess.run(
            [*command, "--variant", variant], capture_output=True, text=True, check=True
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        print(
            f"{variant:>8}: compilations per step {result['compilations']}, compile seconds per step "
            f"{result['compile_s']}, total {result['total_s']} s ({args.workload}, {args.steps} steps)"
        )


if __name__ == "__main__":
    main()
