"""The layout's rules (docs/architecture.md), checked on the source: no import cycles, the arrows between the
rooms, thin entry scripts."""
import ast
import glob
import os

import pytest

from conftest import ROOT

PACKAGES = ("utils", "networks", "dataloaders", "tools")
ENTRY_SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "*.py")))
# the only modules under utils/ that may import dataloaders/: the engine, and the evaluation that builds data sets
MAY_IMPORT_DATA = {"utils.engine.trainer", "utils.deploy.evaluation"}


def _modules():
    found = {}
    for pkg in PACKAGES:
        for path in glob.glob(os.path.join(ROOT, pkg, "**", "*.py"), recursive=True):
            name = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
            found[name[:-len(".__init__")] if name.endswith(".__init__") else name] = path
    return found


MODULES = _modules()


def _imports(name, path):
    """Every project module ``name`` imports, at module level or inside functions."""
    tree = ast.parse(open(path, encoding="utf-8").read())
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for t in targets:
            while t not in MODULES and "." in t:
                t = t.rpartition(".")[0]
            if t in MODULES and t != name:
                out.add(t)
            elif t + ".py" in ENTRY_SCRIPTS:
                out.add(t + ".py")
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_there_are_no_import_cycles():
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(GRAPH.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state and nxt in GRAPH:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(GRAPH):
        if node not in state:
            visit(node, [node])
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_the_arrows_between_the_rooms():
    for name, deps in GRAPH.items():
        assert not {d for d in deps if d.endswith(".py")}, f"{name} imports an entry script"
        if name.startswith(("utils", "networks", "dataloaders")):
            assert not {d for d in deps if d.startswith("tools")}, f"{name} imports a tool"
        if name.startswith("utils") and name not in MAY_IMPORT_DATA:
            assert not {d for d in deps if d.startswith("dataloaders")}, f"{name} imports dataloaders/"
        if name.startswith("networks"):
            assert deps <= {d for d in MODULES if d.startswith("networks")} | {"utils.registry", "utils.errors"}, \
                f"{name} depends on {deps}"


@pytest.mark.parametrize("script", ENTRY_SCRIPTS + [f"tools/{os.path.basename(p)}" for p in
                                                    sorted(glob.glob(os.path.join(ROOT, "tools", "*.py")))
                                                    if not p.endswith("__init__.py")])
def test_entry_scripts_are_thin(script):
    text = open(os.path.join(ROOT, script), encoding="utf-8").read()
    assert len(text.splitlines()) < 80, f"{script} has {len(text.splitlines())} lines (budget 80)"
    tree = ast.parse(text)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), f"{script} has no main()"
    guard = [n for n in tree.body if isinstance(n, ast.If) and "__main__" in ast.unparse(n.test)]
    assert guard, f"{script}: main() is not behind the __main__ guard"
    assert "noqa: E402" not in text, f"{script} imports after code"
