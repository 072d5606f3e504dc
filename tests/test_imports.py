"""The layering: no module imports in a circle (counting every import, also those inside functions),
``common`` imports no other package of the project, ``pde_data`` never torch, ``growth`` neither PDE
nor file libraries nor ``problems``."""
import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("common", "pde_data", "growth", "problems")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set:
    """Every module imported anywhere in ``path`` (absolute and relative imports)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict:
    modules = {_module_name(p): p for pkg in PACKAGES for p in (Path(REPO) / pkg).rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_no_module_imports_in_a_circle():
    graph, state, cycles = _graph(), {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ importing its own submodules is not a circle between modules
    cycles = [c for c in cycles if not any(b.startswith(a + ".") and a == c[0] for a, b in zip(c, c[1:]))]
    assert not cycles, cycles


def test_layering():
    for name, path in ((_module_name(p), p) for pkg in PACKAGES for p in (Path(REPO) / pkg).rglob("*.py")):
        roots = {m.split(".")[0] for m in _imports(path)}
        if name.startswith("common"):
            assert not roots & {"pde_data", "growth", "problems", "torch"}, name
        if name.startswith("pde_data"):
            assert not roots & {"torch", "growth", "problems"}, name
        if name.startswith("growth"):
            assert not roots & {"pde_data", "problems", "dolfinx", "h5py", "mpi4py"}, name
