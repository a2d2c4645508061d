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


def test_every_module_imports_in_one_direction():
    # no two modules of ours import each other, directly or through others, even lazily
    # inside a function (imports only a type checker follows do not count)
    import grimp

    graph = grimp.build_graph(*(c for c in ("bot", "handlers", "workers", "slackui", "core",
                                            "db")), cache_dir=None,
                              exclude_type_checking_imports=True)
    circles = sorted({tuple(sorted((module, imported)))
                      for module in graph.modules
                      for imported in graph.find_modules_directly_imported_by(module)
                      if graph.find_shortest_chain(importer=imported, imported=module)})
    assert circles == []
