"""The CLI's modules import one another without a cycle (functions' own imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

CLI = Path(__file__).parents[2] / "src" / "gpt2kit" / "cli"


def cli_imports(path: Path) -> set[str]:
    """The gpt2kit.cli modules that a module imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.split(".")[2] for n in names if n.startswith("gpt2kit.cli.") and n.count(".") == 2}
    return found & {p.stem for p in CLI.glob("*.py")}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        for nxt in sorted(graph.get(node, ())):
            if cycle := visit(nxt, [*path, node]):
                return cycle
        return None

    for start in sorted(graph):
        if cycle := visit(start, []):
            return cycle
    return None


def test_cli_modules_import_without_a_cycle():
    graph = {p.stem: cli_imports(p) - {p.stem} for p in CLI.glob("*.py")}
    assert "args" in graph["chat"]  # the scan sees imports at all
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_check_sees_a_cycle_made_inside_a_function(tmp_path):
    (tmp_path / "chat.py").write_text("def run(args):\n    from gpt2kit.cli.generate import load\n")
    assert cli_imports(tmp_path / "chat.py") == {"generate"}
    assert find_cycle({"chat": {"generate"}, "generate": {"chat"}}) == ["chat", "generate", "chat"]
