"""The module map holds: no import cycles, and no import hidden inside a function to dodge one."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

#: Function-local imports that are deliberate: the CLI loads a command's modules only when the
#: command runs (start-up time), deployed_model.py loads torch only for a model file, and
#: models/conv.py builds on models/__init__.py (the one known departure, in ARCHITECTURE.md).
ALLOWED_LOCAL = {
    ("miaudit.cli", None),
    ("miaudit.deployed_model", "miaudit.training.devices"),
    ("miaudit.models", "miaudit.models.conv"),
    ("miaudit", "miaudit.api"),  # miaudit.audit_frame on first use: `import miaudit` stays light
}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for p in (SRC / "miaudit").rglob("*.py"):
        name = ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(p.read_text(encoding="utf-8"))
    return out


def _imports(tree: ast.AST, known: set[str]) -> set[str]:
    deps = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            deps |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            deps |= {m for m in names if m in known}
    return deps


def test_no_module_imports_itself_back_through_others() -> None:
    modules = _modules()
    known = set(modules)
    graph = {
        n: {d for d in _imports(t, known) if d != n and not d.startswith(n + ".")}
        for n, t in modules.items()
    }
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        path.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " → ".join([*path[path.index(d):], d]))
            if d not in state:
                visit(d)
        path.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_imports_inside_functions_are_only_the_deliberate_ones() -> None:
    found = set()
    for name, tree in _modules().items():
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("miaudit"):
                        found.add((name, None if name == "miaudit.cli" else node.module))
    assert found <= ALLOWED_LOCAL, sorted(found - ALLOWED_LOCAL)


def test_the_attack_registry_the_schema_reads_builds_on_the_arrays_alone() -> None:
    """config/audit.py's one upward import stays cycle-free: the registry loads no layer 1–2."""
    modules = _modules()
    known = set(modules)
    loaded: set[str] = set()
    todo = ["miaudit.attacks.registry"]
    while todo:
        name = todo.pop()
        if name in loaded:
            continue
        loaded.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]  # parent packages run too
        todo += sorted(_imports(modules[name], known))
    above = {"config", "cohort", "plan", "datasets"}
    assert not {m for m in loaded if m.split(".")[1] in above}, sorted(loaded)
