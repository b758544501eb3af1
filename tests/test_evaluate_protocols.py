"""``munet evaluate --protocol``: the HMR benchmark protocols on real converted shards (Human3.6M,
MPI-INF-3DHP, 3DPW), checked against an independent numpy computation, their error messages, and
the own protocol on shards that lack some targets."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from munet.convert.h36m import convert_h36m
from munet.convert.mpi3dhp import convert_3dhp
from munet.eval.evaluate import ProtocolError, evaluate, protocol_ground_truth
from tests.fixtures_body_datasets import write_3dhp_test, write_h36m_json
from tests.test_checkpoint_load import run_dir  # noqa: F401 (a fixture: a run folder with one checkpoint)
from tests.test_convert_h36m import read_samples

# The regressor's 17 rows by name, and the rows of each protocol's joint set, spelled out here
# independently of munet.metrics.protocols (SPIN's H36M_TO_J14 and the 3DHP test-set order).
LSP14_ROWS = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10]
MPI17_ROWS = [10, 8, 14, 15, 16, 11, 12, 13, 4, 5, 6, 1, 2, 3, 0, 7, 9]


@pytest.fixture(scope="module")
def h36m_shards(tmp_path_factory):
    """Human3.6M protocol-2 test shards (S9, S11; 3 frames each): joints and eval_joints only."""
    root = tmp_path_factory.mktemp("h36m")
    write_h36m_json(root / "raw", subjects=(9, 11), frames=11)
    convert_h36m(root / "raw", str(root / "out"), split="p2-test", image_size=64)
    return str(root / "out")


@pytest.fixture(scope="module")
def mpi_shards(tmp_path_factory):
    """MPI-INF-3DHP test shards (TS1, 4 valid frames): joints and eval_joints (mpi3dhp17) only."""
    root = tmp_path_factory.mktemp("mpi")
    write_3dhp_test(root / "raw", frames=5, invalid=(1,))
    convert_3dhp(root / "raw", str(root / "out"), split="test", image_size=64)
    return str(root / "out")


@pytest.fixture(scope="module")
def model_vertices(run_dir):  # noqa: F811 (the fixture)
    from munet.checkpoint.load import load_trained_model

    model, _, _ = load_trained_model(run_dir)
    return int(model.joint_regressor.shape[-1])


def fake_regressor(path: Path, num_vertices: int, seed: int = 0) -> np.ndarray:
    """A ``(17, num_vertices)`` regressor with non-negative rows summing to 1, each joint a blend
    of a few vertices, saved at ``path``."""
    rng = np.random.default_rng(seed)
    weights = np.zeros((17, num_vertices))
    for row in weights:
        chosen = rng.choice(num_vertices, size=8, replace=False)
        row[chosen] = rng.uniform(0.1, 1.0, size=8)
    weights /= weights.sum(axis=1, keepdims=True)
    np.save(path, weights)
    return weights


def umeyama_error_mm(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean joint distance (mm) after the least-squares similarity transform of ``pred`` (J, 3)
    onto ``gt`` (J, 3), metres (Umeyama 1991)."""
    mu_p, mu_g = pred.mean(0), gt.mean(0)
    p, g = pred - mu_p, gt - mu_g
    u, s, vt = np.linalg.svd(g.T @ p / len(p))
    d = np.sign(np.linalg.det(u @ vt))
    sign = np.diag([1.0, 1.0, d])
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(s) @ sign) / (p**2).sum(1).mean()
    aligned = scale * p @ rotation.T + mu_g
    return float(np.linalg.norm(aligned - gt, axis=1).mean() * 1000.0)


def predicted_vertices(run_dir: Path, data: str) -> dict[str, np.ndarray]:  # noqa: F811
    """The model's body mesh ``(V, 3)`` for each sample, predicted one at a time in eval mode."""
    from munet.body import body_topology
    from munet.checkpoint.load import load_trained_model
    from munet.data.decode import Decoder
    from munet.eval.evaluate import iter_eval_items
    from munet.train.step import batch_to_tensors

    model, config, _ = load_trained_model(run_dir)
    decoder = Decoder.from_config(config.data, augment=False, body=body_topology(config.body))
    out = {}
    with torch.no_grad():
        for item in iter_eval_items(data, decoder):
            batch = batch_to_tensors({key: value[None] for key, value in item.inputs.items()}, "cpu")
            out[item.record.key] = model(batch["image"], batch["K"]).body_vertices[0].double().numpy()
    return out


def per_sample(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "per_sample.csv") as handle:
        return {row["key"]: row for row in csv.DictReader(handle)}


@pytest.mark.parametrize(
    ("protocol", "shards", "rows", "count"),
    [("h36m-p2", "h36m_shards", LSP14_ROWS, 6), ("3dhp", "mpi_shards", MPI17_ROWS, 4)],
)
def test_benchmark_matches_an_independent_procrustes(
    protocol,
    shards,
    rows,
    count,
    request,
    run_dir,  # noqa: F811
    model_vertices,
    tmp_path,
):
    data = request.getfixturevalue(shards)
    regressor_path = tmp_path / "J_regressor_h36m.npy"
    weights = fake_regressor(regressor_path, model_vertices)
    summary = evaluate(run_dir, data, tmp_path / "report", protocol=protocol, regressor=regressor_path, batch_size=3)

    truth = read_samples(data)
    vertices = predicted_vertices(run_dir, data)
    assert sorted(vertices) == sorted(truth) and len(truth) == count
    expected = {}
    for key, record in truth.items():
        pred = (weights @ vertices[key])[rows]  # the protocol's joints of the predicted mesh, metres
        expected[key] = umeyama_error_mm(pred, record.body.eval_joints.astype(np.float64))
    table = per_sample(tmp_path / "report")
    assert sorted(table) == sorted(expected)
    for key, value in expected.items():
        assert float(table[key]["pa_mpjpe_mm"]) == pytest.approx(value, rel=1e-3, abs=0.05)
        assert table[key]["gt_source"] == "eval_joints"
    assert summary["pa_mpjpe_mm"] == pytest.approx(np.mean(list(expected.values())), rel=1e-3)
    assert summary["median"]["pa_mpjpe_mm"] == pytest.approx(np.median(list(expected.values())), rel=1e-3)
    assert summary["pa_mpjpe_mm"] <= summary["mpjpe_mm"] + 1e-6

    # The report states the protocol, its frames, the regressor, the count and the predicted body.
    written = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert written["protocol"] == protocol and written["num_samples"] == count
    assert written["count"]["pa_mpjpe_mm"] == count and written["regressor"] == str(regressor_path)
    assert "predicted" in written["body"] and "not given" in written["body"]
    assert "chamfer_cm" not in written and "body_on_mask" not in written
    markdown = (tmp_path / "report" / "metrics.md").read_text()
    assert f"Protocol **{protocol}** on {count} samples" in markdown
    assert written["protocol_frames"] in markdown and str(regressor_path) in markdown
    assert "| pa_mpjpe_mm |" in markdown and "chamfer" not in markdown
    if protocol == "3dhp":
        assert set(written["metrics"]) == {"mpjpe_mm", "pa_mpjpe_mm", "pck150", "auc"}
        assert 0.0 <= written["pck150"] <= 100.0 and 0.0 <= written["auc"] <= written["pck150"] + 1e-6
    else:
        assert "S9 and S11" in written["protocol_frames"]


def test_regressor_errors(h36m_shards, run_dir, model_vertices, tmp_path, capsys):  # noqa: F811
    with pytest.raises(ProtocolError, match="--regressor J_regressor_h36m.npy"):
        evaluate(run_dir, h36m_shards, tmp_path / "none", protocol="h36m-p2")
    # The real regressor's shape on an Anny model: the message says how to train an SMPL model.
    smpl = tmp_path / "J_regressor_h36m.npy"
    fake_regressor(smpl, 6890)
    assert model_vertices != 6890
    with pytest.raises(ProtocolError, match="train with body.backend=smplx body.model_type=smpl"):
        evaluate(run_dir, h36m_shards, tmp_path / "smpl", protocol="h36m-p2", regressor=smpl)
    with pytest.raises(ProtocolError, match="no such file"):
        evaluate(run_dir, h36m_shards, tmp_path / "gone", protocol="3dhp", regressor=tmp_path / "gone.npy")

    # The command line (munet evaluate / jobs/evaluate.py share munet.eval.cli.main): exit code 2
    # and the message, no traceback.
    from munet.eval.cli import main

    args = ["--checkpoint", str(run_dir), "--data", h36m_shards, "--out", str(tmp_path / "cli")]
    with pytest.raises(SystemExit) as missing:
        main([*args, "--protocol", "h36m-p2"])
    assert missing.value.code == 2 and "needs --regressor" in capsys.readouterr().err
    assert main([*args, "--protocol", "3dhp", "--regressor", str(smpl)]) == 2
    assert "body.backend=smplx body.model_type=smpl" in capsys.readouterr().err


def test_samples_without_the_protocols_ground_truth(
    h36m_shards,
    mpi_shards,
    run_dir,
    model_vertices,
    tmp_path,  # noqa: F811
):
    regressor = tmp_path / "J_regressor_h36m.npy"
    fake_regressor(regressor, model_vertices)
    with pytest.raises(ProtocolError, match=r"sample 3dhp/\S+: protocol h36m-p2 needs eval_joints of joint set lsp14"):
        evaluate(run_dir, mpi_shards, tmp_path / "a", protocol="h36m-p2", regressor=regressor)
    # 3DPW takes the SMPL mesh, or eval_joints of its own joint set (lsp14) where a sample has no mesh.
    with pytest.raises(
        ProtocolError, match=r"sample 3dhp/\S+: protocol 3dpw needs a gendered SMPL body mesh .* or eval_joints"
    ):
        evaluate(run_dir, mpi_shards, tmp_path / "b", protocol="3dpw", regressor=regressor)
    assert evaluate(run_dir, h36m_shards, tmp_path / "c", protocol="3dpw", regressor=regressor)["num_samples"] == 6


def test_3dpw_ground_truth_is_the_smpl_mesh_through_the_regressor(tmp_path):
    from munet.convert.pw3d import convert_3dpw
    from munet.metrics.protocols import PROTOCOLS
    from tests.fixtures_body_datasets import write_3dpw, write_smpl_models

    models = write_smpl_models(tmp_path / "models")
    write_3dpw(tmp_path / "3dpw", models, frames=2)
    convert_3dpw(tmp_path / "3dpw", str(tmp_path / "out"), body_models=models, image_size=64)
    record = next(iter(read_samples(tmp_path / "out").values()))
    weights = fake_regressor(tmp_path / "r.npy", 6890)
    joints, source = protocol_ground_truth(record, PROTOCOLS["3dpw"], torch.as_tensor(weights, dtype=torch.float32))
    assert source == "mesh"
    np.testing.assert_allclose(joints, (weights @ record.body.vertices)[LSP14_ROWS], atol=1e-5)
    # A regressor for another mesh (an Anny model's) cannot score the SMPL ground truth.
    with pytest.raises(ProtocolError, match="regresses the ground truth from the SMPL mesh"):
        protocol_ground_truth(record, PROTOCOLS["3dpw"], torch.ones(17, 100) / 100)


def test_own_protocol_on_shards_without_mesh_cloth_or_mask(h36m_shards, run_dir, tmp_path):  # noqa: F811
    summary = evaluate(run_dir, h36m_shards, tmp_path / "own", num_surface_samples=200)
    assert summary["protocol"] == "own" and summary["num_samples"] == 6
    assert all(count == 0 for count in summary["count"].values())
    assert summary["mpjpe_mm"] is None and summary["chamfer_cm"] is None and summary["body_on_mask"] is None
    markdown = (tmp_path / "own" / "metrics.md").read_text()
    assert "| chamfer_cm | n/a | n/a | 0 |" in markdown


@pytest.fixture(scope="module")
def mixed_shards(h36m_shards, tmp_path_factory):
    """One shard of 5 samples: 3 synthetic (the first complete, the second without its clothed
    surface, the third without mask and normals) and 2 Human3.6M (joints only)."""
    import dataclasses

    from munet.data.generate import GenerationSettings, SampleGenerator
    from munet.data.schema import encode_sample
    from munet.data.shards import Manifest, ShardStore, shard_name

    generator = SampleGenerator(GenerationSettings(num_samples=3, seed=5, image_size=64, views=1))
    try:
        records = [generator.record(index) for index in range(3)]
    finally:
        generator.close()
    records[1] = dataclasses.replace(records[1], cloth=None)
    records[2] = dataclasses.replace(records[2], mask=None, normal=None)
    records += sorted(read_samples(h36m_shards).values(), key=lambda record: record.key)[:2]
    store = ShardStore(str(tmp_path_factory.mktemp("mixed")))
    with store.writer(shard_name(0)) as writer:
        for record in sorted(records, key=lambda record: record.key):
            writer.write(record.key, encode_sample(record))
    store.write_manifest(Manifest(shards=[writer.info]))
    return store.location


def test_own_protocol_counts_each_metric_over_the_samples_holding_its_target(mixed_shards, run_dir, tmp_path):  # noqa: F811
    summary = evaluate(run_dir, mixed_shards, tmp_path / "own", num_surface_samples=300)
    assert summary["num_samples"] == 5
    expected = {"mpjpe_mm": 3, "pve_mm": 3, "orientation_deg": 3, "chamfer_cm": 2, "p2s_cm": 2}
    expected |= {"normal_consistency": 2, "body_on_mask": 2}
    assert {key: summary["count"][key] for key in expected} == expected
    table = per_sample(tmp_path / "own")
    for key in expected:
        finite = [float(row[key]) for row in table.values() if np.isfinite(float(row[key]))]
        assert len(finite) == expected[key]
        assert summary[key] == pytest.approx(np.mean(finite), rel=1e-6)
        assert summary["median"][key] == pytest.approx(np.median(finite), rel=1e-6)
    for key, row in table.items():
        if key.startswith("h36m/"):
            assert all(np.isnan(float(row[metric])) for metric in expected)
    assert "| body_on_mask |" in (tmp_path / "own" / "metrics.md").read_text()
    assert (tmp_path / "own" / "overlays.png").is_file()
