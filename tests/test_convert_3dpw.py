"""``munet convert 3dpw``: gendered SMPL meshes in the camera frame, 2D joints from poses2d,
skipped frames, restricted unpickling and bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from munet.body.smplx_backend import SMPLXBody
from munet.convert.output import ConvertError
from munet.convert.pw3d import convert_3dpw
from munet.data.check import check_shards
from tests.fixtures_body_datasets import write_3dpw, write_smpl_models
from tests.test_convert_h36m import read_samples, reprojection_error


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return write_smpl_models(tmp_path_factory.mktemp("models"))


def test_sequence(tmp_path, models):
    data = write_3dpw(tmp_path / "3dpw", models, frames=3)
    report = convert_3dpw(tmp_path / "3dpw", str(tmp_path / "out"), body_models=models, image_size=64)
    assert check_shards(str(tmp_path / "out")).ok and report.converted == 4
    assert report.skipped == {
        "camera pose not valid for this actor (campose_valid = 0)": 1,
        "no 2D joints (poses2d all zero)": 1,
    }
    samples = read_samples(tmp_path / "out")
    assert sorted(samples) == [f"3dpw/downtown_walk_00/{k}" for k in ("00000_0", "00000_1", "00001_0", "00002_1")]
    record = samples["3dpw/downtown_walk_00/00002_1"]
    assert record.targets == ["body_mesh", "joints_2d", "joints_3d"] and record.body.backend == "smpl"
    assert record.body.vertices.shape == (6890, 3) and record.body.pose.shape == (72,)
    assert record.body.shape.shape == (10,) and reprojection_error(record) < 0.01
    # The stored pose gives the stored (camera-frame) mesh up to a translation.
    body = SMPLXBody(models, model_type="smpl", gender="female")
    with torch.no_grad():
        posed = body(torch.tensor(record.body.pose[None]), torch.tensor(record.body.shape[None])).vertices[0].numpy()
    offset = record.body.vertices - posed
    np.testing.assert_allclose(offset, offset.mean(0, keepdims=True).repeat(len(offset), 0), atol=1e-4)
    # Camera frame: the world mesh moved by cam_poses.
    with torch.no_grad():
        world = (
            body(
                torch.tensor(data["poses"][1][2:3], dtype=torch.float32),
                torch.tensor(data["betas"][1][None, :10], dtype=torch.float32),
                torch.tensor(data["trans"][1][2:3], dtype=torch.float32),
            )
            .vertices[0]
            .numpy()
        )
    extrinsics = data["cam_poses"][2]
    np.testing.assert_allclose(record.body.vertices, world @ extrinsics[:3, :3].T + extrinsics[:3, 3], atol=1e-4)


def test_bad_input(tmp_path, models):
    with pytest.raises(ConvertError, match="holds no sequence file"):
        convert_3dpw(tmp_path, str(tmp_path / "out"), body_models=models)
    write_3dpw(tmp_path / "3dpw", models, frames=1)
    with pytest.raises(ConvertError, match="SMPL_MALE.npz or SMPL_MALE.pkl"):
        convert_3dpw(tmp_path / "3dpw", str(tmp_path / "out"), body_models=tmp_path / "nowhere")
    folder = tmp_path / "3dpw/sequenceFiles/test"
    with open(folder / "downtown_walk_00.pkl", "rb") as handle:
        data = pickle.load(handle, encoding="latin1")
    del data["cam_poses"]
    with open(folder / "b_missing_key.pkl", "wb") as handle:
        pickle.dump(data, handle, protocol=2)
    with open(folder / "c_unsafe.pkl", "wb") as handle:
        pickle.dump({"sequence": pickle.PickleBuffer}, handle, protocol=2)
    (tmp_path / "3dpw/imageFiles/downtown_walk_00/image_00000.jpg").unlink()
    report = convert_3dpw(tmp_path / "3dpw", str(tmp_path / "out"), body_models=models, image_size=64)
    assert report.manifest is None and report.skipped == {"missing or unreadable image file": 2}
    reasons = {unit: reason for _, unit, reason in report.failed}
    assert "lacks the key(s) ['cam_poses']" in reasons["b_missing_key"]
    assert "refused to unpickle" in reasons["c_unsafe"]
