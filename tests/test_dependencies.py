"""Dependencies point one way (docs/architecture.md): a test over every import of the code.

The core (`kowalski/`) and the filter engine (`mql/`) import no component; `api/` and `broker/`
never import each other; `dashboards/` and `hub/` use the API over HTTP only; only the database
layer (`kowalski/db.py`) imports the driver, and only it and the repositories
(`kowalski/repositories.py`) name the system collections (`collections.*` in config) and the survey
collections' suffixes. The crossings that exist today are listed below, each
with its reason: a new one fails the test, and so does a listed one that has gone (shrink the list).
"""

from __future__ import annotations

import ast

from tests.conftest import ROOT

PACKAGES = ("kowalski", "mql", "broker", "api", "dashboards", "hub")
ALLOWED = {  # package -> the project packages it may import
    "kowalski": {"kowalski", "mql"},
    "mql": {"mql"},
    "broker": {"broker", "kowalski", "mql"},
    "api": {"api", "kowalski", "mql"},
    "dashboards": {"dashboards", "kowalski"},
    "hub": {"hub", "kowalski"},
}
DRIVER = ("pymongo", "motor")
DRIVER_LAYER = {"kowalski/db.py"}

# (file, imported module): the crossings still to remove (issue 14)
KNOWN_CROSSINGS: set[tuple[str, str]] = set()  # none left: a new crossing fails the test
KNOWN_DRIVER_USERS: set[str] = set()  # every module reaches the driver through kowalski/db.py now


def _imports() -> list[tuple[str, str]]:
    """(file relative to the root, absolute module name) for every import statement of the code."""
    out = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if isinstance(node, ast.Import):
                    out += [(rel, a.name) for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    out.append((rel, node.module))
    return out


def test_components_import_only_what_the_rules_allow():
    crossings = {(f, m) for f, m in _imports()
                 if m.split(".")[0] in PACKAGES and m.split(".")[0] not in ALLOWED[f.split("/")[0]]}
    new = sorted(crossings - KNOWN_CROSSINGS)
    assert not new, "imports against the dependency rules (docs/architecture.md): " + ", ".join(
        f"{f} -> {m}" for f, m in new)
    gone = sorted(KNOWN_CROSSINGS - crossings)
    assert not gone, f"no longer crossing, remove from KNOWN_CROSSINGS: {gone}"


def test_only_the_database_layer_names_collections():
    """Collection names come from config and the survey definitions, read in one place each."""
    allowed = {"kowalski/db.py", "kowalski/repositories.py", "kowalski/surveys/base.py"}
    naming = ('["collections"]', "['collections']", '}_alerts', '}_filter_outbox')
    found = sorted(f"{path.relative_to(ROOT).as_posix()}: {word}" for pkg in PACKAGES
                   for path in (ROOT / pkg).rglob("*.py") if path.relative_to(ROOT).as_posix() not in allowed
                   for word in naming if word in path.read_text())
    assert not found, f"collection names built outside the database layer: {found}"


def test_only_the_database_layer_imports_the_driver():
    users = {f for f, m in _imports() if m.split(".")[0] in DRIVER} - DRIVER_LAYER
    new = sorted(users - KNOWN_DRIVER_USERS)
    assert not new, f"the driver imported outside kowalski/db.py: {new} (ask the database layer instead)"
    gone = sorted(KNOWN_DRIVER_USERS - users)
    assert not gone, f"no longer importing the driver, remove from KNOWN_DRIVER_USERS: {gone}"


DRIVER_CALLS = {"insert_one", "insert_many", "update_one", "update_many", "replace_one", "delete_one", "delete_many",
                "bulk_write", "find_one_and_update", "count_documents", "estimated_document_count", "create_index",
                "create_indexes", "drop_index", "list_collection_names", "list_indexes", "index_information",
                "get_collection"}
# the benchmarks that build a database of replicated alerts or time the database itself, apart from the API
DIRECT_DATABASE_BENCHMARKS = {"api/bench.py", "api/bench_skymap.py", "broker/bench.py", "broker/bench_archive.py"}


def test_only_the_database_layer_calls_the_driver_on_collections():
    """Reads and writes go through the repositories (kowalski/repositories.py), indexes through
    kowalski/db.py: a driver method called anywhere else fails (benchmarks of the database excepted)."""
    allowed = {"kowalski/db.py", "kowalski/repositories.py"} | DIRECT_DATABASE_BENCHMARKS
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in allowed:
                continue
            found += [f"{rel}:{node.lineno} .{node.func.attr}()" for node in ast.walk(ast.parse(path.read_text(), rel))
                      if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DRIVER_CALLS]
    assert not found, f"driver calls outside the database layer (use a repository): {found}"
