"""The layers stay layered: import-linter's contract from pyproject.toml, and imports at module level."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "store", "catalog", "fingerprinting", "licensing", "shards", "training", "lineage", "assets",
            "dagster_project", "web")
# Libraries whose import costs seconds or needs a device: imported where used, so that a command
# that does not need them does not pay for them. Everything else is imported at module level.
LAZY_ALLOWED = {"torch", "av", "boto3", "botocore", "dagster"}


def test_import_linter_contract_is_kept() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def _function_local_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                if isinstance(sub, (ast.Import, ast.ImportFrom)):
                    module = sub.module if isinstance(sub, ast.ImportFrom) else sub.names[0].name
                    if (module or "").split(".")[0] not in LAZY_ALLOWED:
                        found.append(f"{path.relative_to(ROOT)}:{sub.lineno}: {ast.unparse(sub)}")
    return found


def test_domain_code_imports_at_module_level() -> None:
    """Only the command line defers imports (so `linernotes --help` stays fast); nothing else does."""
    offenders = [hit for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
                 if "cli" not in path.relative_to(ROOT).parts for hit in _function_local_imports(path)]
    assert not offenders, "\n".join(offenders)


def test_the_contract_catches_an_upward_import(tmp_path: Path) -> None:
    """The contract is not vacuous: an import from store up into licensing breaks it."""
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    probe = ROOT / "store" / "_layering_probe.py"
    probe.write_text("import licensing.policy  # noqa: F401\n", encoding="utf-8")
    try:
        result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "store is not allowed to import licensing" in result.stdout
    assert config == (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_the_installed_packages_are_the_projects_from_any_directory(tmp_path: Path) -> None:
    """Run from outside the repository (as the installed `linernotes` command is), every package of the
    project resolves to its own source: no dependency's top-level folder shadows one of them."""
    found = subprocess.run([sys.executable, "-c", "import importlib, json, sys; print(json.dumps("
                            "{p: importlib.import_module(p).__file__ for p in sys.argv[1:]}))", *PACKAGES],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True)
    for package, file in json.loads(found.stdout).items():
        assert file is not None and Path(file).resolve() == ROOT / package / "__init__.py", (package, file)
