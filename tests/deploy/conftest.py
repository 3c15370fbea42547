"""Fixtures of the deploy/ecs/ tests (the checkers are in deploy_tf_checks.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The checkers module sits beside this file; make it importable whatever pytest's import mode.
sys.path.insert(0, str(Path(__file__).resolve().parent))

pytest.importorskip("hcl2", reason="python-hcl2 is needed for the deploy tests")

from deploy_tf_checks import MODULE_DIR, Module  # noqa: E402


@pytest.fixture(scope="session")
def module() -> Module:
    return Module.load(MODULE_DIR)


@pytest.fixture
def mutable_module(module: Module) -> Module:
    return module.copy()
