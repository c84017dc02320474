"""The package's imports: no circle, counting imports inside functions too.

And a parameter check that loads neither TensorFlow nor OpenCV.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, anywhere in its file."""
    modules = {p.stem for p in (ROOT / "earth_lib").glob("*.py")} - {"__init__"}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for m in modules:
        for node in ast.walk(ast.parse((ROOT / "earth_lib" / f"{m}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("earth_lib"):
                parts = node.module.split(".")
                graph[m] |= ({a.name for a in node.names} & modules if len(parts) == 1
                             else {parts[1]})
            elif isinstance(node, ast.Import):
                graph[m] |= {a.name.split(".")[1] for a in node.names
                             if a.name.startswith("earth_lib.")}
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
    assert {"data", "training", "evaluation", "metrics", "params"} <= set(graph)
    assert cycles(graph) == []


def test_checking_a_parameter_file_loads_neither_tensorflow_nor_opencv():
    code = ("import sys\nfrom earth_lib.cli import main\n"
            "assert main(['check-params', 'params/smoke.yaml']) == 0\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"
