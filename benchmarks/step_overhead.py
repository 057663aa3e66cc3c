"""Per-step overhead of the harness, and whether the input pipeline bounds the step.

For each workload and framework, paired runs of the same model, optimizer (AdamW + warmup/cosine
with the submission's defaults), batch size and device-resident data:
  bare     a hand-written loop: next batch -> forward -> loss -> backward -> step (synced)
  harness  algoperf.runner.run_trial with the adamw submission (supervisor + worker processes)
  one-batch  the bare loop on a single pre-made batch (no pipeline at all)
Prints the median ratio harness/bare (goal <= 1.02) and bare/one-batch (goal <= 1.03), and the
cost of moving the parameters per evaluation: the worker's hand-over is inside its timed
interval (so inside the harness figure); the supervisor's copy into its own model is untimed
and printed on its own.

Steady state: the first `--warmup` steps (JAX compilation, allocator and cache warm-up) are
excluded on both sides. The bare loops time only the later steps; the harness is evaluated at
step `warmup` and at the end, and its per-step time is the submission time between those two
evals (evaluation is untimed, so it does not enter the figure).

    .venv/bin/python benchmarks/step_overhead.py --workloads fashion_mnist --frameworks torch
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import pandas as pd

from algoperf.frameworks import load_backend
from algoperf.plugins import find_submission, workload_class
from algoperf.results import EVALS_NAME, TrialKey, trial_dir
from algoperf.runner import run_trial
from algoperf.schema import HardwareConfig, RunConfig
from algoperf.spec import ForwardPassMode, Hyperparameters
from algoperf.tuning import SearchSpace


def adamw_defaults() -> Hyperparameters:
    return Hyperparameters(SearchSpace.from_yaml(find_submission("adamw").search_space_path).defaults())


def bare_torch(workload, steps: int, one_batch: bool, seed: int, warmup: int) -> float:
    import torch

    from algoperf.frameworks.torch import BACKEND, warmup_cosine

    sync = BACKEND.sync

    hp = adamw_defaults()
    splits = workload.load_splits()
    train = workload.to_device(splits.train)
    model, state = workload.init_model_fn(seed)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=hp.learning_rate,
        betas=(1 - hp.one_minus_beta1, hp.beta2),
        weight_decay=hp.weight_decay,
    )
    sched = warmup_cosine(opt, int(hp.warmup_fraction * workload.step_hint), workload.step_hint)
    batches = workload.train_batches(train, workload.default_batch_size, seed)
    fixed = next(batches)
    total = 0.0
    for i in range(warmup + steps):
        start = time.perf_counter()
        batch = fixed if one_batch else next(batches)
        out, _ = workload.model_fn(model, batch, state, ForwardPassMode.TRAIN, None, True)
        loss = workload.loss_fn(batch["targets"], out, batch.get("weights"))
        loss = loss["summed"] / loss["n_valid_examples"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        sync()
        total += (time.perf_counter() - start) if i >= warmup else 0.0
        float(loss.detach())
    return total / steps


def bare_jax(workload, steps: int, one_batch: bool, seed: int, warmup: int) -> float:
    import jax
    import optax

    from algoperf.frameworks.jax import warmup_cosine

    hp = adamw_defaults()
    splits = workload.load_splits()
    train = workload.to_device(splits.train)
    params, state = workload.init_model_fn(seed)
    schedule = warmup_cosine(
        hp.learning_rate, int(hp.warmup_fraction * workload.step_hint), workload.step_hint
    )
    tx = optax.adamw(schedule, b1=1 - hp.one_minus_beta1, b2=hp.beta2, eps=1e-8, weight_decay=hp.weight_decay)
    opt_state = tx.init(params)

    @jax.jit
    def step(params, opt_state, batch):
        def mean_loss(p):
            out, _ = workload.model_fn(p, batch, state, ForwardPassMode.TRAIN, None, True)
            loss = workload.loss_fn(batch["targets"], out, batch.get("weights"))
            return loss["summed"] / loss["n_valid_examples"]

        loss, grads = jax.value_and_grad(mean_loss)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    batches = workload.train_batches(train, workload.default_batch_size, seed)
    fixed = next(batches)
    total = 0.0
    for i in range(warmup + steps):
        start = time.perf_counter()
        batch = fixed if one_batch else next(batches)
        params, opt_state, loss = step(params, opt_state, batch)
        jax.block_until_ready((params, opt_state))
        total += (time.perf_counter() - start) if i >= warmup else 0.0
        float(loss)
    return total / steps


def harness(
    workload_name: str, framework: str, steps: int, tmp: str, repeat: int, warmup: int
) -> tuple[float, float]:
    """Seconds per step of a real trial (adamw), between its evals at `warmup` and the end, and
    the supervisor's seconds per eval to copy the worker's parameters in (untimed)."""
    sweep = f"bench{repeat}"
    workload_settings = {"size": "small", "max_submission_time_s": 10**6, "eval_every_steps": warmup}
    cfg = RunConfig(
        workload=workload_name,
        submission="adamw",
        framework=framework,
        results_dir=tmp,
        sweep=sweep,
        max_steps=warmup + steps,
        eval_every_steps=warmup,
        max_submission_time_s=10**6,
        stop_at_target=False,
        hardware=HardwareConfig(
            name="bench", common={"eval_test": "final"}, workloads={workload_name: workload_settings}
        ),
    )
    record = run_trial(cfg, progress=False)
    assert record["status"] in ("budget_exhausted", "reached"), record["error"]
    directory = trial_dir(tmp, TrialKey(sweep, "adamw", workload_name, framework, 0, 0))
    evals = pd.read_csv(directory / EVALS_NAME).set_index("step")["submission_time_s"]
    per_step = (evals.loc[warmup + steps] - evals.loc[warmup]) / steps
    return per_step, record["param_transfer_s"] / max(1, record["num_evals"])


def state_megabytes(cls: type, framework: str) -> float:
    """Size of what crosses from worker to supervisor at each eval: parameters and model state."""
    fw = load_backend(framework)
    params, model_state = cls().init_model_fn(0)
    return sum(nbytes for *_, nbytes in fw.state_layout(params, model_state)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workloads", nargs="+", default=["fashion_mnist", "shakespeare", "qm9"])
    parser.add_argument("--frameworks", nargs="+", default=["torch", "jax"])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lines = []
    for framework in args.frameworks:
        fw = load_backend(framework)
        fw.set_threads(fw.default_threads())
        bare_loop = bare_torch if framework == "torch" else bare_jax
        for name in args.workloads:
            cls = workload_class(name, framework)
            overhead, pipeline, transfer = [], [], []
            with tempfile.TemporaryDirectory() as tmp:
                for r in range(args.repeats):
                    bare = bare_loop(cls(), args.steps, one_batch=False, seed=r, warmup=args.warmup)
                    ran, copy_in_s = harness(name, framework, args.steps, tmp, r, args.warmup)
                    transfer.append(copy_in_s)
                    fixed = bare_loop(cls(), args.steps, one_batch=True, seed=r, warmup=args.warmup)
                    overhead.append(ran / bare)
                    pipeline.append(bare / fixed)
                    print(
                        f"  {name}/{framework} repeat {r}: bare {bare * 1e3:.1f} ms/step, "
                        f"harness {ran * 1e3:.1f} ms/step, one batch {fixed * 1e3:.1f} ms/step",
                        flush=True,
                    )
            lines.append(
                f"{name:<14} {framework:<6} harness/bare {statistics.median(overhead):.3f} "
                f"(goal <= 1.02)   pipeline/one-batch {statistics.median(pipeline):.3f} (goal <= 1.03)   "
                f"parameters {state_megabytes(cls, framework):.2f} MB, copied in "
                f"{statistics.median(transfer) * 1e3:.2f} ms per eval"
            )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
