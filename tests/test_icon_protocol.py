"""``munet evaluate --protocol icon``: ICON/ECON's Chamfer, P2S (nominal cm in the 1.8-unit frame) and
NC (normal renders) on hand-made meshes, and the protocol end to end on converted THuman2 shards."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import trimesh

from munet.data.render import Renderer
from munet.eval.evaluate import ProtocolError, evaluate
from munet.metrics.icon import (
    ICON_IMAGE_SIZE,
    ICON_VIEW_SPAN,
    icon_scale,
    icon_surface_metrics,
    normal_render_error,
    normal_renders,
)
from tests.test_checkpoint_load import run_dir  # noqa: F401 (a fixture: a run folder with one checkpoint)


def cube(side: float = 1.0, centre: tuple[float, float, float] = (0.0, 0.0, 3.0)) -> tuple[np.ndarray, np.ndarray]:
    """An axis-aligned cube (8 vertices, 12 outward triangles), metres, camera frame."""
    box = trimesh.creation.box(extents=(side, side, side))
    return np.asarray(box.vertices) + centre, np.asarray(box.faces)


def tensors(vertices: np.ndarray, faces: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(vertices, dtype=torch.float32), torch.as_tensor(faces, dtype=torch.int64)


def outside_distance_to_unit_cube(points: np.ndarray) -> np.ndarray:
    """Distance of points outside (or on) an origin-centred unit cube to it."""
    excess = np.maximum(np.abs(points) - 0.5, 0.0)
    return np.linalg.norm(excess, axis=1)


def test_icon_scale_is_18_over_the_vertical_extent():
    vertices, _ = cube(side=0.9)
    assert icon_scale(vertices) == pytest.approx(2.0)
    tall = vertices * [1.0, 2.0, 1.0]  # only the vertical (camera y) extent matters
    assert icon_scale(tall) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no vertical extent"):
        icon_scale(vertices * [1.0, 0.0, 1.0])


def test_chamfer_and_p2s_of_a_grown_cube_in_the_normalised_frame():
    gt_v, faces = cube()
    centre = gt_v.mean(0)
    grow = 1.1
    pred_v = (gt_v - centre) * grow + centre
    same = icon_surface_metrics(*tensors(gt_v, faces), *tensors(gt_v, faces))
    assert same["chamfer_cm"] < 1e-3 and same["p2s_cm"] < 1e-3
    scores = icon_surface_metrics(*tensors(pred_v, faces), *tensors(gt_v, faces), num_samples=1000, seed=0)
    # Every point of the unit cube lies (grow − 1) / 2 = 5 cm inside the grown one: ×1.8 (a 1 m
    # tall scan) ×100 → P2S 9.0 nominal cm, whatever the samples.
    assert scores["p2s_cm"] == pytest.approx(0.05 * 1.8 * 100, rel=1e-3)
    # The other direction, independently: uniform points on the grown cube to the unit cube.
    rng = np.random.default_rng(0)
    face_points = rng.uniform(-0.5 * grow, 0.5 * grow, size=(200_000, 3))
    axis = rng.integers(0, 3, size=len(face_points))
    face_points[np.arange(len(face_points)), axis] = rng.choice([-0.5, 0.5], size=len(face_points)) * grow
    pred_to_gt = outside_distance_to_unit_cube(face_points).mean() * 1.8 * 100
    assert scores["chamfer_cm"] == pytest.approx((pred_to_gt + scores["p2s_cm"]) / 2, rel=0.02)
    # The normalised frame: the same pair twice as large (a 2 m scan) scores the same.
    doubled = icon_surface_metrics(*tensors(pred_v * 2, faces), *tensors(gt_v * 2, faces), num_samples=1000, seed=0)
    assert doubled["p2s_cm"] == pytest.approx(scores["p2s_cm"], rel=1e-3)
    assert doubled["chamfer_cm"] == pytest.approx(scores["chamfer_cm"], rel=1e-3)
    # A shift along x by 10 cm: every point of the scan's ±x faces is 10 cm off, the rest less.
    shifted = icon_surface_metrics(*tensors(gt_v + [0.1, 0.0, 0.0], faces), *tensors(gt_v, faces), seed=0)
    assert 0.0 < shifted["p2s_cm"] < 0.1 * 1.8 * 100


def test_normal_render_error():
    gt_v, faces = cube(side=1.0)
    pivot = gt_v.mean(0)
    with Renderer(ICON_IMAGE_SIZE) as renderer:
        same = normal_render_error(renderer, gt_v, faces, gt_v, faces, pivot)
        flipped = normal_render_error(renderer, gt_v, faces[:, ::-1].copy(), gt_v, faces, pivot)
        moved = normal_render_error(renderer, gt_v + [0.2, 0.0, 0.0], faces, gt_v, faces, pivot)
    assert same == pytest.approx(0.0, abs=1e-6)
    # Opposite normals cost 4 per covered pixel; the 1.8-unit cube covers (1.8 / 2.048)² of each view.
    covered = (1.8 / 2.048) ** 2
    assert flipped > 0.8 * 4 * covered and flipped <= 4.0
    assert 0.0 < moved < flipped


def test_normal_renders_are_orthographic_with_smooth_vertex_normals():
    """ICON's normal renders: 512², orthographic, the meshes' smooth vertex normals interpolated."""
    assert ICON_IMAGE_SIZE == 512
    radius = 0.8
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=radius)  # 1,280 flat facets
    vertices, faces = np.asarray(sphere.vertices) + [0.0, 0.0, 3.0], np.asarray(sphere.faces)
    pivot = np.array([0.0, 0.0, 3.0])
    size = 256
    with Renderer(size) as renderer:
        near, far = (normal_renders(renderer, vertices, faces, pivot, 0.0, d, yaws=(0.0,))[0] for d in (10.0, 20.0))
    # Orthographic: the same image from twice as far, and the sphere covers its true disc.
    np.testing.assert_array_equal(near, far)
    covered = (np.linalg.norm(near, axis=-1) > 0).sum()
    assert covered == pytest.approx(np.pi * (radius / ICON_VIEW_SPAN * size) ** 2, rel=0.01)
    # Smooth normals: close to the true sphere's everywhere inside the silhouette. Face normals
    # would be constant per facet, 0.04 off on average (half the facets' angle to the vertex normals).
    pixels = (np.arange(size) - (size - 1) / 2) * ICON_VIEW_SPAN / size
    x, y = np.meshgrid(pixels, pixels)
    inside = x**2 + y**2 < (0.97 * radius) ** 2
    true = np.stack([x, y, -np.sqrt(np.maximum(radius**2 - x**2 - y**2, 0.0))], axis=-1) / radius
    error = np.linalg.norm(near - true, axis=-1)[inside]
    facets = np.linalg.norm(sphere.face_normals[:, None] - sphere.vertex_normals[faces], axis=-1).mean() / 2
    assert error.mean() < 0.015 < facets and error.max() < 0.05


@pytest.fixture(scope="module")
def thuman_shards(tmp_path_factory):
    """Converted THuman2 test shards: two scans, ICON's 3 test views each (64² renders)."""
    from munet.convert.thuman2 import convert_thuman2
    from tests.fixtures_scan_datasets import write_smplx_male, write_thuman

    root = tmp_path_factory.mktemp("thuman")
    write_smplx_male(root / "models")
    write_thuman(root / "raw", root / "models" / "SMPLX_MALE.npz", subjects=("0000", "0001"))
    (root / "test.txt").write_text("0000\n0001\n")
    report = convert_thuman2(
        root / "raw", str(root / "out"), body_models=root / "models", split=root / "test.txt", image_size=64
    )
    assert report.converted == 6 and not report.failed
    return str(root / "out")


@pytest.fixture(scope="module")
def body_shards(tmp_path_factory):
    """Human3.6M shards (joints only: no clothed surface)."""
    from munet.convert.h36m import convert_h36m
    from tests.fixtures_body_datasets import write_h36m_json

    root = tmp_path_factory.mktemp("h36m")
    write_h36m_json(root / "raw", subjects=(9,), frames=6)
    convert_h36m(root / "raw", str(root / "out"), split="p2-test", image_size=64)
    return str(root / "out")


def test_icon_protocol_end_to_end(thuman_shards, body_shards, run_dir, tmp_path):  # noqa: F811
    out = tmp_path / "icon"
    summary = evaluate(run_dir, thuman_shards, out, protocol="icon", batch_size=4, num_pictures=2)
    assert summary["protocol"] == "icon" and summary["num_samples"] == 6 and summary["scans"] == 2
    assert summary["metrics"] == ["chamfer_cm", "p2s_cm", "nc"]
    assert summary["count"] == {"chamfer_cm": 6, "p2s_cm": 6, "nc": 6}
    assert summary["num_surface_samples"] == 1000
    with open(out / "per_sample.csv") as handle:
        table = list(csv.DictReader(handle))
    assert sorted(float(row["yaw_degrees"]) for row in table) == [0.0, 0.0, 120.0, 120.0, 240.0, 240.0]
    for key in ("chamfer_cm", "p2s_cm", "nc"):
        values = [float(row[key]) for row in table]
        assert all(np.isfinite(values)) and summary[key] == pytest.approx(np.mean(values), rel=1e-6)
        assert summary["median"][key] == pytest.approx(np.median(values), rel=1e-6)
    assert all(0.0 <= float(row["nc"]) <= 4.0 for row in table)
    assert all(float(row["chamfer_cm"]) > 0.0 for row in table)

    written = json.loads((out / "metrics.json").read_text())
    assert written["protocol"] == "icon" and written["count"]["nc"] == 6
    assert "orthographic (2.048 units per image side, 512² pixels, smooth vertex normals)" in written["nc_definition"]
    markdown = (out / "metrics.md").read_text()
    assert "Protocol **icon**" in markdown and "on 6 samples" in markdown
    assert "6 views of 2 scans at yaw 0, 120, 240°" in markdown
    assert "1,000 samples per mesh, ×100 in the 1.8-unit normalised frame (nominal cm)" in markdown
    assert "the sample's (orthographic); ICON uses an orthographic camera" in markdown
    assert "predicted from the image" in markdown and "pelvis" in markdown
    assert "| nc |" in markdown and "| chamfer_cm |" in markdown and "mpjpe" not in markdown
    assert (out / "overlays.png").is_file()

    # A body data set has no clothed surface: the error names the sample.
    with pytest.raises(ProtocolError, match=r"sample h36m/\S+: protocol icon .* no clothed surface"):
        evaluate(run_dir, body_shards, tmp_path / "h36m", protocol="icon")

    # The command line takes --protocol icon without a regressor (exit code 2 on the body data set).
    from munet.eval.cli import main

    args = ["--checkpoint", str(run_dir), "--out", str(tmp_path / "cli"), "--protocol", "icon"]
    assert main([*args, "--data", body_shards]) == 2
