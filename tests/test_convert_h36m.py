"""``munet convert h36m``: both preprocessed forms, units, splits, resume and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from munet.convert.h36m import convert_h36m
from munet.convert.output import ConvertError
from munet.data.check import check_shards
from munet.data.schema import decode_record
from munet.data.shards import ShardStore
from tests.fixtures_body_datasets import write_h36m_json, write_h36m_npz


def read_samples(out):
    """Every decoded sample of a shard folder, by key."""
    store = ShardStore(str(out))
    return {
        record.key: record
        for shard in store.read_manifest().shards
        for record in map(decode_record, store.iter_shard(shard))
    }


def reprojection_error(record) -> float:
    """Largest pixel distance between the projected 3D joints and the stored 2D joints (valid only)."""
    body = record.body
    valid = np.ones(17, bool)
    for flags in (body.joints_valid, body.joints_2d_valid):
        valid &= True if flags is None else flags > 0
    projected = body.joints[valid] @ record.camera.K.T
    return float(np.abs(projected[:, :2] / projected[:, 2:] - body.joints_2d[valid]).max())


def test_json_form_p2_test(tmp_path):
    truth = write_h36m_json(tmp_path / "h36m", subjects=(9, 11, 1), frames=11)
    report = convert_h36m(tmp_path / "h36m", str(tmp_path / "out"), split="p2-test", image_size=64)
    assert check_shards(str(tmp_path / "out")).ok
    samples = read_samples(tmp_path / "out")
    # S9 and S11, camera 60457274 (cam_idx 4) only, frames 0, 5, 10.
    assert sorted(samples) == sorted(f"h36m/S{s}_act02_sub01/60457274_{f:06d}" for s in (9, 11) for f in (0, 5, 10))
    assert report.converted == 6 and report.num_skipped == 0 and not report.failed
    record = samples["h36m/S9_act02_sub01/60457274_000000"]
    assert record.targets == ["joints_2d", "joints_3d"] and record.body.backend == "none"
    assert reprojection_error(record) < 0.01
    assert record.body.joints_valid[:5].sum() == 0 and record.body.joints_valid[5:].all()
    # Units: right hip (H36M 1, COCO 12) at the known camera-frame position, mm → m.
    np.testing.assert_allclose(record.body.joints[12], truth[(9, 4, 0)][1] / 1000.0, atol=1e-5)
    assert record.body.eval_joint_set == "lsp14" and record.body.eval_joints.shape == (14, 3)
    np.testing.assert_allclose(record.body.eval_joints[2], record.body.joints[12], atol=1e-6)  # LSP right hip
    assert np.allclose(record.camera.R, np.eye(3)) and record.image.shape == (64, 64, 3)


def test_npz_form_fits_the_root_translation(tmp_path):
    arrays = write_h36m_npz(tmp_path / "h36m", count=3)
    report = convert_h36m(tmp_path / "h36m", str(tmp_path / "out"), image_size=64)
    assert check_shards(str(tmp_path / "out")).ok and report.converted == 3
    samples = read_samples(tmp_path / "out")
    record = samples["h36m/S9_Directions_1/60457274_000001"]
    assert reprojection_error(record) < 0.05
    np.testing.assert_allclose(record.body.eval_joints, arrays["S"][0, :14, :3] + arrays["translation"][0], atol=1e-4)
    assert record.body.joints_valid[:5].sum() == 0  # face joints invisible
    assert record.extra_meta["root_translation"] == "fit_2d"


def test_npz_form_without_2d_joints(tmp_path):
    write_h36m_npz(tmp_path / "h36m", count=2, with_part=False)
    convert_h36m(tmp_path / "h36m", str(tmp_path / "out"), image_size=64)
    record = next(iter(read_samples(tmp_path / "out").values()))
    assert record.targets == ["joints_3d"] and record.extra_meta["root_translation"] == "estimated"
    assert (record.body.joints[record.body.joints_valid > 0][:, 2] > 0).all()


def test_missing_frame_is_skipped_and_rerun_continues(tmp_path):
    write_h36m_json(tmp_path / "h36m", subjects=(9,), frames=11)
    missing = tmp_path / "h36m/images/s_09_act_02_subact_01_ca_04/s_09_act_02_subact_01_ca_04_000006.jpg"
    missing.unlink()
    first = convert_h36m(tmp_path / "h36m", str(tmp_path / "out"), image_size=64)
    assert first.converted == 2 and first.skipped == {"missing or unreadable image file": 1}
    assert str(missing) in first.summary()
    again = convert_h36m(tmp_path / "h36m", str(tmp_path / "out"), image_size=64)
    assert again.converted == 0 and again.kept == 2 and check_shards(str(tmp_path / "out")).ok
    with pytest.raises(FileExistsError, match="other settings"):
        convert_h36m(tmp_path / "h36m", str(tmp_path / "out"), image_size=32)


def test_bad_input(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvertError, match="neither form"):
        convert_h36m(tmp_path / "empty", str(tmp_path / "out"))
    write_h36m_json(tmp_path / "h36m", subjects=(9,), frames=6)
    (tmp_path / "h36m/annotations/Human36M_subject11_data.json").write_text("{not json")
    report = convert_h36m(tmp_path / "h36m", str(tmp_path / "out"), image_size=64)
    assert report.converted == 2
    assert [(unit, reason[:20]) for _, unit, reason in report.failed] == [("S11", "not readable JSON (E")]
    bad = tmp_path / "npz"
    bad.mkdir()
    np.savez(bad / "x.npz", imgname=np.array(["a.jpg"]), center=np.zeros((1, 2)))
    with pytest.raises(ConvertError, match=r"x\.npz: lacks \['scale', 'S'\]"):
        convert_h36m(bad, str(tmp_path / "out2"))


@pytest.mark.ray
def test_units_converted_as_ray_tasks_equal_a_run_in_this_process(ray_local, tmp_path):
    write_h36m_json(tmp_path / "h36m", subjects=(9, 11), frames=11)
    here = convert_h36m(tmp_path / "h36m", str(tmp_path / "here"), split="p2-test", image_size=64)
    on_ray = convert_h36m(tmp_path / "h36m", str(tmp_path / "ray"), split="p2-test", image_size=64, workers=2)
    assert on_ray.converted == here.converted == 6 and check_shards(str(tmp_path / "ray")).ok
    ours, theirs = read_samples(tmp_path / "here"), read_samples(tmp_path / "ray")
    assert sorted(ours) == sorted(theirs)
    for key, record in ours.items():
        np.testing.assert_array_equal(theirs[key].image, record.image)
        np.testing.assert_array_equal(theirs[key].body.eval_joints, record.body.eval_joints)
    assert [s.name for s in on_ray.manifest.shards] == [s.name for s in here.manifest.shards]
    again = convert_h36m(tmp_path / "h36m", str(tmp_path / "ray"), split="p2-test", image_size=64, workers=2)
    assert again.converted == 0 and again.kept == 6  # the progress kept by the driver resumes
