"""The packages' structure (docs/architecture.md): imports point one way, with no cycle, and few
modules loose at each package's root.

Every ``import`` and ``from … import`` statement counts, at module level or inside a function:
an import placed in a function to dodge a cycle is still a cycle of the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"charlstm_core": ROOT / "core", "charlstm_gui": ROOT / "charlstm_gui"}
LOOSE_AT_ROOT = {"charlstm_core": 12, "charlstm_gui": 16}


def modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of ``package`` (a package is its __init__)."""
    folder = PACKAGES[package]
    found = {}
    for path in folder.rglob("*.py"):
        parts = path.relative_to(folder).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of the same package that ``name`` imports anywhere in its file."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = here[: len(here) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            # "from pkg import mod" imports the module pkg.mod; "from mod import name" the module
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # an attribute path: its module
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def graph_of(package: str) -> dict[str, set[str]]:
    known = modules(package)
    # a package's __init__ re-exporting its submodules is not a design cycle with them
    return {
        n: {
            m
            for m in imports(n, p, known)
            if not (p.name == "__init__.py" and m.startswith(n + "."))
        }
        for n, p in known.items()
    }


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_import_cycle(package):
    assert cycles(graph_of(package)) == []


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: a two-module and a three-module cycle are both reported."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_few_modules_loose_at_the_root(package):
    loose = sorted(p.name for p in PACKAGES[package].glob("*.py"))
    assert len(loose) <= LOOSE_AT_ROOT[package], loose


def test_the_engine_does_not_import_qt():
    """charlstm_core runs headless: no module of it imports Qt or pyqtgraph."""
    for name, path in modules("charlstm_core").items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                )
                assert not any(n.split(".")[0] in {"PySide6", "pyqtgraph"} for n in names), name


# Collaborators, not mixins (STYLE.md): a class with its own state, given what it needs. None in
# either package; a known exception would be listed here, by package.
KNOWN_MIXINS: dict[str, set[str]] = {"charlstm_gui": set(), "charlstm_core": set()}


def classes(package: str) -> dict[str, list[str]]:
    """Dotted class name -> the names of its bases (as written), for every class of
    ``package``."""
    found = {}
    for name, path in modules(package).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b).rpartition(".")[2] for b in node.bases]
                found[f"{name}.{node.name}"] = bases
    return found


def mixins(package: str) -> set[str]:
    """Classes named ``*Mixin``, and classes with more than one base defined in the package."""
    found = classes(package)
    own = {qualified.rpartition(".")[2] for qualified in found}
    bad = set()
    for qualified, bases in found.items():
        if qualified.endswith("Mixin") or sum(b in own for b in bases) > 1:
            bad.add(qualified)
    return bad


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_mixins(package):
    assert mixins(package) == KNOWN_MIXINS[package]


def test_the_mixin_finder_finds_both_kinds(tmp_path, monkeypatch):
    """The check above can fail: a ``*Mixin`` class and a class of two project bases."""
    folder = tmp_path / "pkg"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "a.py").write_text(
        "class SavingMixin:\n    pass\n\nclass Base:\n    pass\n\n"
        "class Both(Base, SavingMixin):\n    pass\n\nclass One(Base, dict):\n    pass\n"
    )
    monkeypatch.setitem(PACKAGES, "pkg", folder)
    assert mixins("pkg") == {"pkg.a.SavingMixin", "pkg.a.Both"}
