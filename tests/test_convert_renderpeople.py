"""``munet convert renderpeople``: centimetres and z-up scans into the metric +y-up world, joints
from the fit mesh (no body mesh target), joints inside the mask, scans without a fit, bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from munet.body.smplx_backend import SMPLXBody
from munet.convert.output import ConvertError
from munet.convert.renderpeople import convert_renderpeople
from munet.data.check import check_shards
from munet.geometry import project
from tests.fixtures_scan_datasets import write_renderpeople, write_smplx_male
from tests.test_convert_h36m import read_samples
from tests.test_convert_thuman2 import to_world

SIZE = 64


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    write_smplx_male(folder)
    return folder


@pytest.fixture(scope="module")
def renderpeople(tmp_path_factory, models):
    root = tmp_path_factory.mktemp("rp")
    truth = write_renderpeople(root, models / "SMPLX_MALE.npz")
    (root / "test.txt").write_text("rp_alison_posed_001\nrp_ben_posed_002\n")
    return root, truth


def test_convert(tmp_path, renderpeople, models):
    root, truth = renderpeople
    out = tmp_path / "out"
    report = convert_renderpeople(root, str(out), body_models=models, split=root / "test.txt", image_size=SIZE)
    assert not report.failed and report.converted == 6 and check_shards(str(out)).ok
    body = SMPLXBody(models, model_type="smplx", gender="male")
    for key, record in read_samples(out).items():
        name = key.split("/")[1]
        assert record.targets == ["cloth", "joints_2d", "joints_3d", "mask"] and record.body.backend == "none"
        assert record.extra_meta["up_axis"] == ("z" if "alison" in name else "y")
        np.testing.assert_allclose(to_world(record.cloth.vertices, record.camera), truth[name]["scan"], atol=2e-5)
        with torch.no_grad():
            joints = body.regress_joints(torch.tensor(truth[name]["body"][None], dtype=torch.float32))[0].numpy()
        np.testing.assert_allclose(to_world(record.body.joints, record.camera), joints, atol=2e-4)
        pixels = np.rint(project(record.body.joints, record.camera.K, record.camera.orthographic)).astype(int)
        assert record.mask[pixels[:, 1], pixels[:, 0]].all()
        rows = np.flatnonzero(record.mask.any(1))
        assert 0.8 * SIZE <= rows[-1] - rows[0] + 1 <= 0.95 * SIZE  # upright: the height fills the frame


def test_without_fits_and_bad_input(tmp_path, renderpeople, models):
    source, _ = renderpeople
    root = tmp_path / "rp"
    shutil.copytree(source, root)
    shutil.rmtree(root / "smplx")
    report = convert_renderpeople(root, str(tmp_path / "a"), views=1, image_size=SIZE)  # no model needed
    assert report.converted == 2 and read_samples(tmp_path / "a")["renderpeople/rp_ben_posed_002/000"].targets == [
        "cloth",
        "mask",
    ]
    shutil.copytree(source / "smplx", root / "smplx")
    with pytest.raises(ConvertError, match="SMPLX_MALE"):
        convert_renderpeople(root, str(tmp_path / "b"), body_models=tmp_path, views=1)
    (root / "rp_alison_posed_001_OBJ" / "tex" / "rp_alison_posed_001_dif_2k.jpg").unlink()
    fit = root / "smplx" / "rp_ben_posed_002.obj"
    fit.write_text("".join(f"v {100 * float(v):.4f} 0 0\n" for v in range(10475)) + "f 1 2 3\n")  # not metres
    report = convert_renderpeople(root, str(tmp_path / "c"), body_models=models, views=1, image_size=SIZE)
    failed = {unit: (file, reason) for file, unit, reason in report.failed}
    assert failed["rp_alison_posed_001"][0].endswith("rp_alison_posed_001_dif_2k.jpg")
    assert "outside the scan's bounding box" in failed["rp_ben_posed_002"][1]
    with pytest.raises(ConvertError, match="no RenderPeople scan"):
        convert_renderpeople(tmp_path / "none", str(tmp_path / "d"))
