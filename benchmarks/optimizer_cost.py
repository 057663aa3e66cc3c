"""Each baseline's cost per training step over AdamW's, on the small CPU workloads.

For every workload and framework, every baseline's standard step (its `make_optimizer` run by
the harness's plugin adapter: forward, loss, backward, the optimizer's update; SAM's second
gradient and the Kronecker example's layer statistics included) is timed on the same batches
and model, in one process, one thread. Rounds interleave the optimizers (AdamW, then each
other, then AdamW again ...) so that a slow spell on a shared machine hits them alike; the
figure is the median over rounds of each optimizer's time per step divided by AdamW's in the
same round. The first `--warmup` steps (JAX compilation, allocator warm-up) are not timed.

    .venv/bin/python benchmarks/optimizer_cost.py                       # every baseline, torch
    .venv/bin/python benchmarks/optimizer_cost.py --frameworks torch jax --workloads qm9
    .venv/bin/python benchmarks/optimizer_cost.py --from-sweep results/baselines-self

`--from-sweep` reads a finished sweep instead (e.g. `make baselines`): per baseline and
workload, the median over its trials of submission time per step (the timed step, data
selection included, evaluation not), and its ratio to AdamW's, all from one sweep run side by
side. Baselines with their own batch size (large_batch_adamw) are listed but not comparable.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import time
from typing import Any

import numpy as np

from algoperf.frameworks import load_backend
from algoperf.plugins import (
    REPO_ROOT,
    find_submission,
    import_submission_file,
    list_submissions,
    workload_class,
)
from algoperf.spec import Hyperparameters
from algoperf.tuning import load_search_space

EXAMPLES = [str(REPO_ROOT / "examples" / "kronecker"), str(REPO_ROOT / "examples" / "zeroth_order")]


def plugin_baselines(framework: str) -> list[str]:
    """Registered optimizer plugins with a file for `framework` (adamw first)."""
    names = []
    for name, source in sorted(list_submissions().items()):
        if name == "template" or framework not in source.frameworks:
            continue
        if "def make_optimizer(" in source.file(framework).read_text():
            names.append(name)
    return ["adamw"] + [n for n in names if n != "adamw"]


class Stepper:
    """One optimizer's standard step on one workload, from the same initial model."""

    def __init__(self, submission: str, framework: str, workload: Any, initial: Any, state: Any):
        source = find_submission(submission)
        module = import_submission_file(source, framework)
        self.fw = load_backend(framework)
        self.api = self.fw.plugin_to_full(module)
        self.workload = workload
        self.hparams = Hyperparameters(load_search_space(source.folder).defaults())
        if framework == "torch":
            self.params = copy.deepcopy(initial)
        else:
            import jax
            import jax.numpy as jnp

            self.params = jax.tree.map(jnp.copy, initial)
        self.model_state = state
        self.opt = self.api["init_optimizer_state"](
            workload=workload,
            model_params=self.params,
            model_state=state,
            hyperparameters=self.hparams,
            rng=self.fw.step_rng(0, -1),
        )
        self.step_count = 0

    def run(self, batches: list[Any]) -> float:
        """Seconds per step over `batches`."""
        start = time.perf_counter()
        for batch in batches:
            self.opt, self.params, self.model_state = self.api["update_params"](
                workload=self.workload,
                current_param_container=self.params,
                current_params_types=self.workload.param_types,
                model_state=self.model_state,
                hyperparameters=self.hparams,
                batch=batch,
                loss_type=self.workload.loss_type,
                optimizer_state=self.opt,
                eval_results=[],
                global_step=self.step_count,
                rng=self.fw.step_rng(0, self.step_count),
            )
            self.step_count += 1
        self.fw.sync(self.params, self.opt)
        return (time.perf_counter() - start) / len(batches)


def measure(workload_name: str, framework: str, names: list[str], args: argparse.Namespace) -> dict:
    fw = load_backend(framework)
    fw.set_threads(1)
    workload = workload_class(workload_name, framework)("small")
    splits = workload.load_splits()
    train = workload.to_device(splits.train)
    stream = workload.train_batches(train, workload.default_batch_size, 0)
    batches = list(itertools.islice(stream, args.warmup + args.steps))
    initial, state = workload.init_model_fn(0)
    steppers = {}
    for name in names:
        try:
            steppers[name] = Stepper(name, framework, workload, initial, state)
            steppers[name].run(batches[: args.warmup])
        except Exception as e:  # a baseline that cannot run here is reported, not fatal
            print(f"  {name}: skipped ({type(e).__name__}: {e})")
            steppers.pop(name, None)
    ratios: dict[str, list[float]] = {name: [] for name in steppers}
    seconds: dict[str, list[float]] = {name: [] for name in steppers}
    timed = batches[args.warmup :]
    for _ in range(args.rounds):
        base = steppers["adamw"].run(timed)
        for name, stepper in steppers.items():
            t = base if name == "adamw" else stepper.run(timed)
            seconds[name].append(t)
            ratios[name].append(t / base)
    return {name: (statistics.median(seconds[name]), statistics.median(ratios[name])) for name in steppers}


def from_sweep(folder: str) -> None:
    from algoperf import results
    from algoperf.errors import AlgoperfError

    try:
        trials = results.load(folder).trials
    except AlgoperfError as error:
        raise SystemExit(f"optimizer_cost.py: {error}") from None
    if "adamw" not in set(trials["submission"]):
        raise SystemExit(f"optimizer_cost.py: {folder} has no adamw trials; the ratios are to AdamW's step.")
    trials = trials[trials["global_steps"] > 0]
    trials = trials.assign(ms=1e3 * trials["submission_time_s"] / trials["global_steps"])
    table = trials.groupby(["submission", "workload"])["ms"].median().unstack("workload")
    workloads = sorted(table.columns)
    print(f"| optimizer | {' | '.join(f'{w} ms/step (x AdamW)' for w in workloads)} |")
    print("|---|" + "---:|" * len(workloads))
    for name in ["adamw"] + sorted(n for n in table.index if n != "adamw"):
        cells = [
            f"{table.loc[name, w]:.1f} ({table.loc[name, w] / table.loc['adamw', w]:.2f}x)" for w in workloads
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workloads", nargs="+", default=["fashion_mnist", "shakespeare", "qm9"])
    parser.add_argument("--frameworks", nargs="+", default=["torch"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per optimizer per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-examples", action="store_true", help="baselines only")
    parser.add_argument("--from-sweep", help="a finished sweep's folder: per-step costs from its records")
    args = parser.parse_args()
    if args.from_sweep:
        from_sweep(args.from_sweep)
        return
    for framework in args.frameworks:
        names = plugin_baselines(framework) + ([] if args.no_examples else EXAMPLES)
        table = {}
        for workload_name in args.workloads:
            print(
                f"{framework} {workload_name}: {len(names)} optimizers x {args.rounds} rounds ...", flush=True
            )
            table[workload_name] = measure(workload_name, framework, names, args)
        header = " | ".join(f"{w} ms/step (x AdamW)" for w in args.workloads)
        print(f"\n| {framework} optimizer | {header} |")
        print("|---|" + "---:|" * len(args.workloads))
        for name in names:
            cells = []
            for w in args.workloads:
                if name in table[w]:
                    s, r = table[w][name]
                    cells.append(f"{1e3 * s:.1f} ({r:.2f}x)")
                else:
                    cells.append("n/a")
            label = name.rsplit("/", 1)[-1] + (" (example)" if "/" in name else "")
            print(f"| {label} | " + " | ".join(cells) + " |")
        print()


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
