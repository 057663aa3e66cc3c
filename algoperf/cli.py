"""`algoperf` command line: list, check, run, sweep, score, new-submission."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from algoperf.errors import AlgoperfError

if TYPE_CHECKING:
    from algoperf.schema import RunConfig

USAGE = """usage: algoperf COMMAND [...]

  list                                  workloads (+variants), submissions, rulesets, hardware profiles
  check SUBMISSION [--framework F] [--parity]
                                        validate a submission before spending compute;
                                        --parity: do its torch and JAX updates agree?
  run workload=W submission=S [k=v...]  one timed trial (Hydra overrides, see conf/config.yaml)
  sweep workloads=[..] submissions=[..] a leaderboard sweep (each trial in its own process)
  score RESULTS_DIR [--out DIR] [--measure time|steps] [--verify] [--trust-unsigned]
        [--skip-invalid] [--split-settings] [--merge-sweeps] [--include-smoke]
  new-submission NAME [--dir DIR]       copy the template to start a submission
  set-targets WORKLOAD [hardware=...]   target-setting procedure: tune, repeat, set target/budget
"""


def main(argv: list[str] | None = None) -> int:
    import os

    # A trial's supervisor and worker share the device: JAX must not preallocate most of it.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command in ("run", "sweep") and any(a in ("-h", "--help") for a in rest):
        print(config_help(command))
        return 0
    commands = {
        "list": cmd_list,
        "check": cmd_check,
        "run": cmd_run,
        "sweep": cmd_sweep,
        "score": cmd_score,
        "new-submission": cmd_new_submission,
        "set-targets": cmd_set_targets,
    }
    if command not in commands:
        from algoperf.errors import did_you_mean

        print(
            f"error: unknown command {command!r}." + did_you_mean(command, commands),
            file=sys.stderr,
        )
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return commands[command](rest)
    except AlgoperfError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; complete trials are kept and a re-run resumes.", file=sys.stderr)
        return 130


RUN_HELP = "usage: algoperf run workload=W submission=S [KEY=VALUE ...]\n"
SWEEP_HELP = """usage: algoperf sweep workloads=[W,...] submissions=[S,...] [KEY=VALUE ...]

sweep keys:
  workloads=[...] submissions=[...]   what to run (registry names or submission paths)
  frameworks=[torch,jax]              default [torch]
  num_studies=N num_trials=N          default: the ruleset's (self/calibrated: 1 trial per study)
  n_jobs=N                            trials in parallel (default: cores / threads_per_trial)
  new_sweep=true                      run under a fresh name (<sweep>-2, ...) if the sweep exists
  hydra/launcher=slurm hydra.launcher.*=...   run each trial as a cluster job

every other key is passed to each trial (see below)
"""


def config_help(command: str) -> str:
    """`run --help` / `sweep --help`: the usage line and every trial key, from conf/config.yaml."""
    from algoperf.config import CONF_DIR

    keys = (CONF_DIR / "config.yaml").read_text(encoding="utf-8")
    head = SWEEP_HELP if command == "sweep" else RUN_HELP
    return f"{head}\ntrial keys (conf/config.yaml; groups: hardware, ruleset, logger):\n\n{keys}"


def cmd_list(args: list[str]) -> int:
    from algoperf.config import group_options
    from algoperf.plugins import list_submissions, list_workloads

    print("workloads:")
    for name, entry in sorted(list_workloads().items()):
        kind = "" if entry["variant"] == "base" else f" (variant of {entry['base']})"
        better = "higher" if entry["higher_is_better"] else "lower"
        targets = ", ".join(f"{size} {t}" for size, t in entry["sizes"].items())
        print(
            f"  {name:<26} {entry['metric']} ({better} is better; targets: {targets})"
            f" [{', '.join(entry['frameworks'])}]{kind}"
        )
    print("submissions:")
    for name, source in sorted(list_submissions().items()):
        print(f"  {name:<26} [{', '.join(source.frameworks)}]  {source.folder}")
    print("rulesets:  " + ", ".join(group_options("ruleset")))
    print("hardware:  " + ", ".join(group_options("hardware")))
    return 0


def cmd_check(args: list[str]) -> int:
    from algoperf.check import check_submission

    parser = argparse.ArgumentParser(prog="algoperf check")
    parser.add_argument("submission")
    parser.add_argument("--framework", choices=["torch", "jax"], default=None)
    parser.add_argument("--workload", default="fashion_mnist", help="workload for the one-step run")
    parser.add_argument("--no-step", action="store_true", help="static checks only")
    parser.add_argument(
        "--parity",
        action="store_true",
        help="also compare the plugin's torch and JAX updates on the workload's parameters",
    )
    parser.add_argument("--parity-steps", type=int, default=10, help="steps compared by --parity")
    ns = parser.parse_args(args)
    ok = check_submission(ns.submission, ns.framework, ns.workload, run_step=not ns.no_step)
    if ok and ns.parity:
        from algoperf.check import check_parity

        ok = check_parity(ns.submission, ns.workload, ns.parity_steps)
    return 0 if ok else 1


def check_hparams(cfg: RunConfig) -> None:
    """Refuse hparams.NAME=VALUE overrides the submission's search space does not allow, and a
    trial beyond the last of a list of fixed points, before anything is written."""
    from algoperf.plugins import find_submission
    from algoperf.tuning import check_overrides, load_search_space

    space = load_search_space(find_submission(cfg.submission).folder, cfg.search_space)
    check_overrides(space, cfg.hparams)
    if space.max_trials is not None and cfg.trial is not None and not cfg.ruleset.self_tuning:
        space.sample(cfg.trial, study_seed=0)  # a list's point `trial`, or its error


def cmd_run(args: list[str]) -> int:
    from algoperf.config import compose
    from algoperf.loggers import make_callbacks
    from algoperf.results import TrialClaimed
    from algoperf.runner import run_trial
    from algoperf.sweep import EXIT_CLAIMED
    from algoperf.watchdog import fail_trial_when_job_dies

    # Started by a sweep's job process: if that dies, stop the worker and record why.
    fail_trial_when_job_dies()
    cfg = compose(args)
    check_hparams(cfg)
    try:
        record = run_trial(cfg, progress=cfg.progress, callbacks=make_callbacks(cfg))
    except TrialClaimed as e:
        print(f"trial {e} is running in another process; skipped.", file=sys.stderr)
        return EXIT_CLAIMED
    try:
        print_summary(record)
    except OSError:  # stdout gone (a pipe whose reader died): the record is written all the same
        pass
    return 0 if record["status"] in ("reached", "budget_exhausted", "training_complete") else 1


def print_summary(record: dict[str, Any]) -> None:
    reached = record["status"] == "reached"
    lines = [
        "",
        f"  trial      {record['submission']} on {record['workload']} ({record['framework']}), "
        f"study {record['study']} trial {record['trial']}, seed {record['seed']}",
        f"  status     {record['status'].upper()}",
        f"  target     {record['metric_name']} {record['target']} "
        f"({'higher' if record['metric_higher_is_better'] else 'lower'} is better)",
        f"  best       {record['best_validation']}  (final test {record.get('final_test')})",
    ]
    if reached:
        lines.append(
            f"  time to target   {record['time_to_target_s']:.1f} s submission time, "
            f"{record['steps_to_target']} steps"
        )
    lines += [
        f"  submission time  {record['submission_time_s']:.1f} s of "
        f"{record['max_submission_time_s']:.0f} s budget ({record['global_steps']} steps)",
        f"  eval time        {record['eval_time_s']:.1f} s (untimed), wall {record['wall_time_s']:.1f} s",
        f"  hparams    {json.dumps(record['hparams'])}",
    ]
    if record.get("error"):
        lines.append("  error:\n" + "\n".join("    " + line for line in record["error"].splitlines()))
    print("\n".join(lines))


def cmd_sweep(args: list[str]) -> int:
    from algoperf.sweep import run_sweep_cli

    return run_sweep_cli(args)


def cmd_score(args: list[str]) -> int:
    from algoperf import scoring
    from algoperf.comparable import score_parts
    from algoperf.report import load_for_scoring, print_summary, render_report

    parser = argparse.ArgumentParser(prog="algoperf score")
    parser.add_argument("results_dir")
    parser.add_argument("--out", default=None, help="output folder (default: RESULTS_DIR)")
    parser.add_argument("--measure", choices=["time", "steps"], default="time")
    parser.add_argument("--tau-max", type=float, default=4.0)
    parser.add_argument("--reference", default="adamw")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="flag records whose submission or workload code has changed since, or whose signature fails",
    )
    parser.add_argument(
        "--trust-unsigned",
        action="store_true",
        help="score records that fail their signature check too; the report is marked unverified",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="leave out invalid records (malformed, inconsistent, misfiled, duplicated) and list them",
    )
    parser.add_argument(
        "--merge-sweeps", action="store_true", help="score several sweeps under the folder as one"
    )
    parser.add_argument(
        "--split-settings",
        action="store_true",
        help="score each group of competitors whose settings (budget, eval schedule, ...) agree on its own",
    )
    parser.add_argument(
        "--include-smoke", action="store_true", help="score step-capped (max_steps) smoke runs too"
    )
    ns = parser.parse_args(args)
    if ns.verify:
        from algoperf.verify import verify_records

        if not verify_records(ns.results_dir, trust_unsigned=ns.trust_unsigned):
            return 1
    results = load_for_scoring(ns.results_dir, trust_unsigned=ns.trust_unsigned, skip_invalid=ns.skip_invalid)
    if results.bad_signatures:  # only with --trust-unsigned: load_for_scoring refuses them otherwise
        print(
            f"warning: scoring {len(results.bad_signatures)} records that fail the signature check "
            "(--trust-unsigned); the report is marked unverified:",
            file=sys.stderr,
        )
        for line in results.bad_signatures:
            print(f"  {line}", file=sys.stderr)
    if results.invalid:  # only with --skip-invalid: load_for_scoring refuses them otherwise
        print(f"warning: left out {len(results.invalid)} invalid records (--skip-invalid):", file=sys.stderr)
        for line in results.invalid:
            print(f"  {line}", file=sys.stderr)
    parts = score_parts(results, merge_sweeps=ns.merge_sweeps, split_settings=ns.split_settings)
    out_root = Path(ns.results_dir if ns.out is None else ns.out)
    if len(parts) > 1:
        print(f"scoring {len(parts)} parts apart: {', '.join(label for label, _ in parts)}")
    for label, part in parts:
        scores = scoring.score(
            part,
            measure=ns.measure,
            tau_max=ns.tau_max,
            reference=ns.reference,
            trust_unsigned=ns.trust_unsigned,
            skip_invalid=ns.skip_invalid,
            include_smoke=ns.include_smoke,
        )
        scores.label = label
        written = render_report(part, scores, out_root / label if label else out_root)
        for path in written.values():
            print(path)
        print()
        print_summary(part, scores)
    return 0


def cmd_set_targets(args: list[str]) -> int:
    from algoperf.targets import main as set_targets

    # Accept the Hydra-style `hardware=h100` of the other commands as well as `--hardware h100`.
    argv = []
    for item in args:
        key, sep, value = item.partition("=")
        if sep and not item.startswith("-"):
            argv += [f"--{key.replace('_', '-')}", value]
        else:
            argv.append(item)
    set_targets(argv)
    return 0


def cmd_new_submission(args: list[str]) -> int:
    from algoperf.check import new_submission

    parser = argparse.ArgumentParser(prog="algoperf new-submission")
    parser.add_argument("name")
    parser.add_argument("--dir", default="submissions")
    ns = parser.parse_args(args)
    path = new_submission(ns.name, ns.dir)
    print(f"created {path}; edit it, then: algoperf check {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
