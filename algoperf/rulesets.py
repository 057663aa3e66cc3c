"""The tuning rulesets as one object: how hyperparameters are chosen and what budget a trial gets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from algoperf.errors import AlgoperfError
from algoperf.tuning import RULESETS


@dataclass(frozen=True)
class Ruleset:
    name: str
    num_studies: int = 3
    num_trials: int = 5
    # Self-tuning rulesets (self, calibrated) have no search and get this many budgets.
    self_tuning_budget_factor: float = 1.5

    def __post_init__(self) -> None:
        if self.name not in RULESETS:
            raise AlgoperfError(f"unknown ruleset {self.name!r}; use one of {', '.join(RULESETS)}.")

    @classmethod
    def from_config(cls, node: str | Mapping[str, Any]) -> Ruleset:
        """From a name or a ruleset config node (conf/ruleset/*.yaml)."""
        if isinstance(node, str):
            return cls(node, num_trials=5 if node == "external" else 1)
        return cls(
            name=str(node["name"]),
            num_studies=int(node.get("num_studies", 3)),
            num_trials=int(node.get("num_trials", 5 if node["name"] == "external" else 1)),
            self_tuning_budget_factor=float(node.get("self_tuning_budget_factor", 1.5)),
        )

    @property
    def self_tuning(self) -> bool:
        return self.name != "external"

    def budget_s(self, profile_budget_s: float, override_s: float | None = None) -> float:
        """A trial's submission-time budget: an explicit override as given, else the hardware
        profile's budget, times the self-tuning factor for self-tuning rulesets."""
        if override_s:
            return float(override_s)
        return float(profile_budget_s) * (self.self_tuning_budget_factor if self.self_tuning else 1.0)
