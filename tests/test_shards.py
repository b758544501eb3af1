"""The shard format: schema round trips (webdataset, Ray Data), atomic writes and bad-data policy.

Samples here are built from the plain Anny body (standing in for a clothed mesh, one flat colour),
rendered for real; the generator's own samples are exercised in test_make_shards.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from munet.config import DataConfig
from munet.data.camera import sample_camera
from munet.data.check import check_shards
from munet.data.contract import FLAGS, UINT8_MEMBERS
from munet.data.decode import Decoder, decode_sample, iter_samples, usable_shards
from munet.data.generate import sample_surface
from munet.data.ray_dataset import ray_dataset, skipped_samples
from munet.data.render import Renderer
from munet.data.scene import sample_background, sample_lighting
from munet.data.schema import (
    SCHEMA_VERSION,
    BodyRecord,
    ClothRecord,
    SampleRecord,
    SchemaError,
    decode_record,
    encode_sample,
    is_bad_data,
    make_key,
)
from munet.data.shards import Manifest, ShardError, ShardStore, shard_name
from munet.geometry import project
from munet.train.step import batch_to_tensors

SIZE = 64
POINTS = 256


@pytest.fixture(scope="module")
def records(anny_body) -> list[SampleRecord]:
    """Six rendered samples of two posed Anny bodies, three views each."""
    out = []
    with Renderer(SIZE) as renderer:
        for subject in range(2):
            generator = torch.Generator().manual_seed(subject)
            pose = 0.1 * torch.randn(1, anny_body.pose_dim, generator=generator)
            shape = torch.rand(1, anny_body.shape_dim, generator=generator)
            with torch.no_grad():
                body = anny_body(pose, shape)
            vertices, joints = body.vertices[0].numpy(), body.joints[0].numpy()
            faces = anny_body.faces.numpy().astype(np.int32)
            rng = np.random.default_rng(subject)
            points, normals = sample_surface(rng, vertices, faces, POINTS)
            for view in range(3):
                camera = sample_camera(rng, vertices, SIZE)
                cam_vertices = camera.world_to_camera(vertices)
                frame = renderer.render(
                    cam_vertices,
                    faces,
                    np.full_like(cam_vertices, 0.7),
                    camera.K,
                    sample_lighting(rng),
                    sample_background(rng, SIZE),
                )
                cam_joints = camera.world_to_camera(joints)
                out.append(
                    SampleRecord(
                        key=make_key("test", f"{subject:03d}", f"{view:02d}"),
                        image=frame.image,
                        mask=frame.mask,
                        normal=frame.normal,
                        camera=camera,
                        body=BodyRecord(
                            "anny",
                            pose[0].numpy(),
                            shape[0].numpy(),
                            cam_vertices,
                            cam_joints,
                            project(cam_joints, camera.K),
                        ),
                        cloth=ClothRecord(
                            cam_vertices,
                            faces,
                            np.zeros(len(faces), np.uint8),
                            camera.world_to_camera(points),
                            camera.directions_to_camera(normals),
                        ),
                        garments=["none"],
                    )
                )
    return out


def _write(location, records, per_shard=3, image_format="png") -> Manifest:
    store = ShardStore(location)
    infos = []
    for start in range(0, len(records), per_shard):
        with store.writer(shard_name(start // per_shard)) as writer:
            for record in records[start : start + per_shard]:
                writer.write(record.key, encode_sample(record, image_format))
        infos.append(writer.info)
    manifest = Manifest(shards=infos, generator={"test": True}, seed=0)
    store.write_manifest(manifest)
    return manifest


def _write_damaged(location, records, damage) -> ShardStore:
    """One shard of ``records`` plus its manifest; ``damage[i]`` edits sample i's members first."""
    store = ShardStore(location)
    with store.writer(shard_name(0)) as writer:
        for i, record in enumerate(records):
            members = encode_sample(record)
            if i in damage:
                damage[i](members)
            writer.write(record.key, members)
    store.write_manifest(Manifest(shards=[writer.info]))
    return store


def _config() -> DataConfig:
    return DataConfig(image_size=SIZE, cloth_points=POINTS, augment=False)


def _assert_matches(decoded: dict[str, np.ndarray], record: SampleRecord) -> None:
    # 8-bit in the object store: the stored bytes unchanged (no resize at this size, no jitter)
    assert decoded["image"].dtype == np.uint8 and decoded["mask"].dtype == np.uint8
    np.testing.assert_array_equal(decoded["image"], record.image.transpose(2, 0, 1))
    np.testing.assert_array_equal(decoded["mask"][0], record.mask)
    np.testing.assert_allclose(decoded["K"], record.camera.K, rtol=1e-6)
    np.testing.assert_allclose(decoded["body_vertices"], record.body.vertices, rtol=1e-6)
    np.testing.assert_allclose(decoded["body_joints"], record.body.joints, rtol=1e-6)
    np.testing.assert_allclose(decoded["joints_2d"], record.body.joints_2d, rtol=1e-5)
    np.testing.assert_allclose(decoded["body_pose"], record.body.pose, rtol=1e-6)
    np.testing.assert_allclose(decoded["cloth_points"], record.cloth.points, rtol=1e-6)
    np.testing.assert_allclose(decoded["cloth_normals"], record.cloth.normals, rtol=1e-6, atol=1e-7)
    for name in FLAGS:  # a full synthetic sample: every target real
        np.testing.assert_array_equal(decoded[name], 1.0)
    for name, value in decoded.items():
        expected = np.uint8 if name in UINT8_MEMBERS else np.int64 if name == "source" else np.float32
        assert value.dtype == expected, name


def test_round_trip_webdataset(tmp_path, records):
    import webdataset

    manifest = _write(tmp_path, records)
    assert manifest.num_samples == 6 and len(manifest.shards) == 2
    urls = [str(tmp_path / shard.name) for shard in manifest.shards]
    raws = list(webdataset.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert [raw["__key__"] for raw in raws] == [record.key for record in records]
    for raw, record in zip(raws, records):
        assert sorted(k for k in raw if not k.startswith("__")) == [
            "body.npz",
            "camera.json",
            "cloth.npz",
            "image.png",
            "mask.png",
            "meta.json",
            "normal.png",
        ]
        _assert_matches(decode_sample(raw, SIZE, POINTS), record)
        again = decode_record(raw)
        assert again.garments == ["none"] and again.body.backend == "anny"
        np.testing.assert_array_equal(again.cloth.faces, record.cloth.faces)
        # The normal map is stored in 8 bits: about 1/127 per component.
        np.testing.assert_allclose(again.normal, record.normal, atol=0.02)
    # The same samples through the local reader, resized to half size: K and 2D joints follow.
    decoded = list(iter_samples(str(tmp_path), Decoder(image_size=SIZE // 2, cloth_points=100)))
    assert len(decoded) == 6
    first = decoded[0]
    assert first["image"].shape == (3, SIZE // 2, SIZE // 2) and first["cloth_points"].shape == (100, 3)
    reprojected = project(first["body_joints"].astype(np.float64), first["K"])
    np.testing.assert_allclose(reprojected, first["joints_2d"], atol=1e-3)


@pytest.mark.ray
def test_round_trip_ray(tmp_path, records, ray_local):
    _write(f"file://{tmp_path}", records, image_format="jpg")
    dataset = ray_dataset(f"file://{tmp_path}", _config())
    rows = dataset.take_all()
    assert len(rows) == len(records)
    assert set(rows[0]) == {
        "image",
        "mask",
        "K",
        "orthographic",
        "body_vertices",
        "body_joints",
        "joints_2d",
        "body_pose",
        "body_shape",
        "cloth_points",
        "cloth_normals",
        "source",
        *FLAGS,
    }
    local = list(iter_samples(f"file://{tmp_path}", Decoder.from_config(_config())))
    for record, expected in zip(records, local):  # Ray may reorder rows: match them by camera
        row = next(r for r in rows if np.allclose(r["K"], record.camera.K, rtol=1e-6))
        for name, value in expected.items():
            np.testing.assert_array_equal(row[name], value, err_msg=name)
        np.testing.assert_allclose(row["body_joints"], record.body.joints, rtol=1e-6)
        np.testing.assert_array_equal(row["mask"][0], record.mask)
        jpeg_error = np.abs(row["image"].astype(np.float32) - record.image.transpose(2, 0, 1)) / 255
        assert jpeg_error.mean() < 0.05
    batch = next(iter(dataset.iter_torch_batches(batch_size=4)))
    assert batch["image"].shape == (4, 3, SIZE, SIZE) and batch["image"].dtype == torch.uint8
    assert batch["body_vertices"].shape[0] == 4
    # bytes through the object store, floats on the device
    tensors = batch_to_tensors(batch, torch.device("cpu"))
    assert tensors["image"].dtype == torch.float32 and tensors["mask"].dtype == torch.float32
    assert torch.equal(tensors["image"], batch["image"].float() / 255)
    assert set(tensors["mask"].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.ray
def test_ray_skip_policy_drops_bad_samples(tmp_path, records, ray_local):
    _write_damaged(tmp_path, records[:4], {1: lambda members: members.pop("mask.png")})
    skip = dataclasses.replace(_config(), on_bad_sample="skip")
    assert ray_dataset(str(tmp_path), skip).count() == 3
    assert skipped_samples()[str(tmp_path)] == 1  # counted across Ray's tasks, for the run report
    with pytest.raises(Exception, match=rf"'{records[1].key}' in shard .*: missing member 'mask.png'") as error:
        ray_dataset(str(tmp_path), _config()).take_all()
    assert is_bad_data(error.value)  # a trainer can tell it from a transient worker failure
    # One flipped byte (same size): the read task refuses the shard by name, before decoding it.
    path = tmp_path / shard_name(0)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match=rf"shard {path}: SHA-256 differs from the manifest") as error:
        ray_dataset(str(tmp_path), _config()).take_all()
    assert is_bad_data(error.value)
    assert ray_dataset(str(tmp_path), skip).count() == 0
    assert skipped_samples()[str(tmp_path)] == 1 + 4


def test_writer_failure_leaves_no_shard(tmp_path, records):
    store = ShardStore(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        with store.writer(shard_name(0)) as writer:
            writer.write(records[0].key, encode_sample(records[0]))
            writer.write(records[1].key, encode_sample(records[1]))
            raise RuntimeError("boom")
    assert store.list_names() == []
    with pytest.raises(ValueError, match="increasing key order"):
        with store.writer(shard_name(0)) as writer:
            writer.write(records[1].key, encode_sample(records[1]))
            writer.write(records[0].key, encode_sample(records[0]))
    assert store.list_names() == []


def test_deterministic_bytes(tmp_path, records):
    first = _write(tmp_path / "a", records)
    second = _write(tmp_path / "b", records)
    assert [s.sha256 for s in first.shards] == [s.sha256 for s in second.shards]


def test_truncated_shard(tmp_path, records):
    manifest = _write(tmp_path, records)
    path = tmp_path / manifest.shards[1].name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    store = ShardStore(tmp_path)
    with pytest.raises(ShardError, match=r"shard-000001.tar.*truncated"):
        usable_shards(store)
    assert [s.name for s in usable_shards(store, on_error="skip")] == [manifest.shards[0].name]
    with pytest.raises(ShardError, match=r"shard-000001.tar is truncated or corrupt after sample"):
        list(store.iter_shard(manifest.shards[1].name))
    skipping = Decoder(SIZE, POINTS, on_error="skip")
    assert len(list(iter_samples(str(tmp_path), skipping))) == 3
    report = check_shards(str(tmp_path))
    assert not report.ok and any("shard-000001.tar" in p for p in report.problems)


def test_missing_member_and_wrong_version(tmp_path, records):
    def newer_version(members):
        meta = json.loads(members["meta.json"])
        members["meta.json"] = json.dumps({**meta, "schema_version": SCHEMA_VERSION + 1}).encode()

    store = _write_damaged(tmp_path, records[:3], {1: lambda members: members.pop("body.npz"), 2: newer_version})
    raws = list(store.iter_shard(shard_name(0)))
    with pytest.raises(
        SchemaError, match=rf"'{records[1].key}' in shard .*shard-000000.tar: missing member 'body.npz'"
    ):
        decode_sample(raws[1], SIZE, POINTS)
    with pytest.raises(SchemaError, match=rf"'{records[2].key}'.* has schema version {SCHEMA_VERSION + 1}"):
        decode_sample(raws[2], SIZE, POINTS)
    with pytest.raises(SchemaError, match="missing member"):
        list(iter_samples(str(tmp_path), Decoder(SIZE, POINTS)))
    skipping = Decoder(SIZE, POINTS, on_error="skip")
    assert len(list(iter_samples(str(tmp_path), skipping))) == 1 and skipping.skipped == 2
    report = check_shards(str(tmp_path))
    assert report.shards == 1 and report.samples == 1 and len(report.problems) == 2


def test_manifest_errors(tmp_path, records):
    with pytest.raises(ShardError, match="no manifest.json"):
        ShardStore(tmp_path).read_manifest()
    manifest = _write(tmp_path, records)
    manifest.schema_version = SCHEMA_VERSION + 1
    ShardStore(tmp_path).write_manifest(manifest)
    with pytest.raises(ShardError, match=f"schema version {SCHEMA_VERSION + 1}"):
        ShardStore(f"file://{tmp_path}").read_manifest()
