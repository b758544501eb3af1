"""Bad shard files, read for real: non-finite arrays, a flipped byte, a truncated tar whose manifest
matches it, bad samples under both ``data.on_bad_sample`` policies, and a seeded fuzz of the reader.

Every case must end in correct samples or a clear error that names the shard (and the sample when
one is to blame) and says what to do; never a silent wrong sample, a hang or a crash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from munet.config import DataConfig, load_config
from munet.data.cli import main as data_main
from munet.data.decode import Decoder, iter_samples
from munet.data.schema import BadSampleError, SchemaError, encode_sample, is_bad_data
from munet.data.shards import CorruptShardError, Manifest, ShardStore, shard_name
from tests.conftest import REPO
from tests.test_shards import POINTS, SIZE, _write, records  # noqa: F401 (records: the fixture)


def _write_members(location: Path, samples: list[tuple[str, dict[str, bytes]]]) -> ShardStore:
    """One shard holding ``samples`` (key, members) and its manifest."""
    store = ShardStore(location)
    with store.writer(shard_name(0)) as writer:
        for key, members in samples:
            writer.write(key, members)
    store.write_manifest(Manifest(shards=[writer.info]))
    return store


def _member_offset(shard: Path, member: str) -> tuple[int, int]:
    """Where the data of tar member ``member`` starts in ``shard``, and its size."""
    with tarfile.open(shard) as archive:
        info = archive.getmember(member)
        return info.offset_data, info.size


def _check(location: Path, capsys) -> tuple[int, str]:
    code = data_main(["check", str(location)])
    return code, capsys.readouterr().out


def test_non_finite_arrays_are_bad_samples(tmp_path, records, capsys):  # noqa: F811
    body = records[1].body
    nan_body = dataclasses.replace(body, vertices=body.vertices.copy())
    nan_body.vertices[5, 1] = np.nan
    cloth = records[2].cloth
    inf_cloth = dataclasses.replace(cloth, points=cloth.points.copy())
    inf_cloth.points[0, 0] = np.inf
    damaged = [
        records[0],
        dataclasses.replace(records[1], body=nan_body),
        dataclasses.replace(records[2], cloth=inf_cloth),
    ]
    store = _write_members(tmp_path, [(r.key, encode_sample(r)) for r in damaged])
    shard = store.uri(shard_name(0))

    code, out = _check(tmp_path, capsys)
    assert code == 1, out
    assert "1 shards, 1 good samples: 2 PROBLEM(S)" in out
    assert f"sample '{records[1].key}' in shard {shard}: body.npz array 'vertices' holds 1 non-finite" in out
    assert f"sample '{records[2].key}' in shard {shard}: cloth.npz array 'points' holds 1 non-finite" in out

    with pytest.raises(
        SchemaError, match=rf"'{records[1].key}' in shard {re.escape(shard)}: body.npz .*\(NaN or inf\)"
    ):
        list(iter_samples(str(tmp_path), Decoder(SIZE, POINTS)))
    skipping = Decoder(SIZE, POINTS, on_error="skip")
    kept = list(iter_samples(str(tmp_path), skipping))
    assert len(kept) == 1 and skipping.skipped == 2
    assert all(np.isfinite(value).all() for value in kept[0].values())


def test_flipped_byte_is_refused_by_the_readers(tmp_path, records, capsys, caplog):  # noqa: F811
    manifest = _write(tmp_path, records, image_format="jpg")
    path = tmp_path / manifest.shards[1].name
    offset, size = _member_offset(path, f"{records[4].key}.image.jpg")
    data = bytearray(path.read_bytes())
    data[offset + size // 2] ^= 0x10  # one bit in the JPEG's entropy-coded data: same size
    path.write_bytes(bytes(data))
    store = ShardStore(tmp_path)

    # The JPEG still decodes (to a wrong image): only the checksum can tell.
    raws = list(store.iter_shard(manifest.shards[1].name))  # a bare name: read unchecked
    assert len(raws) == 3
    read = []
    with pytest.raises(CorruptShardError) as error:
        for sample in iter_samples(str(tmp_path), Decoder(SIZE, POINTS)):
            read.append(sample)
    message = str(error.value)
    assert f"shard {path}: SHA-256 differs from the manifest" in message
    assert f"python -m munet.data check {tmp_path}" in message and "regenerate" in message
    assert len(read) == 3  # shard 0 only: nothing of the damaged shard was decoded
    assert isinstance(error.value, BadSampleError) and not is_bad_data(RuntimeError("worker died"))
    wrapped = RuntimeError("a Ray task failed")
    wrapped.__cause__ = error.value
    assert is_bad_data(wrapped)
    with pytest.raises(CorruptShardError, match="SHA-256 differs"):
        list(store.iter_shard(manifest.shards[1]))  # a manifest entry: checked

    skipping = Decoder(SIZE, POINTS, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="munet.data.decode"):
        assert len(list(iter_samples(str(tmp_path), skipping))) == 3
    assert skipping.skipped == 3 and "shard-000001.tar: SHA-256 differs" in caplog.text

    code, out = _check(tmp_path, capsys)
    assert code == 1 and f"{path}: SHA-256 differs from the manifest" in out


def test_truncated_tar_with_a_matching_manifest_names_the_shard(tmp_path, records, capsys, caplog):  # noqa: F811
    manifest = _write(tmp_path, records)
    path = tmp_path / manifest.shards[1].name
    offset, _ = _member_offset(path, f"{records[4].key}.cloth.npz")
    cut = path.read_bytes()[: offset + 100]
    path.write_bytes(cut)
    # As if the manifest had been rewritten for the cut file: size and checksum match it.
    shards = [
        manifest.shards[0],
        dataclasses.replace(manifest.shards[1], size_bytes=len(cut), sha256=hashlib.sha256(cut).hexdigest()),
    ]
    ShardStore(tmp_path).write_manifest(dataclasses.replace(manifest, shards=shards))

    with pytest.raises(CorruptShardError) as error:
        list(iter_samples(str(tmp_path), Decoder(SIZE, POINTS)))
    message = str(error.value)
    assert f"shard {path} is truncated or corrupt after sample '{records[3].key}'" in message
    assert "regenerate the shards (jobs/make_shards.py)" in message
    assert f"python -m munet.data check {tmp_path}" in message
    assert is_bad_data(error.value)

    skipping = Decoder(SIZE, POINTS, on_error="skip")
    with caplog.at_level(logging.WARNING, logger="munet.data.decode"):
        kept = list(iter_samples(str(tmp_path), skipping))
    assert len(kept) == 4 and skipping.skipped == 2  # samples 3 (whole) and 4, 5 (lost)
    assert "skipping 2 sample(s)" in caplog.text and "shard-000001.tar is truncated" in caplog.text

    code, out = _check(tmp_path, capsys)
    assert code == 1 and f"shard {path} is truncated or corrupt after sample" in out


def test_on_bad_sample_error_or_skip(tmp_path, records, caplog):  # noqa: F811
    samples = []
    for i, record in enumerate(records[:4]):
        members = encode_sample(record)
        if i == 1:
            members.pop("mask.png")
        if i == 2:
            members["cloth.npz"] = members["cloth.npz"][:200]  # a corrupt member
        samples.append((record.key, members))
    store = _write_members(tmp_path, samples)
    shard = re.escape(store.uri(shard_name(0)))
    config = DataConfig(image_size=SIZE, cloth_points=POINTS, augment=False)
    assert config.on_bad_sample == "error"

    with pytest.raises(SchemaError, match=rf"'{records[1].key}' in shard {shard}: missing member 'mask.png'") as error:
        list(iter_samples(str(tmp_path), Decoder.from_config(config)))
    assert isinstance(error.value, BadSampleError) and isinstance(error.value, ValueError)

    skipping = Decoder.from_config(dataclasses.replace(config, on_bad_sample="skip"))
    with caplog.at_level(logging.WARNING, logger="munet.data.decode"):
        kept = list(iter_samples(str(tmp_path), skipping))
    assert len(kept) == 2 and skipping.skipped == 2
    assert f"'{records[1].key}'" in caplog.text and f"'{records[2].key}'" in caplog.text
    assert "cloth.npz' is not a readable npz" in caplog.text

    assert load_config(overrides=["data.on_bad_sample=skip"]).data.on_bad_sample == "skip"
    with pytest.raises(ValueError, match="on_bad_sample .* must be 'error' or 'skip', got 'ignore'"):
        Decoder.from_config(dataclasses.replace(config, on_bad_sample="ignore"))


def fuzz_reader(folder: str, seed: int, flips: int, cuts: int) -> list[dict[str, str]]:
    """Damage the single shard of ``folder`` in seeded ways and read it back each time.

    Each damage (a byte xor-ed with a random non-zero value, or the file cut at a random length)
    is read twice: with the manifest as written (``"checked"``), and with a manifest rewritten to
    match the damaged file (``"vouched"``), which reaches the tar parser and the decoders. Returns
    one ``{"case", "manifest", "outcome", "detail"}`` per read, ``outcome`` being ``same`` (the
    original samples), ``different`` (other samples), ``error`` (a BadSampleError naming the
    shard), ``unnamed`` (one that does not) or ``other`` (any other exception).
    """
    store = ShardStore(folder)
    manifest = store.read_manifest()
    info = manifest.shards[0]
    path = Path(store.path(info.name))
    original = path.read_bytes()
    reference = list(iter_samples(folder, Decoder(SIZE, POINTS)))
    # Most bytes are array data that zip CRCs guard; aim a third of the flips at the tar headers and
    # a third at the images and JSON members, where the parsers have more to get wrong.
    headers, small = [], []
    with tarfile.open(path) as archive:
        for member in archive.getmembers():
            headers += range(member.offset, member.offset_data)
            if not member.name.endswith(".npz"):
                small += range(member.offset_data, member.offset_data + member.size)
    rng = np.random.default_rng(seed)
    positions = [
        *rng.integers(0, len(original), flips - 2 * (flips // 3)),
        *rng.choice(headers, flips // 3),
        *rng.choice(small, flips // 3),
    ]
    damages: list[tuple[str, bytes]] = []
    for position, xor in zip(positions, rng.integers(1, 256, flips)):
        damaged = bytearray(original)
        damaged[position] ^= int(xor)
        damages.append((f"flip byte {position} ^ {xor}", bytes(damaged)))
    for length in [0, 511, 512, 1024, *rng.integers(1, len(original), cuts)]:
        damages.append((f"cut at {length}", original[: int(length)]))
    results = []
    for name, damaged in damages:
        path.write_bytes(damaged)
        for vouched in (False, True):
            entry = info
            if vouched:
                entry = dataclasses.replace(info, size_bytes=len(damaged), sha256=hashlib.sha256(damaged).hexdigest())
            store.write_manifest(dataclasses.replace(manifest, shards=[entry]))
            try:
                samples = list(iter_samples(folder, Decoder(SIZE, POINTS)))
                same = len(samples) == len(reference) and all(
                    got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)
                    for got, want in zip(samples, reference)
                )
                outcome, detail = ("same" if same else "different"), f"{len(samples)} samples"
            except BadSampleError as exc:
                outcome, detail = ("error" if str(path) in str(exc) else "unnamed"), str(exc)
            except Exception as exc:  # noqa: BLE001 (what the test must never see)
                outcome, detail = "other", repr(exc)
            results.append(
                {
                    "case": name,
                    "manifest": "vouched" if vouched else "checked",
                    "outcome": outcome,
                    "detail": detail[:300],
                }
            )
    path.write_bytes(original)
    store.write_manifest(manifest)
    return results


def test_fuzzed_shards_give_the_samples_or_a_clear_error(tmp_path, records):  # noqa: F811
    store = _write_members(tmp_path, [(r.key, encode_sample(r)) for r in records[:3]])
    original = Path(store.path(shard_name(0))).read_bytes()
    code = (
        "import json, sys\n"
        "from tests.test_shard_faults import fuzz_reader\n"
        f"print(json.dumps(fuzz_reader({str(tmp_path)!r}, seed=15, flips=120, cuts=40)))\n"
    )
    # Its own interpreter: a crash or a hang shows as an exit status or a timeout, not a dead run.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(results) == 2 * (120 + 44)
    checked = [r for r in results if r["manifest"] == "checked"]
    vouched = [r for r in results if r["manifest"] == "vouched"]
    # With the manifest as written, every damage is caught before any sample is decoded.
    wrong = [
        r
        for r in checked
        if r["outcome"] != "error" or not re.search(r"SHA-256 differs|bytes, the manifest says", r["detail"])
    ]
    assert not wrong, wrong[:5]
    # With a manifest that vouches for the damaged bytes, samples may differ (nothing can tell),
    # but every failure is a clear error naming the shard.
    unclear = [r for r in vouched if r["outcome"] not in ("same", "different", "error")]
    assert not unclear, unclear[:5]
    outcomes = {outcome: sum(r["outcome"] == outcome for r in vouched) for outcome in ("same", "different", "error")}
    assert outcomes["error"] > 0 and outcomes["same"] + outcomes["different"] > 0, outcomes
    assert Path(store.path(shard_name(0))).read_bytes() == original
