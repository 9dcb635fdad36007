"""The tests' own layout: what test modules share lives in tests/helpers/ or in fixtures, never in a test
module or a conftest that another module imports (pytest imports those under names of its own, so such
an import loads the module a second time, as a different one); and an app with other settings comes
from the `make_app` fixture."""

from __future__ import annotations

import ast
from pathlib import Path

from app.config import PROJECT_ROOT

TESTS = PROJECT_ROOT / "tests"
CLUSTER_TESTS = PROJECT_ROOT / "cluster" / "tests"


def imported_modules(source: Path) -> list[str]:
    """What `source` imports: each module, and each name imported from one (which may be a submodule);
    relative imports keep their leading dots."""
    modules = []
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = "." * node.level + node.module
            modules += [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules += ["." * node.level + alias.name for alias in node.names]
    return modules


def last_part(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def imports_of(trees: list[Path], wanted) -> dict[str, list[str]]:
    """{source file: the modules it imports that `wanted` picks}, for every Python file in `trees`."""
    found = {}
    for source in sorted(path for tree in trees for path in tree.rglob("*.py")):
        if picked := [module for module in imported_modules(source) if wanted(last_part(module))]:
            found[str(source)] = picked
    return found


def called_names(source: Path) -> set[str]:
    """The plain names that `source` calls, `create_app(...)` or `Config(...)`."""
    tree = ast.parse(source.read_text(), str(source))
    return {node.func.id for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}


def is_test_module(name: str) -> bool:
    return name.startswith("test_")


def test_the_scan_finds_absolute_and_relative_imports_of_test_modules(tmp_path):
    (tmp_path / "test_example.py").write_text(
        "from tests.integration.test_errors import x\nfrom . import test_other\nfrom tests.e2e import test_server\n"
        "import tests.unit.test_audit\nfrom tests.helpers.api import NIL_UUID\n"
    )
    assert imports_of([tmp_path], is_test_module) == {
        str(tmp_path / "test_example.py"): [
            "tests.integration.test_errors",
            ".test_other",
            "tests.e2e.test_server",
            "tests.unit.test_audit",
        ]
    }


def test_no_test_module_imports_another_test_module():
    assert imports_of([TESTS, CLUSTER_TESTS], is_test_module) == {}


def test_no_module_under_tests_imports_a_conftest():
    assert imports_of([TESTS], lambda name: name == "conftest") == {}


# schemathesis reads the document while collecting, before any fixture exists; that app needs no database.
BUILDS_ITS_APP_AT_COLLECTION = {TESTS / "integration" / "test_openapi_fuzz.py"}


def test_test_modules_build_apps_only_through_make_app():
    builders = {
        str(source): sorted(called_names(source) & {"create_app", "Config"})
        for source in sorted(TESTS.rglob("test_*.py"))
        if source not in BUILDS_ITS_APP_AT_COLLECTION
    }
    assert {source: names for source, names in builders.items() if names} == {}
