"""The generation job end to end: jobs/make_shards.py (Ray Data), then checks on what it wrote."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from munet.data.camera import CameraSettings
from munet.data.check import check_shards
from munet.data.decode import Decoder, iter_samples
from munet.data.generate import GenerationSettings, SampleGenerator, generate_shards_here
from munet.data.schema import decode_record
from munet.data.shards import MANIFEST_NAME, PROGRESS_NAME, ShardError, ShardStore, shard_name
from tests.conftest import REPO
from tests.test_render import silhouette

SETTINGS = GenerationSettings(
    num_samples=4, seed=7, image_size=96, samples_per_shard=2, views=2, camera=CameraSettings(yaw=(-60.0, 60.0))
)


def _run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "ANNY_CACHE_DIR": os.environ.get("ANNY_CACHE_DIR", "")}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """``jobs/make_shards.py`` on a local Ray with 2 workers: the shard folder and the finished process."""
    out = tmp_path_factory.mktemp("shards")
    result = _run(
        "jobs/make_shards.py",
        "--out",
        str(out),
        "--num-samples",
        str(SETTINGS.num_samples),
        "--seed",
        str(SETTINGS.seed),
        "--image-size",
        str(SETTINGS.image_size),
        "--samples-per-shard",
        str(SETTINGS.samples_per_shard),
        "--views",
        str(SETTINGS.views),
        "--yaw",
        "-60",
        "60",
        "--workers",
        "2",
        "--num-cpus",
        "2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.fixture(scope="module")
def shards(made) -> Path:
    return made[0]


def test_the_console_shows_progress_without_library_chatter(made):
    """munet's own lines, and none of the informational output of Warp (a banner per Ray worker),
    Ray Data (execution plans) or Ray Data's progress-bar notice (``MUNET_VERBOSE=1`` restores them)."""
    console = made[1].stdout + made[1].stderr
    assert "generating 4 samples in 2 shards with 2 workers" in console and "(2/2 shards done" in console
    for chatter in ("Warp 1.", "CUDA driver", "LBVH", "Kernel cache", "Execution plan", "Progress bars disabled"):
        assert chatter not in console, f"{chatter!r} on the console:\n{console[-3000:]}"


@pytest.fixture(scope="module")
def records(shards):
    store = ShardStore(shards)
    return [decode_record(raw) for shard in store.read_manifest().shards for raw in store.iter_shard(shard.name)]


def test_check_command(shards, tmp_path):
    result = _run("-m", "munet.data", "check", str(shards))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 shards, 4 good samples: OK" in result.stdout
    broken = tmp_path / "broken"
    shutil.copytree(shards, broken)
    shard = broken / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: same size, wrong checksum
    shard.write_bytes(bytes(data))
    result = _run("-m", "munet.data", "check", str(broken))
    assert result.returncode == 1 and "shard-000001.tar: SHA-256 differs" in result.stdout


def test_samples_follow_the_settings(records):
    assert [r.key for r in records] == [SETTINGS.key(i) for i in range(SETTINGS.num_samples)]
    for record in records:
        assert record.image.shape == (96, 96, 3) and record.camera.image_size == 96
        assert record.cloth.points.shape == (SETTINGS.cloth_points, 3)
        np.testing.assert_allclose(np.linalg.norm(record.cloth.normals, axis=1), 1.0, atol=1e-5)
        assert record.garments and record.body.backend == "anny"
    # The two views of one subject share the body but not the camera.
    first, second = records[0], records[1]
    np.testing.assert_array_equal(first.body.pose, second.body.pose)
    assert not np.allclose(first.camera.R, second.camera.R)


def test_mask_is_the_projected_clothed_mesh(records):
    for record in records:
        reference = silhouette(record.cloth.vertices, record.cloth.faces, record.camera.K, 96)
        iou = (record.mask & reference).sum() / (record.mask | reference).sum()
        assert iou >= 0.97, f"{record.key}: IoU {iou:.4f}"
        # Joints lie inside the body, which lies inside the clothes: each projects onto the
        # silhouette (within one pixel, for joints right at the outline in side views).
        mask = cv2.dilate(record.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        pixels = np.round(record.body.joints_2d).astype(int)
        assert mask[pixels[:, 1], pixels[:, 0]].all(), record.key


def test_same_seed_same_bytes_whatever_the_parallelism(shards, tmp_path):
    """The job wrote its shards with 2 worker processes; one process here must write the same
    bytes, and a sample must not depend on which shard or order it is generated in."""
    manifest = ShardStore(shards).read_manifest()
    assert manifest.generator["camera"]["yaw"] == [-60.0, 60.0]  # --yaw reached the generator
    generator = SampleGenerator(SETTINGS)
    try:
        info = generator.write_shard(ShardStore(tmp_path), 1)
        assert info.sha256 == manifest.shards[1].sha256
        key, members = generator.members(0)  # after subject 1: no cached state leaks in
    finally:
        generator.close()
    # Without Ray, in this process: the same shards and manifest.
    generate_shards_here(str(tmp_path / "here"), SETTINGS)
    assert ShardStore(tmp_path / "here").read_manifest() == manifest
    stored = next(ShardStore(shards).iter_shard(manifest.shards[0].name))
    assert stored["__key__"] == key
    assert {k: v for k, v in stored.items() if not k.startswith("__")} == members
    decoded = next(iter_samples(str(shards), Decoder(image_size=64, cloth_points=512)))
    assert decoded["image"].shape == (3, 64, 64) and decoded["cloth_points"].shape == (512, 3)


SMALL = [
    "--num-samples",
    "6",
    "--samples-per-shard",
    "1",
    "--views",
    "3",
    "--image-size",
    "48",
    "--cloth-points",
    "64",
    "--in-process",
]
"""Six one-sample shards of two subjects: shards 0–2 come fast, then the second subject's geometry."""


def test_overwrite_killed_midway_then_rerun_continues(tmp_path):
    """``--overwrite`` killed after 3 of 6 shards: the old manifest is gone (no reader takes the
    half-written folder for a set); the same command again keeps those 3 shards and writes the
    others, and the manifest comes last."""
    out = tmp_path / "set"
    small = GenerationSettings(num_samples=6, seed=1, image_size=48, samples_per_shard=1, views=3, cloth_points=64)
    old = generate_shards_here(str(out), small)
    old_hashes = {shard.sha256 for shard in old.shards}

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    log_path = tmp_path / "killed.log"
    progress_path = out / PROGRESS_NAME
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "jobs/make_shards.py", "--out", str(out), "--seed", "2", "--overwrite", *SMALL],
            cwd=REPO,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 240
            recorded = []
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    recorded = json.loads(progress_path.read_text())["shards"]
                except (FileNotFoundError, ValueError, KeyError):
                    recorded = []
                if len(recorded) >= 3:
                    break
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, log_path.read_text()[-3000:]
    recorded = {info["name"]: info["sha256"] for info in json.loads(progress_path.read_text())["shards"]}
    assert 3 <= len(recorded) < 6, f"killed too late to test anything: {sorted(recorded)}"

    # The old manifest went first, and no shard of the old set is left beside the new ones.
    assert not (out / MANIFEST_NAME).exists()
    on_disk = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in out.glob("shard-*.tar")}
    assert not old_hashes & set(on_disk.values())
    with pytest.raises(ShardError, match=r"did not finish\. Re-run it with the same settings"):
        ShardStore(out).read_manifest()
    # Other settings do not mix into the unfinished set.
    with pytest.raises(
        FileExistsError, match=r"unfinished generation with other settings \(differing: generator\.seed, seed;"
    ):
        generate_shards_here(str(out), small)
    stamps = {name: (out / name).stat().st_mtime_ns for name in recorded}

    result = _run("jobs/make_shards.py", "--out", str(out), "--seed", "2", *SMALL, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        f"continuing the interrupted generation in {out}: {len(recorded)} of 6 shards already written" in result.stderr
    )
    written = sorted(re.findall(r"shard (shard-\d+\.tar) written", result.stderr))
    assert written == sorted({shard_name(i) for i in range(6)} - set(recorded))  # only the rest
    assert {name: (out / name).stat().st_mtime_ns for name in recorded} == stamps  # kept untouched

    manifest = ShardStore(out).read_manifest()
    assert [s.name for s in manifest.shards] == [shard_name(i) for i in range(6)]
    assert all(manifest.shards[int(name[6:12])].sha256 == sha for name, sha in recorded.items())
    assert not progress_path.exists()
    report = check_shards(str(out))
    assert report.ok and report.samples == 6, report.summary()
    store = ShardStore(out)
    assert {decode_record(raw).extra_meta["seed"] for s in manifest.shards for raw in store.iter_shard(s)} == {2}
