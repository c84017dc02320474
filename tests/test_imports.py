"""The package's imports: no circle, counting imports inside functions too.

And a parameter check that loads neither TensorFlow nor OpenCV.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files() -> dict[str, Path]:
    """Every module of the package by dotted name below ``earth_lib`` (a package: its init)."""
    out = {}
    for path in (ROOT / "earth_lib").rglob("*.py"):
        parts = path.relative_to(ROOT / "earth_lib").with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name:
            out[name] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its file (functions too)."""
    files = module_files()
    graph: dict[str, set[str]] = {m: set() for m in files}
    for m, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("earth_lib"):
                base = node.module.removeprefix("earth_lib").lstrip(".")
                names = [f"{base}.{a.name}".lstrip(".") for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                names = [a.name.removeprefix("earth_lib.") for a in node.names
                         if a.name.startswith("earth_lib.")]
            graph[m] |= {n for n in names if n in files}
        graph[m].discard(m)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle, found by depth-first search (each as the path that closes it)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert {"data", "nn.training", "evaluation", "metrics", "params", "search.loop"} <= set(graph)
    assert cycles(graph) == []


def test_checking_a_parameter_file_loads_neither_tensorflow_nor_opencv():
    code = ("import sys\nfrom earth_lib.cli import main\n"
            "assert main(['check-params', 'params/smoke.yaml']) == 0\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_every_package_of_earth_lib_is_installed():
    """pyproject's package list names every folder of the package (a plain install has them)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "earth_lib").rglob("__init__.py")}
    assert found == listed
