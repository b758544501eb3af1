"""MuNet on the SMPL topology: the graph hierarchy built on SMPL's own closed mesh (a body-shaped
fake model in the real file format), trained on converted 3DPW shards whose gendered SMPL meshes
supervise it, and scored by the 3DPW and Human3.6M protocols through a (17, 6890) regressor."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from munet.body import body_topology, build_body_model
from munet.checkpoint.state import save_checkpoint
from munet.config import load_config
from munet.convert.pw3d import convert_3dpw
from munet.data.decode import Decoder, iter_samples
from munet.eval.evaluate import evaluate
from munet.model import PART_NAMES, MuNet
from munet.train.step import training_step
from tests.fake_smpl import write_body_shaped_smpl
from tests.fixtures_body_datasets import write_3dpw
from tests.test_checkpoint_load import TINY


@pytest.fixture(scope="module")
def smpl(tmp_path_factory):
    """The SMPL configuration (gendered and neutral body-shaped fakes) and 3DPW shards converted
    with the same models."""
    root = tmp_path_factory.mktemp("smpl")
    models = root / "models"
    for seed, gender in enumerate(("NEUTRAL", "MALE", "FEMALE")):
        write_body_shaped_smpl(models, f"SMPL_{gender}.pkl", seed=seed)
    config = load_config(
        "cpu",
        [
            *TINY,
            "body.backend=smplx",
            "body.model_type=smpl",
            f"body.model_dir={models}",
            "graph.coarse_topology=fine",
            "graph.cloth_subdivisions=0",
            f"graph.cache_dir={root / 'graph'}",
            "data.augment=false",
        ],
    )
    write_3dpw(root / "3dpw", models, frames=3)
    convert_3dpw(root / "3dpw", str(root / "shards"), body_models=models, image_size=64)
    return config, str(root / "shards")


def test_the_hierarchy_is_built_on_the_smpl_mesh(smpl):
    config, _ = smpl
    body = build_body_model(config.body)
    templates = MuNet(config, body).templates
    assert templates.num_fine_vertices == templates.coarse.num_vertices == templates.cloth.num_vertices == 6890
    assert torch.equal(templates.fine_faces, templates.coarse.faces)
    # The T-pose template stands upright facing the camera: head up (−y), feet down.
    vertices = templates.coarse.vertices
    assert float(vertices[:, 1].min()) < -0.5 and float(vertices[:, 1].max()) > 0.5
    # The flip augmentation's maps: a symmetric mesh, left/right joints and parts swapped.
    mirror = templates.fine_mirror
    torch.testing.assert_close(vertices[mirror] * torch.tensor([-1.0, 1.0, 1.0]), vertices, atol=1e-5, rtol=0)
    swapped = [
        PART_NAMES.index(n.replace("left", "@").replace("right", "left").replace("@", "right")) for n in PART_NAMES
    ]
    parts = templates.coarse_parts
    assert (torch.tensor(swapped)[parts[mirror]] == parts).float().mean() > 0.98  # ties on the midline aside
    assert templates.bone_mirror.tolist()[:3] == [0, 2, 1]  # pelvis, then the hips swapped
    with pytest.raises(ValueError, match="graph.coarse_topology: fine"):
        MuNet(
            dataclasses.replace(config, graph=dataclasses.replace(config.graph, coarse_topology="notoes_collapse10pc")),
            body,
        )


def test_3dpw_meshes_supervise_the_smpl_network_and_the_protocols_score_it(smpl, tmp_path):
    config, shards = smpl
    body = build_body_model(config.body)
    torch.manual_seed(0)
    model = MuNet(config, body)
    decoder = Decoder(image_size=64, cloth_points=config.data.cloth_points, body=body_topology(config.body))
    samples = list(iter_samples(shards, decoder))
    assert [float(s["has_body_mesh"]) for s in samples] == [1.0] * 4  # SMPL meshes: the model's topology
    batch = {key: np.stack([s[key] for s in samples]) for key in samples[0]}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(1, 9):
        loss, logs = training_step(model, batch, step, config, torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(logs["loss/body_vertex"]))
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]  # the meshes are learnt from

    run = tmp_path / "run"
    save_checkpoint(run / "checkpoint_000008", step=8, model=model, config=config)
    rng = np.random.default_rng(0)
    regressor = rng.random((17, 6890)) * (rng.random((17, 6890)) < 0.01)
    regressor /= regressor.sum(axis=1, keepdims=True)
    np.save(tmp_path / "J_regressor_h36m.npy", regressor)
    summary = evaluate(
        run, shards, str(tmp_path / "report"), protocol="3dpw", regressor=tmp_path / "J_regressor_h36m.npy"
    )
    assert summary["num_samples"] == 4 and summary["ground_truth"] == {"mesh": 4}
    assert summary["joint_set"] == "lsp14" and np.isfinite(summary["pa_mpjpe_mm"]) and summary["pa_mpjpe_mm"] > 0
    assert (tmp_path / "report" / "metrics.md").exists()
