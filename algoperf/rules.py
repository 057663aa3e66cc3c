"""Benchmark rules the code enforces: what a submission may see, and what it may not change."""

from __future__ import annotations

from typing import Any

from algoperf.workload import Workload

# What a submission may read from the workload: its training-side interface (docs/rules.md, rule 1).
VISIBLE = frozenset(
    {
        "name",
        "full_name",
        "variant",
        "framework",
        "size",
        "options",
        "loss_type",
        "default_batch_size",
        "step_hint",
        "num_train_examples",
        "param_types",
        "param_shapes",
        "param_info",
        "model_fn",
        "loss_fn",
        "init_model_fn",
        "metric_name",
        "metric_higher_is_better",
    }
)


class RuleViolation(Exception):
    """A submission broke a rule of the benchmark (recorded as `failed: rule violation`)."""


def WorkloadView(workload: Workload) -> Any:  # noqa: N802 (reads as a type at call sites)
    """The workload as a submission sees it: no data loading, no evaluation, no eval splits.

    The runner keeps the validation and test splits to itself; this view makes sure the
    workload object handed to a submission cannot load or evaluate them either. The real
    workload lives only in this closure, not in an attribute of the view.
    """

    class SubmissionWorkloadView:
        __slots__ = ()

        def __getattr__(self, name: str) -> Any:
            if name not in VISIBLE:
                raise AttributeError(
                    f"workload.{name} is not available to submissions (visible: {', '.join(sorted(VISIBLE))})"
                )
            return getattr(workload, name)

        def __setattr__(self, name: str, value: Any) -> None:
            raise AttributeError("the workload is fixed by the benchmark; a submission cannot change it")

        def __repr__(self) -> str:
            return f"<workload {workload.full_name} (submission view)>"

    return SubmissionWorkloadView()


def check_param_shapes(expected: dict[str, tuple[int, ...]], actual: dict[str, tuple[int, ...]]) -> None:
    """The model is the workload's: a submission may change values, never names or shapes."""
    if actual == expected:
        return
    added = sorted(set(actual) - set(expected))
    removed = sorted(set(expected) - set(actual))
    changed = sorted(k for k in set(actual) & set(expected) if actual[k] != expected[k])
    parts = []
    if added:
        parts.append(f"added {added}")
    if removed:
        parts.append(f"removed {removed}")
    if changed:
        parts.append("reshaped " + ", ".join(f"{k} {expected[k]}->{actual[k]}" for k in changed[:5]))
    raise RuleViolation("rule violation: the submission changed the model's parameters: " + "; ".join(parts))
