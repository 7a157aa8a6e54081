"""The layering rules: core never pulls in Qt or TensorFlow; nothing imports TensorFlow early."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("PySide6", "pyqtgraph", "superqt", "tensorflow", "keras")


def _loaded_after(stmt: str) -> set[str]:
    code = f"import sys\n{stmt}\nprint(','.join(sorted(m.split('.')[0] for m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.strip().split(","))


def test_core_imports_neither_qt_nor_tensorflow() -> None:
    mods = _loaded_after(
        "import segviewer.core.types, segviewer.core.layout, segviewer.core.masks, "
        "segviewer.core.overlay, segviewer.core.classes, segviewer.core.orientation, segviewer.core.stats, "
        "segviewer.core.resample, segviewer.core.metrics, segviewer.core.review, "
        "segviewer.core.colours"
    )
    assert not mods & set(HEAVY), mods & set(HEAVY)
    assert not mods & {"nibabel", "pydicom", "PIL", "nrrd", "tifffile"}, "core must be pure numpy"


@pytest.mark.parametrize(
    "module",
    [
        "segviewer.io.images",
        "segviewer.io.predictions",
        "segviewer.io.export",
        "segviewer.io.notes",
        "segviewer.cli",
        "segviewer.cli.info",
        "segviewer.cli.export",
        "segviewer.cli.compare",
        "segviewer.cli.window",
        "segviewer.io.evaluate",
        "segviewer.cli.evaluate",
    ],
)
def test_io_and_cli_do_not_import_qt_or_tensorflow(module: str) -> None:
    mods = _loaded_after(f"import {module}")
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_evaluate_imports_dask_only_when_it_runs() -> None:
    mods = _loaded_after("import segviewer.io.evaluate, segviewer.cli.evaluate")
    assert not mods & {"dask", "distributed"}


def test_ui_does_not_import_tensorflow() -> None:
    mods = _loaded_after("import segviewer.ui.main_window")
    assert "tensorflow" not in mods and "keras" not in mods
    # nor what only some features need: scipy (resampling, surface distances: 0.3-0.4 s of
    # start-up), numba (the compiled kernel, prepared in the background), dask, DICOM SEG
    late = {"scipy", "numba", "dask", "distributed", "highdicom"}
    assert not mods & late, mods & late


def test_the_model_process_machinery_loads_only_when_a_model_is_opened() -> None:
    code = (
        "import sys\nimport segviewer.ui.main_window\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('segviewer.inference'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.strip().split(","))
    assert "segviewer.inference.model" in loaded  # the check sees the inference modules
    assert "segviewer.inference.process" not in loaded


# -- import graph: no cycles, and only the entry points create the window ----------------------
PACKAGE = Path(__file__).resolve().parents[1] / "segviewer"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every segviewer module ``path`` imports anywhere: module level, inside functions and
    under ``if TYPE_CHECKING:`` (ast.walk sees them all)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("segviewer"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in known else base)
    out.discard(here)
    return {m for m in out if m in known}


def _import_graph() -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {name: _imports(path, known) for name, path in mods.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_sees_function_level_and_type_checking_imports() -> None:
    graph = _import_graph()
    # module level
    assert "segviewer.core.errors" in graph["segviewer.core.types"]
    # inside a function (model_panel opens inference lazily) and under TYPE_CHECKING
    assert "segviewer.ui.main_window" in graph["segviewer.ui.api"]
    assert "segviewer.inference.model" in graph["segviewer.ui.model_session"]
    # the cycle finder finds a cycle when there is one
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    cycles = _cycles(_import_graph())
    assert not cycles, f"import cycles (module, function or TYPE_CHECKING level): {cycles}"


def test_only_the_entry_points_import_the_main_window() -> None:
    graph = _import_graph()
    importers = {m for m, deps in graph.items() if "segviewer.ui.main_window" in deps}
    assert importers <= {"segviewer.ui.app", "segviewer.ui.api"}, importers
