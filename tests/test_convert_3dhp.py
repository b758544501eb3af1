"""``munet convert 3dhp``: the training set (v5 annot.mat, calibration, MJPG video or extracted
frames) and the test set (v7.3 annot_data.mat through h5py), resume and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from munet.convert.mpi3dhp import MPI28_TO_17, convert_3dhp
from munet.convert.output import ConvertError
from munet.data.check import check_shards
from tests.fixtures_body_datasets import write_3dhp_test, write_3dhp_train
from tests.test_convert_h36m import read_samples, reprojection_error


@pytest.mark.parametrize("extract", [False, True])
def test_train_split(tmp_path, extract):
    annot3 = write_3dhp_train(tmp_path / "mpi", frames=5, cameras=2, extract=extract)
    report = convert_3dhp(tmp_path / "mpi", str(tmp_path / "out"), split="train", every=2, image_size=64)
    assert check_shards(str(tmp_path / "out")).ok and report.converted == 6 and not report.failed
    samples = read_samples(tmp_path / "out")
    assert sorted(samples) == [f"3dhp/S1_Seq1_c{c:02d}/{f:06d}" for c in (0, 1) for f in (0, 2, 4)]
    record = samples["3dhp/S1_Seq1_c00/000000"]
    assert record.targets == ["joints_2d", "joints_3d"] and reprojection_error(record) < 0.01
    assert record.body.joints_valid.tolist() == [0] * 5 + [1] * 12
    np.testing.assert_allclose(record.body.joints[11], annot3[0][0, 18] / 1000.0, atol=1e-6)  # left hip, m
    assert record.body.eval_joint_set == "mpi3dhp17"
    np.testing.assert_allclose(record.body.eval_joints[14], [0.0, 0.0, 1.5 * 0.9], atol=1e-6)  # pelvis 1500 mm
    assert MPI28_TO_17.tolist() == [7, 5, 14, 15, 16, 9, 10, 11, 23, 24, 25, 18, 19, 20, 4, 3, 6]


def test_test_split_h5py_orientation_and_valid_frames(tmp_path):
    arrays = write_3dhp_test(tmp_path / "mpi", frames=5, invalid=(1,))
    report = convert_3dhp(tmp_path / "mpi", str(tmp_path / "out"), split="test", image_size=64)
    assert check_shards(str(tmp_path / "out")).ok
    assert report.converted == 4 and report.skipped == {"not a valid frame (valid_frame = 0)": 1}
    record = read_samples(tmp_path / "out")["3dhp/TS1/000002"]
    assert reprojection_error(record) < 0.01 and record.extra_meta["intrinsics_rms_px"] < 0.01
    np.testing.assert_allclose(record.body.eval_joints, arrays["univ_annot3"][2, 0] / 1000.0, atol=1e-6)
    np.testing.assert_allclose(record.body.joints[6], arrays["annot3"][2, 0, 2] / 1000.0, atol=1e-6)  # r-shoulder


def test_rerun_continues_and_bad_files_are_reported(tmp_path):
    write_3dhp_test(tmp_path / "mpi", sequence=1, frames=3, invalid=())
    write_3dhp_test(tmp_path / "mpi", sequence=2, frames=3, invalid=())
    (tmp_path / "mpi/mpi_inf_3dhp_test_set/TS2/annot_data.mat").write_bytes(b"not a mat file")
    first = convert_3dhp(tmp_path / "mpi", str(tmp_path / "out"), split="test", image_size=64)
    assert first.converted == 3 and len(first.failed) == 1
    file, unit, reason = first.failed[0]
    assert unit == "TS2" and file.endswith("TS2/annot_data.mat") and "MATLAB v7.3" in reason
    write_3dhp_test(tmp_path / "mpi", sequence=2, frames=3, invalid=())
    again = convert_3dhp(tmp_path / "mpi", str(tmp_path / "out"), split="test", image_size=64)
    assert again.kept == 3 and again.converted == 3 and not again.failed
    assert check_shards(str(tmp_path / "out")).ok and len(read_samples(tmp_path / "out")) == 6


def test_bad_training_input(tmp_path):
    with pytest.raises(ConvertError, match="no training sequence"):
        convert_3dhp(tmp_path, str(tmp_path / "out"), split="train")
    write_3dhp_train(tmp_path / "mpi", frames=3, cameras=1)
    (tmp_path / "mpi/S1/Seq1/annot.mat").write_bytes(b"garbage")
    report = convert_3dhp(tmp_path / "mpi", str(tmp_path / "out"), split="train", image_size=64)
    assert report.manifest is None and "MATLAB v5" in report.failed[0][2]
