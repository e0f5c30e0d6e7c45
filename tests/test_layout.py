"""The code's layout: no import cycles among lab modules, the command layer apart, short modules."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 400


def lab_modules() -> dict[str, Path]:
    """Module name -> file for every module of the lab package."""
    found = {}
    for f in sorted((ROOT / "lab").rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return found


def imports_of(name: str, file: Path, known: set[str]) -> set[str]:
    """The lab modules ``name`` imports, anywhere in the file (a function's late import counts too)."""
    package = name if file.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{a.name}" for a in node.names]  # `from . import data` names a module
        else:
            continue
        out |= {t for t in targets if t in known and t != name}
    return out


def graph() -> dict[str, set[str]]:
    modules = lab_modules()
    return {name: imports_of(name, file, set(modules)) for name, file in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_sees_relative_and_late_imports():
    edges = graph()
    assert "lab.runs" in edges["lab.train"] and "lab.commands.train" in edges["lab.cli"]
    assert "lab.evaluate" in edges["lab.probes"]  # imported inside a function
    assert {"lab.data", "lab.story_files"} <= edges["lab.corpus"]  # `from . import data, story_files`


def test_no_import_cycles_among_lab_modules():
    assert find_cycle(graph()) is None


def test_library_modules_never_import_the_command_layer():
    for name, deps in graph().items():
        if not name.startswith("lab.commands") and name != "lab.cli":
            assert not {d for d in deps if d.startswith("lab.commands")}, name
    cli = (ROOT / "lab" / "cli.py").read_text(encoding="utf-8")
    assert "importlib" not in cli  # verbs are imported statically


def line_counts(files) -> dict[str, int]:
    return {str(f.relative_to(ROOT)): len(f.read_text(encoding="utf-8").splitlines()) for f in files}


def test_no_lab_module_is_longer_than_400_lines():
    long = {f: n for f, n in line_counts((ROOT / "lab").rglob("*.py")).items() if n > MAX_LINES}
    assert not long, long


def test_no_page_or_ui_file_is_longer_than_400_lines():
    files = [*(ROOT / "pages").glob("*.py"), ROOT / "ui.py", ROOT / "app.py"]
    long = {f: n for f, n in line_counts(files).items() if n > MAX_LINES}
    assert not long, long
