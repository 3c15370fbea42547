"""No silent skips: under ``CI=true`` a test that skips fails the run, unless it is allowed here.

A green suite that skipped its hardest tests is a red suite. Tests skip where a tool they need
is missing (Mosquitto, Prometheus, the Kinesis emulator); on a developer's machine that is a
hint, in CI it is a failure: ``make install`` installs every such tool. What truly cannot run
here is listed in ``ALLOWED`` with its reason, and the list is printed at the end of every run.
"""

from __future__ import annotations

import os

import pytest

ALLOWED: dict[str, str] = {
    # "tests/path/test_file.py::test_name": "why it cannot run in CI",
}
"""Node ids that may skip in CI, each with its reason. Empty: every test runs."""

_skipped: list[tuple[str, str]] = []


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    # A module that skips itself (importorskip at its top) skips every test in it.
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skipped.append((report.nodeid, reason))


def _unallowed() -> list[tuple[str, str]]:
    return [(nodeid, reason) for nodeid, reason in _skipped if nodeid not in ALLOWED]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _in_ci() and _unallowed() and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    write = terminalreporter.write_line
    write("allowed to skip in CI: " + ("none" if not ALLOWED else ""))
    for nodeid, reason in ALLOWED.items():
        write(f"  {nodeid}: {reason}")
    unallowed = _unallowed()
    if unallowed:
        verdict = "FAILED: tests skipped in CI" if _in_ci() else "skipped (a failure under CI=true)"
        write(f"{verdict}: {len(unallowed)}", red=_in_ci(), bold=True)
        for nodeid, reason in unallowed:
            write(f"  {nodeid}: {reason}")
