"""Running several suites in one pytest session (`pytest tests/e2e tests/sdk`).

Each suite's conftest is imported under the module name `conftest` and its test files do
`from conftest import ...`; pytest imports every conftest before any test file, so without help
all test files would see the last conftest. `bind_conftest` returns a `pytest_collectstart` hook
that, before a test file of the conftest's directory is imported, points `conftest` at it."""

import sys

import pytest


def bind_conftest(module):
    """The `pytest_collectstart` hook for the conftest `module` (pass `sys.modules[__name__]`)."""

    def pytest_collectstart(collector):
        if isinstance(collector, pytest.Module):
            sys.modules["conftest"] = module

    return pytest_collectstart
