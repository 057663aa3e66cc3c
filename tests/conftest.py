"""Shared test set-up: test-only workloads/submissions on the search path, quiet loggers."""

import atexit
import copy
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
os.environ["ALGOPERF_WORKLOADS_PATH"] = str(FIXTURES / "workloads")
os.environ["ALGOPERF_CONFIG_PATH"] = str(FIXTURES / "conf")
os.environ.setdefault("WANDB_MODE", "disabled")
# Tests use one thread so results are reproducible and parallel test workers don't fight.
os.environ.setdefault("ALGOPERF_THREADS", "1")
# Records are signed with a key made for this test session, never the user's own key. setdefault:
# test workers and the sweeps the tests start inherit it, so they all sign with one key.
_key_folder = tempfile.mkdtemp(prefix="algoperf-test-key-")
os.environ.setdefault("ALGOPERF_KEY_FILE", os.path.join(_key_folder, "record-signing.key"))
atexit.register(shutil.rmtree, _key_folder, ignore_errors=True)

# JAX's absl logging handler keeps the sys.stderr of the moment it was made: under pytest, the
# capture stream. An in-process sweep (Hydra's logging dictConfig) closes every handler, and
# absl's close() closes its stream unless it is the *current* sys.stderr, which pytest's global
# capture stream no longer is: the capture breaks ("I/O operation on closed file"). Point it at
# the real stderr, which absl never closes. (Outside tests the stream is the real stderr.)
try:
    from absl import logging as _absl_logging

    _absl_logging.get_absl_handler().python_handler.stream = sys.__stderr__
except ImportError:
    pass

from algoperf.schema import HardwareConfig  # noqa: E402 (after the environment above)

TOY_PROFILE = HardwareConfig(
    name="test",
    common={"eval_test": "final"},
    workloads={
        "toy": {"size": "small", "max_submission_time_s": 30, "eval_every_steps": 10},
        "toy_slow_eval": {"size": "small", "max_submission_time_s": 30, "eval_every_steps": 10},
        "toy_no_dropout": {"size": "small", "max_submission_time_s": 30, "eval_every_steps": 10},
    },
)


@pytest.fixture
def toy_profile():
    return copy.deepcopy(TOY_PROFILE)


def fixture_submission(name: str) -> str:
    return str(FIXTURES / "submissions" / name)


def pytest_sessionfinish(session):
    """In a pytest-xdist worker: hand the fault rows this worker collected to the controller."""
    from faults.fault_table import FAULT_ROWS

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["fault_rows"] = json.dumps(FAULT_ROWS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """In the pytest-xdist controller: gather each worker's fault rows for the table."""
    from faults.fault_table import FAULT_ROWS

    FAULT_ROWS.extend(json.loads(getattr(node, "workeroutput", {}).get("fault_rows", "[]")))


def pytest_terminal_summary(terminalreporter):
    from faults.fault_table import print_fault_table

    print_fault_table(terminalreporter)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    """A private $ALGOPERF_CACHE for one test module, so tests never read or damage the user's
    cache (e.g. QM9's graphs)."""
    root = tmp_path_factory.mktemp("algoperf_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALGOPERF_CACHE", str(root))
        yield root
