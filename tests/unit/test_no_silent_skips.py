"""Under CI=true a skipped test fails the run; without it the run passes and says what skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(
        "import pytest\n\ndef test_runs():\n    assert True\n\n"
        "def test_needs_a_tool():\n    pytest.skip('the tool is missing')\n"
    )
    (tmp_path / "test_module.py").write_text("import pytest\n\npytest.importorskip('no_such_module_here')\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.skips", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_a_skip_fails_the_run_in_ci(tmp_path: Path) -> None:
    result = _run(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "FAILED: tests skipped in CI: 2" in result.stdout  # a test and a whole module
    assert "test_needs_a_tool: Skipped: the tool is missing" in result.stdout


def test_outside_ci_a_skip_is_reported_not_failed(tmp_path: Path) -> None:
    result = _run(tmp_path, None)
    assert result.returncode == 0, result.stdout
    assert "skipped (a failure under CI=true): 2" in result.stdout
    assert "allowed to skip in CI: none" in result.stdout
