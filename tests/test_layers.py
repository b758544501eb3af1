"""The package layers import one way: from the foundations (configuration, graphs, body models) up to
the commands. A new import that points up (a back edge) fails here, naming the file and line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import munet

PACKAGE_ROOT = Path(munet.__file__).parent

LAYERS: tuple[tuple[str, ...], ...] = (
    ("config", "geometry"),
    ("schedules", "iterutils", "markdown", "ray_utils", "console", "safe_pickle"),
    ("graph",),
    ("body",),
    ("data",),
    ("metrics",),
    ("model",),
    ("checkpoint",),
    ("losses", "fit"),
    ("train",),
    ("eval",),
    ("predict", "tune"),
    ("convert",),
    ("bench", "cluster", "demo", "__main__"),
)
"""Top-level modules and sub-packages of ``munet``, lowest first. A unit may import units of lower
layers only (and itself); units of one layer are independent of each other."""

RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit in layer}


def unit_of(path: Path, root: Path) -> str:
    """The layer unit a source file under the package ``root`` belongs to: its sub-package, or
    its own name at the top."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported_units(source: str) -> list[tuple[int, str]]:
    """``(line, unit)`` of every ``munet.*`` import in ``source`` (module level, inside functions
    and under ``TYPE_CHECKING`` alike: each is a dependency)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        found += [(node.lineno, name.split(".")[1]) for name in names if name.startswith("munet.")]
    return found


def back_edges(root: Path) -> list[str]:
    """Every import in the package under ``root`` that breaks :data:`LAYERS`, as readable lines."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        if path == root / "__init__.py":
            continue  # the package's own docstring and version
        unit = unit_of(path, root)
        if unit not in RANK:
            problems.append(f"{path.relative_to(root)}: {unit!r} is in no layer; add it to LAYERS")
            continue
        for line, target in imported_units(path.read_text()):
            if target == unit:
                continue
            if target not in RANK:
                problems.append(f"{path.relative_to(root)}:{line} imports munet.{target}, which is in no layer")
            elif RANK[target] >= RANK[unit]:
                problems.append(
                    f"{path.relative_to(root)}:{line}: munet.{unit} (layer {RANK[unit]}) imports "
                    f"munet.{target} (layer {RANK[target]})"
                )
    return problems


def test_every_import_points_down_the_layers():
    assert back_edges(PACKAGE_ROOT) == []


def test_a_back_edge_is_reported(tmp_path):
    """The check itself can fail: a copy of the package with the graph code importing training."""
    copy = tmp_path / "munet"
    for path in PACKAGE_ROOT.rglob("*.py"):
        target = copy / path.relative_to(PACKAGE_ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    conv = copy / "graph" / "conv.py"
    conv.write_text(conv.read_text() + "\nfrom munet.train.step import training_step\n")
    problems = back_edges(copy)
    assert len(problems) == 1
    expected = f"munet.graph (layer {RANK['graph']}) imports munet.train (layer {RANK['train']})"
    assert problems[0].startswith("graph/conv.py:") and expected in problems[0]


@pytest.mark.parametrize("unit", sorted(RANK))
def test_every_layer_unit_exists(unit):
    assert (PACKAGE_ROOT / unit).is_dir() or (PACKAGE_ROOT / f"{unit}.py").exists()
