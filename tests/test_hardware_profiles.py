"""Every shipped hardware profile covers every workload of the registry, in every framework it
has, with a size the workload defines and a usable budget and eval schedule."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from algoperf.hardware import workload_settings
from algoperf.plugins import REPO_ROOT, list_workloads, workload_class
from algoperf.schema import HardwareConfig

PROFILES = sorted((REPO_ROOT / "conf" / "hardware").glob("*.yaml"))
WORKLOADS = {
    name: entry
    for name, entry in list_workloads().items()
    if Path(entry["folder"]).resolve().parent == (REPO_ROOT / "workloads").resolve()
}


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_covers_every_workload_and_framework(path):
    # Through the schema: an unknown key or a value of the wrong type fails here too.
    profile = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HardwareConfig), OmegaConf.load(path)))
    assert profile.name == path.stem
    for name, entry in WORKLOADS.items():
        for framework in entry["frameworks"]:
            settings = workload_settings(profile, name, framework)
            assert settings.size in workload_class(name, framework).sizes, (path.stem, name)
            assert settings.max_submission_time_s > 0
            assert (settings.eval_every_steps or 0) > 0 or (settings.eval_period_s or 0) > 0
