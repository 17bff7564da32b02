"""A pytest plugin for the browser tests: keep each phase's report on the test item.

A fixture's teardown then reads ``request.node.rep_call`` to tell whether the test
failed, and saves a screenshot of the browser if it did.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
