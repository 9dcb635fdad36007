""".env.example lists every setting the service reads, each with its meaning and default.

The settings are found in the code itself, by reading its syntax tree (app/, migrations/ and the
top-level files gunicorn and the launcher load): a read of the environment is `env.get("NAME")`,
`os.environ["NAME"]`, `os.getenv("NAME")`, `os.environ.pop("NAME")`, or a helper called with the
environment and a name (`_whole_number(env, "NAME", …)`); the name may be a module constant
(`PORT_VARIABLE = "WEBHOOK_DISPATCHER_PORT"`) or a member of a tuple looped over. So a setting added
anywhere, however it is read, fails this test until .env.example documents it.
"""

from __future__ import annotations

import ast
import re

from app.config import PROJECT_ROOT

SOURCES = [
    *sorted((PROJECT_ROOT / "app").rglob("*.py")),
    PROJECT_ROOT / "migrations" / "env.py",
    *sorted(PROJECT_ROOT.glob("*.py")),
]
ENVIRONMENT = re.compile(r"^(env|environ|environment)$")
SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Read from an environment, but not settings: WSGI's request keys, and the pipes the launcher hands to
# the processes it starts.
NOT_SETTINGS = {"PATH_INFO", "BOOKING_LAUNCHER_READY_FD", "BOOKING_LAUNCHER_LIFELINE_FD"}
# Settings of the test suite, documented in .env.example too, though no file above reads them.
TEST_SETTINGS = {"TEST_DATABASE_URL", "REDIS_URL"}
ENTRY = re.compile(r"^#\s*([A-Z][A-Z0-9_]*)=", re.M)


def _is_environment(node: ast.expr) -> bool:
    """`env`, `environ`, `os.environ`, `self.environ` and the like."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return bool(ENVIRONMENT.match(name))


def _names_read(tree: ast.Module) -> set[str]:
    constants = _module_constants(tree)
    loops = _loop_constants(tree)
    read: set[str] = set()
    for node in ast.walk(tree):
        for key in _keys_read(node):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                read.add(key.value)
            elif isinstance(key, ast.Name):
                read |= {constants[key.id]} if key.id in constants else loops.get(key.id, set())
    return {name for name in read if SETTING_NAME.match(name)} - NOT_SETTINGS


def _keys_read(node: ast.AST) -> list[ast.expr]:
    """The expressions naming what `node` reads from an environment, if it reads one."""
    if isinstance(node, ast.Subscript) and _is_environment(node.value):
        return [node.slice]
    if not isinstance(node, ast.Call) or not node.args:
        return []
    function = node.func
    if isinstance(function, ast.Attribute) and function.attr in ("get", "pop") and _is_environment(function.value):
        return node.args[:1]
    if isinstance(function, ast.Attribute) and function.attr == "getenv":
        return node.args[:1]
    if _is_environment(node.args[0]):
        return node.args[1:2]
    return []


def _module_constants(tree: ast.Module) -> dict[str, str]:
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def _loop_constants(tree: ast.Module) -> dict[str, set[str]]:
    """`name` → the strings of the tuple or list that `for name in (...)` walks."""
    loops: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name):
            if isinstance(node.iter, (ast.Tuple, ast.List)):
                strings = {item.value for item in node.iter.elts if isinstance(item, ast.Constant)}
                loops.setdefault(node.target.id, set()).update(str(value) for value in strings)
    return loops


def settings_read_by_the_code() -> set[str]:
    return set().union(*(_names_read(ast.parse(path.read_text())) for path in SOURCES))


def documented() -> dict[str, str]:
    """Each `# NAME=…` entry of .env.example with the comment paragraph above it."""
    text = (PROJECT_ROOT / ".env.example").read_text()
    entries = {}
    for paragraph in text.split("\n\n"):
        for name in ENTRY.findall(paragraph):
            entries[name] = paragraph
    return entries


def test_the_scan_finds_settings_read_each_way():
    """The scan itself: a direct read, a helper's, a module constant's and a looped tuple's."""
    assert {"DATABASE_URL", "BODY_TIMEOUT", "WEBHOOK_DISPATCHER_PORT", "AUTH_JWKS_URL", "PORT"} <= (
        settings_read_by_the_code()
    )


def test_every_setting_the_code_reads_is_in_env_example():
    missing = settings_read_by_the_code() - documented().keys()
    assert not missing, f".env.example does not document {sorted(missing)}"


def test_env_example_documents_no_setting_that_nothing_reads():
    stale = documented().keys() - settings_read_by_the_code() - TEST_SETTINGS
    assert not stale, f".env.example documents {sorted(stale)}, which nothing reads"


def test_each_entry_says_what_it_means_and_its_default():
    for name, paragraph in documented().items():
        comment = [line for line in paragraph.splitlines() if line.startswith("# ") and not ENTRY.match(line)]
        assert comment and "Default" in paragraph, f"{name}: no meaning or no default in .env.example"
