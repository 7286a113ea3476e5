"""The apps are layers, imports only go down them, and every module can be imported first.

    broker_site core (errors, settings, ...) and the push plumbing (routing.events, routing.hub)
      < projects < sessions_app < protocols < routing < leases
      < the faces (api, admin, consumers, MCP, metrics, dashboard, commands, the sweeper)

A leaf (a module that needs no app, such as protocols.versions) may be used from any layer.

The graph is read from the source: every import counts, wherever it is written, and an import
inside a function (the usual way to hide a cycle) is refused outright. Then each module is
imported first in a fresh interpreter, where a cycle between module-level imports fails as
Python sees it (Django set up with the admin that does not import every admin module first).
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("projects", "sessions_app", "protocols", "routing", "leases")
PACKAGES = ("broker_site", *APPS)
# Leaves of the routing package that every layer may use: they import no app.
PUSH_PLUMBING = ("routing.events", "routing.hub")
FACE_SUFFIXES = (".api", ".admin", ".consumers", ".frames")
FACE_PREFIXES = ("broker_site.mcp", "broker_site.urls", "broker_site.asgi", "broker_site.websocket_urls",
                 "broker_site.rest", "broker_site.dashboard", "broker_site.startup", "broker_site.metrics",
                 "broker_site.overview", "broker_site.sweeper")
# Django's place for start-up hooks: AppConfig.ready runs once the registry is loaded.
DEFERRED_IMPORTS_ALLOWED = (".apps",)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _imports(tree: ast.AST) -> list[tuple[str, ast.stmt, bool]]:
    """(first-party module imported, the statement, whether it sits inside a function)."""
    out = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for alias in child.names:
                    candidate = f"{child.module}.{alias.name}"
                    target = candidate if candidate in MODULES else child.module
                    if target in MODULES:
                        out.append((target, child, inner))
            elif isinstance(child, ast.Import):
                out.extend((alias.name, child, inner) for alias in child.names if alias.name in MODULES)
            visit(child, inner)

    visit(tree, False)
    return out


GRAPH = {name: _imports(ast.parse(path.read_text())) for name, path in MODULES.items()}


def rank(module: str) -> int:
    if module.startswith(FACE_PREFIXES) or module.endswith(FACE_SUFFIXES) or ".management." in module:
        return len(APPS) + 1
    if module in PUSH_PLUMBING or module.split(".")[0] == "broker_site":
        return 0
    return APPS.index(module.split(".")[0]) + 1


def test_no_import_hides_inside_a_function():
    hidden = [f"{MODULES[name].relative_to(ROOT)}:{statement.lineno} imports {target}"
              for name, imports in GRAPH.items() if not name.endswith(DEFERRED_IMPORTS_ALLOWED)
              for target, statement, nested in imports if nested]
    assert hidden == []


def is_leaf(module: str) -> bool:
    """A module that needs nothing from any app (formats, constants): every layer may share it."""
    return all(rank(target) == 0 for target, _, _ in GRAPH[module])


def test_imports_only_go_down_the_layers():
    upward = [f"{name} (layer {rank(name)}) imports {target} (layer {rank(target)})"
              for name, imports in GRAPH.items() for target, _, _ in imports
              if rank(target) > rank(name) and not is_leaf(target)]
    assert upward == []


def test_the_push_plumbing_and_the_core_import_no_app():
    bottom = [name for name in MODULES if rank(name) == 0]
    assert set(PUSH_PLUMBING) <= set(bottom)
    reaching_up = [f"{name} imports {target}" for name in bottom for target, _, _ in GRAPH[name] if rank(target) > 0]
    assert reaching_up == []


def test_no_module_imports_itself_through_others():
    edges = {name: sorted({target for target, _, _ in imports if target != name}) for name, imports in GRAPH.items()}
    cycles = []
    state: dict[str, str] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(edges):
        if start not in state:
            walk(start, [start])
    assert cycles == []


# Django is set up once; then each module is imported first in a fork of that interpreter, which is
# what a fresh interpreter that ran django.setup() would be, at a fraction of the cost of starting
# one per module. Two at a time; each failure is reported as "module: last line of the error".
IMPORT_FIRST = """
import json, os, sys, traceback
import django
django.setup()
failures, running = [], {}

def reap():
    pid, status = os.wait()
    module, reader = running.pop(pid)
    with os.fdopen(reader) as pipe:
        said = pipe.read().strip()
    if status != 0:
        failures.append(module + ": " + (said.splitlines()[-1] if said else "exit status " + str(status)))

for module in json.loads(sys.argv[1]):
    if len(running) >= 2:
        reap()
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(reader)
        try:
            __import__(module)
        except BaseException:
            os.write(writer, traceback.format_exc().encode())
            os._exit(1)
        os._exit(0)
    os.close(writer)
    running[pid] = (module, reader)
while running:
    reap()
print(json.dumps(failures))
"""


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")),
                    reason="import order does not depend on the stack; the embedded-default pass runs this")
def test_every_module_can_be_imported_first_in_a_fresh_interpreter():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.import_settings"}
    done = subprocess.run([sys.executable, "-c", IMPORT_FIRST, json.dumps(sorted(MODULES))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
