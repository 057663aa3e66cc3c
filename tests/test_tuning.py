"""Search spaces, the scrambled Halton sampler, rulesets and seed derivation."""

import math

import numpy as np
import pytest
from scipy.stats import qmc

from algoperf.errors import AlgoperfError
from algoperf.tuning import SearchSpace, derive_seed, trial_hparams

SPACE = {
    "learning_rate": {"min": 1e-4, "max": 1e-1, "scaling": "log", "default": 1e-3},
    "one_minus_beta1": {"min": 0.01, "max": 0.5, "scaling": "log"},
    "warmup_fraction": {"choices": [0.02, 0.05, 0.1], "default": 0.05},
    "dropout": {"min": 0.0, "max": 0.5},
    "label_smoothing": 0.1,
}


def space():
    return SearchSpace.from_dict(SPACE, "test.yaml")


def test_sampler_is_deterministic_per_study_and_differs_across_studies():
    s = space()
    a = s.sample_many(8, study_seed=derive_seed(0, "study", 0))
    b = s.sample_many(8, study_seed=derive_seed(0, "study", 0))
    c = s.sample_many(8, study_seed=derive_seed(0, "study", 1))
    assert a == b and a != c
    assert s.sample(3, derive_seed(0, "study", 0)) == a[3]


def test_log_scaling_and_ranges():
    points = space().sample_many(256, study_seed=7)
    lrs = np.array([p["learning_rate"] for p in points])
    assert lrs.min() >= 1e-4 and lrs.max() <= 1e-1
    # Log scaling: about half the points fall below the geometric midpoint 10^-2.5.
    below = np.mean(lrs < 10**-2.5)
    assert 0.45 < below < 0.55
    dropouts = np.array([p["dropout"] for p in points])
    assert abs(np.mean(dropouts < 0.25) - 0.5) < 0.05  # linear: half below the midpoint


def test_discrete_choices_and_fixed_values():
    points = space().sample_many(300, study_seed=3)
    counts = {c: sum(p["warmup_fraction"] == c for p in points) for c in (0.02, 0.05, 0.1)}
    assert all(90 <= n <= 110 for n in counts.values()), counts
    assert all(p["label_smoothing"] == 0.1 for p in points)


def test_halton_covers_the_space_better_than_random():
    """Centered L2 discrepancy of the unit-cube points: quasi-random beats pseudo-random."""
    s = space()
    n = 64
    unit = []
    for p in s.sample_many(n, study_seed=11):
        unit.append(
            [
                (math.log(p["learning_rate"]) - math.log(1e-4)) / (math.log(1e-1) - math.log(1e-4)),
                (math.log(p["one_minus_beta1"]) - math.log(0.01)) / (math.log(0.5) - math.log(0.01)),
                p["dropout"] / 0.5,
            ]
        )
    halton_discrepancy = qmc.discrepancy(np.array(unit))
    random_discrepancy = np.median(
        [qmc.discrepancy(np.random.default_rng(i).random((n, 3))) for i in range(20)]
    )
    assert halton_discrepancy < 0.5 * random_discrepancy


def test_defaults_and_overrides():
    s = space()
    d = s.defaults()
    assert d["learning_rate"] == 1e-3 and d["warmup_fraction"] == 0.05 and d["label_smoothing"] == 0.1
    assert 0.01 <= d["one_minus_beta1"] <= 0.5  # no default: the first quasi-random point
    hp = trial_hparams(s, "external", 0, 0, None, {"learning_rate": 0.5})
    assert hp["learning_rate"] == 0.5
    with pytest.raises(AlgoperfError, match="learning_rat.*Did you mean 'learning_rate'"):
        trial_hparams(s, "external", 0, 0, None, {"learning_rat": 0.5})
    with pytest.raises(AlgoperfError, match=r"hparams.learning_rate='abc': learning_rate is a number"):
        trial_hparams(s, "external", 0, 0, None, {"learning_rate": "abc"})


def test_self_ruleset_uses_defaults_only():
    s = space()
    assert trial_hparams(s, "self", 0, 2, 3, {}) == s.defaults()
    assert trial_hparams(s, "external", 0, 2, 3, {}) != s.defaults()


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"lr": {"min": 1, "max": 0.1}}, "'lr': `min` (1.0) must be below `max` (0.1)"),
        ({"lr": {"min": 0, "max": 1, "scaling": "log"}}, "'lr': log scaling needs `min` > 0"),
        (
            {"lr": {"min": 0.1, "max": 1, "scaling": "exp"}},
            "'lr': scaling must be `log` or `linear`",
        ),
        ({"lr": {"min": 0.1, "max": 1, "default": 2}}, "'lr': default 2 is outside"),
        ({"lr": {"min": 0.1}}, "'lr': a range needs both `min` and `max`"),
        ({"lr": {"mn": 0.1, "max": 1}}, "'lr': unknown key(s) ['mn']"),
        ({"wd": {"choices": []}}, "'wd': `choices` must be a non-empty list"),
        ({"wd": {"choices": [1, 2], "default": 3}}, "'wd': default 3 is not one of the choices"),
        ({"wd": [1, 2]}, "'wd': a list is ambiguous"),
        ({"bad-name": 1}, "names must be Python identifiers"),
        ([1, 2], "a search space is a mapping"),
    ],
)
def test_malformed_spaces_name_the_key_and_the_fix(spec, message):
    with pytest.raises(AlgoperfError) as err:
        SearchSpace.from_dict(spec, "space.yaml")
    assert message in str(err.value) and "space.yaml" in str(err.value)


def test_seeds_are_distinct_and_stable():
    seeds = {derive_seed(0, "trial", s, t) for s in range(5) for t in range(20)}
    assert len(seeds) == 100
    assert derive_seed(0, "trial", 1, 2) == derive_seed(0, "trial", 1, 2)
    assert derive_seed(1, "trial", 1, 2) != derive_seed(0, "trial", 1, 2)
