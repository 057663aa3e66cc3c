"""Rules enforced in code: what a submission can reach through the workload it receives."""

import pytest

from algoperf.plugins import workload_class
from algoperf.rules import RuleViolation, WorkloadView, check_param_shapes


@pytest.fixture
def view():
    workload = workload_class("toy", "torch")()
    workload.load_splits()
    workload.init_model_fn(0)
    return WorkloadView(workload)


@pytest.mark.parametrize(
    "name",
    [
        "load_splits",
        "eval_metrics",
        "eval_batches",
        "to_device",
        "data_dir",
        "_workload",
        "__dict__",
        "target_value",
    ],
)
def test_eval_data_and_evaluation_are_out_of_reach(view, name):
    with pytest.raises(AttributeError, match="not available to submissions|has no attribute"):
        getattr(view, name)


def test_training_interface_is_visible_and_read_only(view):
    assert view.step_hint == 200 and view.full_name == "toy"
    assert set(view.param_types) == set(view.param_shapes)
    assert callable(view.model_fn) and callable(view.loss_fn)
    with pytest.raises(AttributeError, match="cannot change"):
        view.step_hint = 10**6
    assert not hasattr(view, "__dict__")


def test_changed_parameters_are_a_rule_violation():
    shapes = {"a": (2, 3), "b": (3,)}
    check_param_shapes(shapes, dict(shapes))
    with pytest.raises(RuleViolation, match=r"added \['c'\]"):
        check_param_shapes(shapes, {**shapes, "c": (1,)})
    with pytest.raises(RuleViolation, match=r"reshaped a \(2, 3\)->\(4, 3\)"):
        check_param_shapes(shapes, {"a": (4, 3), "b": (3,)})
