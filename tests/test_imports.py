"""The import graph of diffuseq/: every import statement counts, inside functions and
``TYPE_CHECKING`` blocks too, so an import cannot dodge a cycle by moving into a function."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "diffuseq"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str) -> set[str]:
    """Every name an import statement anywhere in the module at ``path`` imports: ``a.b`` of
    ``import a.b``, and both ``a`` and ``a.x`` of ``from a import x`` (``x`` may be a module)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*anchor, *([base] if base else [])])
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    return out


def import_graph() -> dict[str, set[str]]:
    """diffuseq module → the other modules anywhere in this repository that it imports."""
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    roots = {p.name for p in PACKAGE.parent.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    graph = {}
    for name, path in paths.items():
        targets = set()
        for t in imported(path, name):
            if t in paths or t.split(".")[0] in roots - {"diffuseq"}:
                targets.add(t)
            elif t.rpartition(".")[0] in paths:  # from package import a name that is not a module
                targets.add(t.rpartition(".")[0])
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (a → … → a), or None."""
    state: dict[str, str] = {}  # "open" while on the stack, "done" after
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                return [*stack[stack.index(n):], n]
            if n not in state and (cycle := visit(n)):
                return cycle
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            return cycle
    return None


def test_the_import_graph_of_diffuseq_has_no_cycle():
    graph = import_graph()
    assert {"diffuseq.config", "diffuseq.sampling.base"} <= graph["diffuseq.family"]  # the graph sees imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_diffuseq_never_imports_bench():
    graph = import_graph()
    assert not {m: sorted(t for t in ts if t.split(".")[0] == "bench") for m, ts in graph.items()
                if any(t.split(".")[0] == "bench" for t in ts)}


def test_samplers_know_neither_model_families_nor_files():
    """diffuseq.sampling holds samplers only: decoding a model and its files live above it."""
    above = {"diffuseq.family", "diffuseq.masked_diffusion", "diffuseq.ar_transformer", "diffuseq.decode",
             "diffuseq.samples", "diffuseq.rundir", "diffuseq.train", "diffuseq.checkpoint", "diffuseq.data"}
    graph = import_graph()
    wrong = {m: sorted(ts & above) for m, ts in graph.items() if m.startswith("diffuseq.sampling") and ts & above}
    assert not wrong
