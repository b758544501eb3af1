"""``munet convert cape``: the minimal-shape SMPL body posed per frame, clothed mesh (registered or
CAPE's raw scan, millimetres → metres) as target and image (plain colour), shared metric frame,
body inside the mask, frame skips and bad input; ICON's CAPE test set (scan, joints regressed from
the fitted SMPL mesh, the test lists)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from munet.body.smplx_backend import SMPLXBody
from munet.convert.cape import convert_cape
from munet.convert.cli import main
from munet.convert.output import ConvertError
from munet.data.check import check_shards
from munet.geometry import project
from tests.fixtures_body_datasets import write_smpl_models
from tests.fixtures_scan_datasets import (
    ICON_CAPE_HARD,
    ICON_CAPE_IDS,
    write_cape,
    write_cape_icon,
    write_cape_raw_scans,
)
from tests.test_convert_h36m import read_samples
from tests.test_convert_thuman2 import to_world

SIZE = 64


def orthographic(record) -> bool:
    """Whether the sample's views were rendered by an orthographic camera (``meta.json``)."""
    assert record.extra_meta["projection"] in ("orthographic", "perspective")
    return record.extra_meta["projection"] == "orthographic"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_smpl_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def cape(tmp_path_factory, models):
    root = tmp_path_factory.mktemp("cape")
    return root, write_cape(root, models)


def test_convert(tmp_path, cape, models):
    root, truth = cape
    out = tmp_path / "out"
    report = convert_cape(root, str(out), body_models=models, views=2, image_size=SIZE)
    assert not report.failed and report.converted == 10 and check_shards(str(out)).ok
    samples = read_samples(out)
    assert "cape/00032_longshort_squats/000010_180" in samples and "cape/00134_shortlong_hips/000005_000" in samples
    female = SMPLXBody(models, model_type="smpl", gender="female")
    for key, record in samples.items():
        unit, view = key.split("/")[1:]
        subject, sequence = unit.split("_", 1)
        frame = truth["frames"][(subject, sequence, view.split("_")[0])]
        assert record.targets == ["body_mesh", "cloth", "joints_2d", "joints_3d", "mask"]
        assert record.body.backend == "smpl" and record.extra_meta["texture"] == "none"
        assert record.extra_meta["yaw_degrees"] in (0, 180)
        # The exact minimal-shape body, in the clothed mesh's metric frame.
        np.testing.assert_allclose(to_world(record.body.vertices, record.camera), frame["body"], atol=2e-4)
        np.testing.assert_allclose(record.body.shape, truth["betas"][subject], atol=0.05)
        assert record.extra_meta["betas_fit_rms_m"] < 2e-3
        low, high = record.cloth.vertices.min(0), record.cloth.vertices.max(0)
        assert ((record.body.vertices > low) & (record.body.vertices < high)).all()
        pixels = np.rint(project(record.body.vertices, record.camera.K, orthographic(record))).astype(int)
        assert (pixels >= 0).all() and (pixels < SIZE).all()
        assert record.mask[pixels[:, 1], pixels[:, 0]].mean() > 0.99
        if subject == "00134":  # body(pose, betas) gives the stored mesh up to the betas' residual
            with torch.no_grad():
                posed = female(torch.tensor(record.body.pose[None]), torch.tensor(record.body.shape[None]))
            offset = record.body.vertices - posed.vertices[0].numpy()
            assert np.abs(offset - offset.mean(0)).max() < 0.02
    # The plain colour is lit: not one flat grey.
    image = samples["cape/00032_longshort_squats/000000_000"].image
    assert image[samples["cape/00032_longshort_squats/000000_000"].mask].std() > 3


def test_split_every_and_bad_input(tmp_path, cape, models):
    source, _ = cape
    root = tmp_path / "cape"
    shutil.copytree(source, root)
    broken = root / "sequences" / "00032" / "longshort_squats" / "longshort_squats.000005.npz"
    np.savez(broken, v_posed=np.zeros((6890, 3)))  # lacks pose and transl
    (root / "minimal_body_shape" / "00134" / "00134_minimal.npy").unlink()
    (root / "split.txt").write_text("00032/longshort_squats\n00134\n")
    args = ["cape", "--root", str(root), "--out", str(tmp_path / "out"), "--body-models", str(models)]
    args += ["--split", str(root / "split.txt"), "--views", "1", "--image-size", str(SIZE)]
    assert main(args) == 1  # a unit failed
    samples = read_samples(tmp_path / "out")
    assert sorted(samples) == ["cape/00032_longshort_squats/000000_000", "cape/00032_longshort_squats/000010_000"]
    report = convert_cape(root, str(tmp_path / "b"), body_models=models, views=1, every=2, image_size=SIZE)
    assert report.converted == 2 and report.failed[0][0].endswith("00134_minimal.npy")
    assert report.num_skipped == 0  # frame 000005 is not among every other frame
    with pytest.raises(ConvertError, match="SMPL_MALE"):
        convert_cape(root, str(tmp_path / "x"), body_models=tmp_path / "nowhere")
    (root / "misc" / "smpl_tris.npy").unlink()
    with pytest.raises(ConvertError, match="smpl_tris"):
        convert_cape(root, str(tmp_path / "y"), body_models=models)
    with pytest.raises(ConvertError, match="nothing holds no CAPE data"):
        convert_cape(tmp_path / "nothing", str(tmp_path / "z"), body_models=models)


# --- CAPE's raw scans ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cape_raw(tmp_path_factory, cape):
    source, truth = cape
    root = tmp_path_factory.mktemp("cape_raw") / "CAPE"
    shutil.copytree(source, root)
    return root, truth, write_cape_raw_scans(root)


def test_raw_scans(tmp_path, cape_raw, models):
    root, truth, raw = cape_raw
    out = tmp_path / "out"
    args = ["cape", "--root", str(root), "--out", str(out), "--body-models", str(models), "--scans", "raw"]
    assert main([*args, "--views", "2", "--image-size", str(SIZE)]) == 0
    assert check_shards(str(out)).ok
    samples = read_samples(out)
    # Frame 5 of 00032 has no raw scan; 00134's frame 5 is in metres: both skipped.
    frames = sorted({key.rsplit("_", 1)[0] for key in samples})
    assert frames == [
        "cape/00032_longshort_squats/000000",
        "cape/00032_longshort_squats/000010",
        "cape/00134_shortlong_hips/000000",
    ]
    assert len(samples) == 6
    for key, record in samples.items():
        unit, view = key.split("/")[1:]
        subject, sequence = unit.split("_", 1)
        number = view.split("_")[0]
        scan, body = raw[(subject, sequence, number)], truth["frames"][(subject, sequence, number)]["body"]
        meta = record.extra_meta
        assert meta["scan"] == "raw" and meta["raw_scan"] == f"{sequence}.{number}.ply"
        assert record.targets == ["body_mesh", "cloth", "joints_2d", "joints_3d", "mask"]
        # The raw scan, millimetres → metres, is the clothed target as the file holds it (another
        # topology than SMPL's, with its hole) ...
        world = to_world(record.cloth.vertices, record.camera)
        np.testing.assert_allclose(world, scan, atol=2e-4)
        assert len(record.cloth.faces) == 3 * len(np.load(root / "misc" / "smpl_tris.npy")) - 50
        # ... in the body's frame and units: the scan's vertices lie within a few mm of the
        # registration (0.5 mm noise) and the minimal-shape body sits inside it, 10 % smaller.
        assert meta["raw_scan_gap_m"] < 2e-3
        body_world = to_world(record.body.vertices, record.camera)
        np.testing.assert_allclose(body_world, body, atol=2e-4)
        low, high = world.min(0), world.max(0)
        assert ((body_world > low) & (body_world < high)).all()
        gaps = np.linalg.norm(body_world[:, None] - world[None, ::7], axis=-1).min(1)
        assert 0.005 < np.median(gaps) < 0.1 and np.ptp(world[:, 1]) / np.ptp(body_world[:, 1]) < 1.2
        pixels = np.rint(project(record.body.vertices, record.camera.K, orthographic(record))).astype(int)
        assert (pixels >= 0).all() and (pixels < SIZE).all()
        assert record.mask[pixels[:, 1], pixels[:, 0]].mean() > 0.99


def test_raw_scans_bad_input(tmp_path, cape_raw, models):
    source, _, _ = cape_raw
    root = tmp_path / "CAPE"
    shutil.copytree(source, root)
    broken = root / "raw_scans" / "00032" / "longshort_squats" / "longshort_squats.000010.ply"
    text = broken.read_text().splitlines()
    first = text.index("end_header") + 1
    broken.write_text("\n".join([*text[:first], "nan 0 0", *text[first + 1 :]]) + "\n")
    report = convert_cape(root, str(tmp_path / "out"), body_models=models, views=1, image_size=SIZE, scans="raw")
    assert report.converted == 2 and not report.failed
    assert report.skipped == {
        "no raw scan of this frame": 1,
        "raw scan: NaN or infinite vertices": 1,
        "raw scan does not line up with the registered mesh (not millimetres?)": 1,
    }
    examples = {reason: file for file, _, reason in report.examples}
    assert examples["raw scan: NaN or infinite vertices"] == str(broken)
    assert examples["no raw scan of this frame"].endswith("raw_scans/00032/longshort_squats")
    assert (
        "shortlong_hips.000005.ply" in examples["raw scan does not line up with the registered mesh (not millimetres?)"]
    )
    shutil.rmtree(root / "raw_scans")
    with pytest.raises(ConvertError, match="raw_scans holds no raw scan"):
        convert_cape(root, str(tmp_path / "x"), body_models=models, scans="raw")


# --- ICON's CAPE test set ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def icon(tmp_path_factory, models):
    root = tmp_path_factory.mktemp("icon")
    return root, write_cape_icon(root, models)


def test_icon_test_set(tmp_path, icon, models):
    root, truth = icon
    out = tmp_path / "out"
    report = convert_cape(root, str(out), body_models=models, image_size=SIZE)  # test150.txt, 3 test views
    assert not report.failed and report.converted == 9 and check_shards(str(out)).ok
    samples = read_samples(out)
    assert sorted(samples) == sorted(f"cape/{name}/{yaw:03d}" for name in ICON_CAPE_IDS for yaw in (0, 120, 240))
    regressors = {gender: SMPLXBody(models, model_type="smpl", gender=gender) for gender in ("male", "female")}
    for key, record in samples.items():
        name = key.split("/")[1]
        meta, body, scan = record.extra_meta, truth[name]["body"], truth[name]["scan"]
        assert record.targets == ["cloth", "joints_2d", "joints_3d", "mask"] and record.body.backend == "none"
        assert meta["layout"] == "icon" and meta["texture"] == "none" and meta["gender"] == ICON_CAPE_IDS[name]
        assert meta["icon_subset"] == ("CAPE-NFP" if name in ICON_CAPE_HARD else "CAPE-FP")
        assert meta["cape_subject"] == name[:5] and meta["frame"] == int(name[-6:])
        # The scan and the body's joints in one metric frame: the scan as the file holds it, the
        # joints regressed from the SMPL mesh by the subject's gendered model.
        world = to_world(record.cloth.vertices, record.camera)
        np.testing.assert_allclose(world, scan, atol=2e-4)
        with torch.no_grad():
            joints = regressors[meta["gender"]].regress_joints(torch.tensor(body[None], dtype=torch.float32))[0]
        np.testing.assert_allclose(to_world(record.body.joints, record.camera), joints.numpy(), atol=2e-4)
        low, high = world.min(0), world.max(0)
        assert ((body > low) & (body < high)).all()
        # The body (joints and the whole mesh, projected by the stored camera) inside the mask.
        camera_body = body @ record.camera.R.T + record.camera.t
        for points in (camera_body, record.body.joints):
            pixels = np.rint(project(points, record.camera.K, orthographic(record))).astype(int)
            assert (pixels >= 0).all() and (pixels < SIZE).all()
            assert record.mask[pixels[:, 1], pixels[:, 0]].mean() > 0.99
        np.testing.assert_allclose(
            project(record.body.joints, record.camera.K, orthographic(record)), record.body.joints_2d, atol=1e-3
        )
    # pose.txt by name (beside scans/): the 100 hard ids only, here 2.
    args = ["cape", "--root", str(root / "cape"), "--out", str(tmp_path / "hard"), "--body-models", str(models)]
    assert main([*args, "--split", "pose.txt", "--image-size", str(SIZE), "--views", "1"]) == 0
    assert sorted(read_samples(tmp_path / "hard")) == [f"cape/{name}/000" for name in sorted(ICON_CAPE_HARD)]


def test_icon_bad_input(tmp_path, icon, models):
    source, _ = icon
    root = tmp_path / "icon"
    shutil.copytree(source, root)
    nan_scan = root / "cape" / "scans" / "00032-shortlong-hips-000010.obj"
    lines = nan_scan.read_text().splitlines()
    nan_scan.write_text("\n".join(["v nan 0.0 0.0", *lines[1:]]) + "\n")
    missing = root / "cape" / "smpl" / "00134-longlong-ballet4_trial2-000250.obj"
    missing.unlink()
    args = ["cape", "--root", str(root), "--out", str(tmp_path / "out"), "--body-models", str(models)]
    assert main([*args, "--image-size", str(SIZE), "--views", "1"]) == 1  # two units failed
    report = convert_cape(root, str(tmp_path / "b"), body_models=models, views=1, image_size=SIZE)
    failed = {file: reason for file, _, reason in report.failed}
    assert report.converted == 1 and set(failed) == {str(nan_scan), str(missing)}
    assert "NaN" in failed[str(nan_scan)] and "missing" in failed[str(missing)]
    with pytest.raises(ConvertError, match="nowhere.txt"):
        convert_cape(root, str(tmp_path / "c"), body_models=models, split="nowhere.txt")
    with pytest.raises(ConvertError, match="sequences only"):
        convert_cape(root, str(tmp_path / "d"), body_models=models, scans="raw")
    with pytest.raises(ConvertError, match="SMPL_MALE"):
        convert_cape(root, str(tmp_path / "e"), body_models=tmp_path / "nowhere")
    (root / "sequences" / "00032" / "longshort_squats").mkdir(parents=True)
    np.savez(root / "sequences" / "00032" / "longshort_squats" / "longshort_squats.000000.npz", v_posed=np.zeros(3))
    with pytest.raises(ConvertError, match="holds both"):
        convert_cape(root, str(tmp_path / "f"), body_models=models)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConvertError, match=f"{empty} holds no CAPE data"):
        convert_cape(empty, str(tmp_path / "g"), body_models=models)
