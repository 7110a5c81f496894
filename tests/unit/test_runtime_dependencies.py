"""Every third-party module the services import at run time is a runtime dependency.

A service image installs `pip install .` (deploy/Dockerfile): the `[project]
dependencies` of pyproject.toml and nothing of the `dev` extra. A module that the code
of `shared/`, `services/` or `deploy/` imports but that only the `dev` extra installs
works in the virtual environment of `make setup` and crashes the container at start.
Test support (`shared/testing/`, every `tests/` directory) may use the `dev` extra.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = {"shared", "services", "deploy"}
RUNTIME_TREES = ("shared", "services", "deploy")


def _is_test_support(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return "tests" in parts or parts[:2] == ("shared", "testing") or path.name == "conftest.py"


def _imported_top_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports of one source file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _normalised(name: str) -> str:
    return canonicalize_name(name)


def _runtime_distributions() -> set[str]:
    """The runtime dependencies of pyproject.toml and everything they install in turn
    (with the extras asked for, e.g. `pyjwt[crypto]` installs cryptography)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pending = [Requirement(r) for r in project["dependencies"]]
    found: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = _normalised(requirement.name)
        if name in found:
            continue
        found.add(name)
        for text in requires(requirement.name) or []:
            nested = Requirement(text)
            marker = nested.marker
            if marker is None or any(
                marker.evaluate({"extra": extra}) for extra in (requirement.extras or {""})
            ):
                pending.append(nested)
    return found


def runtime_imports_outside_dependencies(root: Path = ROOT) -> dict[str, list[str]]:
    """Third-party modules imported by the run-time code under `root` whose distribution
    is not a runtime dependency of this project, each with the files that import it."""
    runtime = _runtime_distributions()
    distributions = packages_distributions()
    stdlib = set(sys.stdlib_module_names)
    missing: dict[str, list[str]] = {}
    for tree in RUNTIME_TREES:
        for path in sorted((root / tree).rglob("*.py")):
            if _is_test_support(path, root):
                continue
            for module in _imported_top_modules(path) - stdlib - FIRST_PARTY:
                providers = {_normalised(d) for d in distributions.get(module, [])}
                if not providers & runtime:
                    missing.setdefault(module, []).append(str(path.relative_to(root)))
    return missing


def test_run_time_code_imports_only_runtime_dependencies() -> None:
    assert runtime_imports_outside_dependencies() == {}


def test_a_dev_only_import_in_service_code_is_found(tmp_path: Path) -> None:
    """The check can fail: a module of the dev extra imported by service code is named,
    and the same import in test support is allowed."""
    assert "pytest" not in _runtime_distributions()
    (tmp_path / "services" / "tests").mkdir(parents=True)
    (tmp_path / "services" / "tests" / "test_x.py").write_text("import pytest\n")
    assert runtime_imports_outside_dependencies(tmp_path) == {}
    (tmp_path / "services" / "handlers.py").write_text("from pytest import fixture\nimport json\n")
    assert runtime_imports_outside_dependencies(tmp_path) == {"pytest": ["services/handlers.py"]}


def files_outside_package_data(root: Path = ROOT) -> list[str]:
    """Files other than Python sources under the run-time packages (``shared``,
    ``services``; test support aside) that no ``[tool.setuptools.package-data]`` pattern
    of pyproject.toml installs: an installed service would miss them (a schema, a
    template, a reference table)."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    patterns = tool["setuptools"]["package-data"]
    missing = []
    for tree in ("shared", "services"):
        for path in sorted((root / tree).rglob("*")):
            if (not path.is_file() or path.suffix in (".py", ".pyc", ".pyi")
                    or "__pycache__" in path.parts or _is_test_support(path, root)):
                continue
            relative = path.relative_to(root)
            installed = any(
                relative.is_relative_to(Path(*package.split(".")))
                and any(relative.relative_to(Path(*package.split("."))).match(glob)
                        for glob in globs)
                for package, globs in patterns.items())
            if not installed:
                missing.append(str(relative))
    return missing


def test_every_data_file_of_the_packages_is_installed() -> None:
    assert files_outside_package_data() == []


def test_a_data_file_no_pattern_installs_is_found(tmp_path: Path) -> None:
    (tmp_path / "shared" / "contracts" / "schemas").mkdir(parents=True)
    (tmp_path / "shared" / "contracts" / "schemas" / "A.json").write_text("{}")
    assert files_outside_package_data(tmp_path) == []
    (tmp_path / "shared" / "contracts" / "extra.yaml").write_text("a: 1")
    assert files_outside_package_data(tmp_path) == ["shared/contracts/extra.yaml"]
