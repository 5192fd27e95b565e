"""The shape of the code base: imports run one way, no file is long, nothing private crosses a file.

These read the sources with `ast` (nothing is imported), so they hold for the CUDA paths too.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("tensorlite", "models", "train", "benchmarks")
MAX_LINES = 450
# Each package may import only the ones below it (DESIGN.md): train -> models -> tensorlite.
LAYERS = {"tensorlite": 0, "models": 1, "train": 2, "benchmarks": 3}


def _sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path):
    """(module imported, names taken from it, line) for every import in the file, in function bodies too."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module, tuple(a.name for a in node.names), node.lineno


def _graph():
    """Edges between the project's own modules; `from pkg import sub` counts as an edge to pkg.sub."""
    modules = {_module_name(p): p for p in _sources()}
    edges = {m: set() for m in modules}
    for m, path in modules.items():
        for target, names, _ in _imports(path):
            if target in modules and target != m:
                edges[m].add(target)
            for n in names:
                if f"{target}.{n}" in modules:
                    edges[m].add(f"{target}.{n}")
    return modules, edges


def _is_ancestor(a, b):
    """A package's __init__ re-exports its submodules: pkg.sub importing a sibling through `from . import`
    counts, but a submodule naturally runs its package's __init__ first; that is not a circle."""
    return b.startswith(a + ".")


def test_no_import_cycles():
    _, edges = _graph()
    for m in edges:
        edges[m] = {t for t in edges[m] if not _is_ancestor(t, m)}
    cycles, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == "open":
                cycles.append(stack[stack.index(t):] + [t])
            elif t not in state:
                visit(t, stack)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_packages_import_downwards_only():
    modules, edges = _graph()
    upward = [f"{m} imports {t}" for m in modules for t in edges[m]
              if LAYERS[t.split(".")[0]] > LAYERS[m.split(".")[0]]]
    assert not upward, "\n".join(upward)


def test_autograd_imports_only_numpy():
    path = ROOT / "tensorlite" / "autograd.py"
    imported = {target.split(".")[0] for target, _, _ in _imports(path)}
    assert imported <= {"numpy", "functools", "threading", "contextlib"}, imported


@pytest.mark.parametrize("path", list(_sources()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_long_files(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT)} has {n} lines (at most {MAX_LINES}): split it by concern"


def test_no_private_names_imported_across_files():
    modules, _ = _graph()
    found = [f"{path.relative_to(ROOT)}:{line} imports {n} from {target}"
             for path in modules.values() for target, names, line in _imports(path)
             if target in modules for n in names if n.startswith("_") and not n.startswith("__")]
    assert not found, "\n".join(found)
