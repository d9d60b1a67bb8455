"""No import circle anywhere in the package, counting the imports inside functions and under TYPE_CHECKING:
a circle hidden in a function still makes two modules one unit that cannot be read, tested or imported
alone (and fails at run time when the first one is imported from the second)."""

from __future__ import annotations

import ast
from pathlib import Path

import alpharl_trainer

PACKAGE = Path(alpharl_trainer.__file__).parent


def _modules(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module of `package` (a package's name is its `__init__.py`'s)."""
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported_names(name: str, path: Path) -> list[str]:
    """Every dotted name `name` imports, at any depth of its syntax tree; `from a import b` gives `a.b`."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package, one level up per extra dot
                package = name if path.name == "__init__.py" else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (a name that is not a module counts as the
    module it is defined in, e.g. `from a import f` as `a`)."""
    modules = _modules(package)

    def module_of(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    graph = {}
    for name, path in modules.items():
        targets = {module_of(imported) for imported in _imported_names(name, path)}
        graph[name] = targets - {None, name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan): each is a set of modules every
    one of which imports, directly or not, every other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while not component or v not in component:
                component.add(stack.pop())
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_circle():
    graph = import_graph(PACKAGE)
    found = [{m: sorted(graph[m] & c) for m in sorted(c)} for c in circles(graph)]
    assert not found, f"import circles (module -> the modules of its circle it imports): {found}"


def test_imports_inside_functions_and_type_checking_blocks_count(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.c import C\n")
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (package / "sub" / "c.py").write_text("C = 1\n\n\ndef g():\n    from . import helper\n")
    (package / "sub" / "helper.py").write_text("from ..sub import C\n")
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.sub.c"] == {"pkg.sub.helper"} and graph["pkg.sub.helper"] == {"pkg.sub"}
    assert sorted(map(sorted, circles(graph))) == [
        ["pkg.a", "pkg.b"],
        ["pkg.sub", "pkg.sub.c", "pkg.sub.helper"],
    ]


def test_no_source_file_of_the_package_is_over_400_lines():
    """A file a reader can hold in one sitting: past 400 lines a module is doing more than one job."""
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"split these by job: {long}"
