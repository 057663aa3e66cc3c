"""The framework backends implement the one Backend interface the harness uses."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from algoperf.frameworks import FRAMEWORKS, load_backend
from algoperf.frameworks.backend import Backend
from algoperf.workload import Workload


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_each_framework_implements_the_whole_interface(name):
    backend = load_backend(name)
    assert isinstance(backend, Backend) and backend.name == name
    assert not getattr(type(backend), "__abstractmethods__", None)
    assert issubclass(backend.workload_base, Workload)
    assert backend.workload_base.framework == name
    # Every method of the interface answers with the interface's parameters.
    for method_name, method in inspect.getmembers(Backend, inspect.isfunction):
        if method_name.startswith("_"):
            continue
        expected = list(inspect.signature(method).parameters)[1:]
        actual = list(inspect.signature(getattr(backend, method_name)).parameters)
        assert actual == expected, method_name


@pytest.mark.parametrize("name", FRAMEWORKS)
def test_the_runtime_answers(name):
    backend = load_backend(name)
    assert backend.default_threads() >= 1
    assert backend.to_float(backend.workload_base.xp.asarray(1.5)) == 1.5
    assert backend.is_finite(np.ones(2)) and not backend.is_finite(np.array([1.0, np.nan]))
    assert backend.compile_time_s() >= 0
    backend.sync()


def test_an_unknown_framework_is_named():
    with pytest.raises(ValueError, match="unknown framework 'mxnet'"):
        load_backend("mxnet")
