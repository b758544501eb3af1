"""``munet convert cape``: the minimal-shape SMPL body posed per frame, clothed mesh as target and
image (plain colour), shared metric frame, body inside the mask, frame skips and bad input."""

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
from tests.fixtures_scan_datasets import write_cape
from tests.test_convert_h36m import read_samples
from tests.test_convert_thuman2 import to_world

SIZE = 64


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
        assert record.extra_meta["projection"] == "perspective" and record.extra_meta["yaw_degrees"] in (0, 180)
        # The exact minimal-shape body, in the clothed mesh's metric frame.
        np.testing.assert_allclose(to_world(record.body.vertices, record.camera), frame["body"], atol=2e-4)
        np.testing.assert_allclose(record.body.shape, truth["betas"][subject], atol=0.05)
        assert record.extra_meta["betas_fit_rms_m"] < 2e-3
        low, high = record.cloth.vertices.min(0), record.cloth.vertices.max(0)
        assert ((record.body.vertices > low) & (record.body.vertices < high)).all()
        pixels = np.rint(project(record.body.vertices, record.camera.K)).astype(int)
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
    with pytest.raises(ConvertError, match="no CAPE sequence"):
        convert_cape(tmp_path / "nothing", str(tmp_path / "z"), body_models=models)
