"""The tree's house rules, checked on the code as it stands: no import cycles among hubctl's modules
(module-level and function-level imports alike), no module-level ``__getattr__`` re-export shims, a
docstring in every module, and torch/diffusers imported at module level only in hubctl/run and hubctl/demo.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "hubctl"
HEAVY = ("torch", "diffusers", "transformers", "peft", "xformers", "accelerate")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text("utf-8"))) for p in sorted(PKG.rglob("*.py"))}


def _imports(tree: ast.Module, me: str, is_package: bool) -> set[str]:
    """Every hubctl module ``me`` imports, wherever the import statement stands (TYPE_CHECKING too)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = me.split(".") if is_package else me.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in mods.items():
        deps = {d for d in _imports(tree, name, path.name == "__init__.py") if d in mods and d != name}
        graph[name] = {d for d in deps if not name.startswith(d + ".")}  # a package's own __init__ runs first anyway
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_cycle_finder_finds_a_planted_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_hubctl_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_no_module_level_getattr_shims() -> None:
    """Moved names are imported from where they live; only hubctl/__init__ may load its two script entry
    points (paths, load_pipeline) lazily."""
    offenders = []
    for name, (path, tree) in _modules().items():
        if name == "hubctl":
            continue
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
            offenders.append(str(path.relative_to(PKG.parent)))
    assert offenders == []


def test_every_module_says_what_it_owns() -> None:
    missing = [str(p.relative_to(PKG.parent)) for _, (p, tree) in _modules().items() if not ast.get_docstring(tree)]
    assert missing == []


@pytest.mark.parametrize("heavy", HEAVY)
def test_heavy_libraries_are_imported_at_module_level_only_in_run_and_demo(heavy: str) -> None:
    offenders = []
    for name, (path, tree) in _modules().items():
        if name.startswith(("hubctl.run", "hubctl.demo")):
            continue
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == heavy or n.startswith(heavy + ".") for n in names):
                offenders.append(f"{path.relative_to(PKG.parent)}:{node.lineno}")
    assert offenders == []


def test_each_stage_is_a_package_with_its_api_in_the_init_docstring() -> None:
    for stage in ("registry", "probe", "compat", "resolve", "lock", "sources", "store", "run", "serve", "demo", "cli"):
        init = PKG / stage / "__init__.py"
        assert init.is_file(), f"hubctl/{stage}/ is not a package"
        doc = ast.get_docstring(ast.parse(init.read_text("utf-8"))) or ""
        modules = sorted(p.stem for p in (PKG / stage).glob("*.py") if p.stem != "__init__")
        if stage == "cli":
            continue  # one module per command group; its docstring says so
        unnamed = [m for m in modules if f"{m}.py" not in doc]
        assert unnamed == [], f"hubctl/{stage}/__init__.py does not name {unnamed}"
