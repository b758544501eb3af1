"""The scan every view of a scanned subject stores: decimated to a face budget by quadric edge
collapse (open, non-manifold scans included), the full scan where the decimation fails, images and
surface samples always from the full scan; ``munet convert --scan-faces`` end to end on THuman2
files in their real format."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
import trimesh

from munet.convert.cli import main, parse_args
from munet.convert.scan_views import SCAN_FACES, ScanSubject, decimate_scan, scan_views, stored_scan
from munet.data.schema import CLOTH_MEMBER, encode_sample
from munet.data.shards import ShardStore
from munet.data.textured import TexturedRenderer
from munet.geometry import vertex_normals
from munet.metrics.icon import icon_surface_metrics
from tests.fixtures_scan_datasets import corner_uvs, write_smplx_male, write_thuman
from tests.test_convert_h36m import read_samples

SIZE = 64


def open_scan(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A person-sized open surface (metres, +y up): a 20,480-face sphere stretched to 0.4 × 1.7 ×
    0.25 m, with 1 mm bumps and a hole at the top (not watertight), as a scan is."""
    sphere = trimesh.creation.icosphere(subdivisions=5)
    vertices = np.asarray(sphere.vertices) * [0.2, 0.85, 0.125]
    vertices += np.random.default_rng(seed).normal(scale=1e-3, size=vertices.shape)
    faces = np.asarray(sphere.faces)
    top = vertices[faces].mean(1)[:, 1] > 0.8
    return vertices, faces[~top]


def subject_of(vertices: np.ndarray, faces: np.ndarray) -> ScanSubject:
    """A textured subject without a fit (a striped texture, cylindrical UVs)."""
    texture = np.repeat(np.repeat(np.array([[[230, 40, 40], [40, 40, 230]]], np.uint8), 8, axis=0), 8, axis=1)
    return ScanSubject("s1", vertices, faces, corner_uvs(vertices, faces), texture, None, None, {"units": "m"})


def surface_distance_cm(vertices: np.ndarray, faces: np.ndarray, full_vertices: np.ndarray, full_faces: np.ndarray):
    """ICON's Chamfer between a mesh and the full scan (nominal cm)."""
    as_tensors = [torch.as_tensor(np.asarray(a)) for a in (vertices, faces.astype(np.int64))]
    full = [torch.as_tensor(np.asarray(a)) for a in (full_vertices, full_faces.astype(np.int64))]
    return icon_surface_metrics(*as_tensors, *full, seed=0)["chamfer_cm"]


def test_decimation_of_an_open_scan_keeps_its_surface_and_winding():
    vertices, faces = open_scan()
    assert not trimesh.Trimesh(vertices, faces, process=False).is_watertight
    small, small_faces = decimate_scan(vertices, faces, 2_000)
    assert 1_500 <= len(small_faces) <= 2_000 and small_faces.dtype == np.int32
    assert small_faces.min() >= 0 and small_faces.max() < len(small)
    # The surface stays within a fraction of a nominal cm of the full scan (the 1 mm bumps go).
    assert surface_distance_cm(small, small_faces, vertices, faces) < 0.3
    # Outward winding kept: the normals point away from the centre, as the scan's do.
    used = np.unique(small_faces)
    normals = vertex_normals(small, small_faces)[used]
    assert (np.sum(normals * small[used], axis=1) > 0).mean() > 0.99
    # The bounding box (ICON's normalisation uses the height) barely moves.
    assert np.abs(small[used].min(0) - vertices.min(0)).max() < 0.01 * 1.7
    # A scan within the budget is returned as it is.
    same, same_faces = decimate_scan(vertices, faces, len(faces))
    assert np.array_equal(same, vertices) and np.array_equal(same_faces, faces)
    with pytest.raises(ValueError, match="positive"):
        decimate_scan(vertices, faces, 0)


def test_non_manifold_scan_is_decimated():
    vertices, faces = open_scan()
    # 100 faces twice, the copy wound the other way, and a fin on one edge: non-manifold edges.
    fin = np.array([[faces[0, 0], faces[0, 1], len(vertices)]])
    tangled = np.concatenate([faces, faces[:100, ::-1], fin])
    vertices = np.concatenate([vertices, vertices[faces[0, :1]] + [0.0, 0.0, 0.05]])
    _, uses = np.unique(trimesh.Trimesh(vertices, tangled, process=False).edges_sorted, axis=0, return_counts=True)
    assert (uses > 2).sum() >= 150
    small, small_faces, meta = stored_scan(subject_of(vertices, tangled), 5_000)
    assert meta == {"scan_faces": len(tangled), "stored_faces": len(small_faces), "scan_decimation": "quadric"}
    assert len(small_faces) <= 5_000
    assert surface_distance_cm(small, small_faces, vertices, tangled) < 0.3


def test_failed_decimation_stores_the_full_scan(caplog):
    # A plate 1 mm tall and 1 m wide: the collapses move its sides by more than 1 % of its height,
    # which is what the check takes for a failed decimation; the full scan is kept and reported.
    vertices, faces = open_scan()
    plate = vertices * [5.0, 0.001 / 1.7, 5.0]
    with pytest.raises(ValueError, match="moved the bounding box"):
        decimate_scan(plate, faces, 500)
    with caplog.at_level(logging.WARNING, logger="munet.convert.scan_views"):
        kept, kept_faces, meta = stored_scan(subject_of(plate, faces), 500)
    assert np.array_equal(kept, plate) and np.array_equal(kept_faces, faces)
    assert meta["stored_faces"] == meta["scan_faces"] == len(faces)
    assert meta["scan_decimation"].startswith("failed: quadric decimation moved the bounding box")
    assert "s1: quadric decimation moved the bounding box" in caplog.text and "storing the full scan" in caplog.text


def test_views_store_the_decimated_scan_and_sample_the_full_one():
    vertices, faces = open_scan()
    subject = subject_of(vertices, faces)
    with TexturedRenderer(SIZE) as renderer:
        full = list(scan_views(subject, renderer, "thuman2", (0, 120), 512, scan_faces=0))
        small = list(scan_views(subject, renderer, "thuman2", (0, 120), 512, scan_faces=2_000))
    for whole, cut in zip(full, small):
        assert whole.extra_meta["scan_decimation"] == "none" and whole.extra_meta["stored_faces"] == len(faces)
        assert cut.extra_meta["scan_faces"] == len(faces) and cut.extra_meta["scan_decimation"] == "quadric"
        assert cut.extra_meta["stored_faces"] == len(cut.cloth.faces) <= 2_000
        assert len(cut.cloth.face_labels) == len(cut.cloth.faces)
        # Images and surface samples come from the full scan, whatever is stored.
        assert np.array_equal(whole.image, cut.image) and np.array_equal(whole.mask, cut.mask)
        assert np.array_equal(whole.cloth.points, cut.cloth.points)
        assert np.array_equal(whole.cloth.normals, cut.cloth.normals)
        # The stored scan is in the view's camera frame, like the full one.
        assert surface_distance_cm(cut.cloth.vertices, cut.cloth.faces, whole.cloth.vertices, whole.cloth.faces) < 0.3
        assert len(encode_sample(cut)[CLOTH_MEMBER]) < 0.3 * len(encode_sample(whole)[CLOTH_MEMBER])
    assert not np.allclose(small[0].cloth.vertices[:10], small[1].cloth.vertices[:10])  # two cameras


def test_cli_scan_faces(tmp_path):
    assert parse_args(["thuman2", "--root", "r", "--out", "o"]).scan_faces == SCAN_FACES
    assert parse_args(["renderpeople", "--root", "r", "--out", "o", "--scan-faces", "0"]).scan_faces == 0
    with pytest.raises(SystemExit):
        parse_args(["thuman2", "--root", "r", "--out", "o", "--scan-faces", "-1"])
    assert parse_args(["cape", "--root", "r", "--out", "o", "--scan-faces", "100"]).scan_faces == 100

    models = tmp_path / "models"
    write_smplx_male(models)
    root = tmp_path / "raw"
    write_thuman(root, models / "SMPLX_MALE.npz", subjects=("0000",))
    scan = trimesh.load(root / "0000" / "0000.obj", process=False, force="mesh")
    budget = len(scan.faces) // 2
    common = ["thuman2", "--root", str(root), "--body-models", str(models), "--views", "2", "--image-size", "32"]
    assert main([*common, "--out", str(tmp_path / "full"), "--scan-faces", "0"]) == 0
    assert main([*common, "--out", str(tmp_path / "small"), "--scan-faces", str(budget)]) == 0
    full, small = read_samples(tmp_path / "full"), read_samples(tmp_path / "small")
    assert sorted(full) == sorted(small) == ["thuman2/0000/000", "thuman2/0000/180"]
    for key, record in small.items():
        meta = record.extra_meta
        assert meta["scan_faces"] == len(full[key].cloth.faces) == len(scan.faces)
        assert meta["stored_faces"] == len(record.cloth.faces) <= budget and meta["scan_decimation"] == "quadric"
        assert np.array_equal(record.cloth.points, full[key].cloth.points)
    manifest = json.loads(ShardStore(str(tmp_path / "small")).read_bytes("manifest.json"))
    assert manifest["generator"]["conversion"]["scan_faces"] == budget
    # Another budget is another conversion: continuing it is refused (exit code 2).
    assert main([*common, "--out", str(tmp_path / "small")]) == 2
