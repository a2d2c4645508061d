"""The dependency rules of the house style hold: import-linter checks each contract declared
in pyproject.toml ([tool.importlinter]) against the real import graph."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"][
    "contracts"
]


def _lint_imports() -> str:
    beside_python = Path(sys.executable).parent / "lint-imports"
    found = str(beside_python) if beside_python.exists() else shutil.which("lint-imports")
    assert found, "lint-imports (import-linter) is not installed: pip install -e '.[dev]'"
    return found


def test_the_style_rules_are_all_declared():
    assert {contract["id"] for contract in CONTRACTS} >= {
        "layers",
        "nothing-imports-bot",
        "workers-not-slack-inbound",
        "core-is-plain",
        "one-ansible-seam",
    }


@pytest.mark.parametrize("contract", CONTRACTS, ids=[c["id"] for c in CONTRACTS])
def test_contract_is_kept(contract):
    result = subprocess.run(
        [_lint_imports(), "--contract", contract["id"], "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{contract['name']} is broken:\n{result.stdout}{result.stderr}"


def test_the_wheel_ships_the_product_not_the_benchmarks_or_tests():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    top = {pattern.rstrip("*").rstrip(".") for pattern in packages}
    assert top == {"bot", "handlers", "workers", "db", "migrations", "core", "slackui"}
