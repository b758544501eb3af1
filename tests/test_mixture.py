"""Mixed-source training: ``data.sources`` draws each shard folder by its weight through Ray Data
into Ray Train, with samples of three data sets (synthetic, 3DPW, Human3.6M) in one run."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from munet.body import body_topology
from munet.config import DataSource, load_config
from munet.convert.h36m import convert_h36m
from munet.convert.pw3d import convert_3dpw
from munet.data.ray_dataset import mixture_dataset, mixture_plan
from munet.train.distributed import run_training
from tests.fixtures_body_datasets import write_3dpw, write_h36m_json, write_smpl_models
from tests.test_distributed import TINY


def test_mixture_plan_gives_each_source_its_share():
    sizes = [[("a0", 4), ("a1", 4)], [("b0", 3)], [("c0", 5), ("c1", 1)]]  # 17 samples in all
    plan = mixture_plan(sizes, [2.0, 1.0, 1.0], seed=0)
    per_source = Counter()
    for draw in plan:
        per_source[draw.source] += draw.samples
    assert dict(per_source) == {0: round(17 * 0.5), 1: round(17 * 0.25), 2: round(17 * 0.25)}
    # Source 1 (3 samples) is cycled to give its 4: its one shard read twice, the second time in part.
    assert sorted((d.shard, d.samples) for d in plan if d.source == 1) == [("b0", 1), ("b0", 3)]
    assert plan == mixture_plan(sizes, [2.0, 1.0, 1.0], seed=0)  # seeded
    assert [d.source for d in plan] != sorted(d.source for d in plan)  # sources interleaved
    with pytest.raises(ValueError, match="weights must be positive"):
        mixture_plan(sizes, [1.0, 0.0, 1.0], seed=0)


@pytest.fixture(scope="module")
def sources(ray_local, tmp_path_factory):
    """Three real shard folders: synthetic (all targets), 3DPW (SMPL mesh + 2D joints) and
    Human3.6M (joints only), the last two converted from fixtures in the data sets' formats."""
    from munet.data.generate import generate_shards

    root = tmp_path_factory.mktemp("mixture")
    generate_shards(str(root / "synthetic"), num_samples=8, seed=3, image_size=96, samples_per_shard=4)
    models = write_smpl_models(root / "models")
    write_3dpw(root / "3dpw", models, frames=3)
    convert_3dpw(root / "3dpw", str(root / "pw3d_shards"), body_models=models, image_size=64)
    write_h36m_json(root / "h36m", subjects=(9, 11), frames=11)
    convert_h36m(root / "h36m", str(root / "h36m_shards"), split="p2-test", image_size=64)
    return [str(root / name) for name in ("synthetic", "pw3d_shards", "h36m_shards")]


@pytest.mark.ray
def test_a_pass_over_the_mixture_follows_the_weights(sources):
    config = load_config("cpu", TINY)
    weighted = [DataSource(path, weight) for path, weight in zip(sources, (2.0, 1.0, 1.0))]
    rows = mixture_dataset(weighted, config.data, body=body_topology(config.body)).take_all()
    total = 8 + 4 + 6  # the samples of the three folders
    counts = Counter(int(row["source"]) for row in rows)
    assert dict(counts) == {0: round(total * 0.5), 1: round(total * 0.25), 2: round(total * 0.25)}
    # Each source's rows carry its targets' flags: synthetic all, 3DPW no cloth/mask, H36M joints only.
    flags = {int(row["source"]): (float(row["has_body_mesh"]), float(row["has_cloth"])) for row in rows}
    assert flags == {0: (1.0, 1.0), 1: (0.0, 0.0), 2: (0.0, 0.0)}  # 3DPW's SMPL mesh cannot supervise Anny


@pytest.mark.ray
def test_mixed_run_trains_with_two_ddp_workers(sources, tmp_path):
    spec = ", ".join(f"{{path: '{path}', weight: {w}}}" for path, w in zip(sources, (2, 1, 1)))
    config = load_config(
        "cpu", [*TINY, f"data.sources=[{spec}]", "train.workers=2", "train.cpus_per_worker=2", "train.steps=4"]
    )
    result = run_training(config, data=None, out=str(tmp_path), name="mixed")
    assert result.error is None and result.metrics["step"] == 4
    history = result.metrics_dataframe
    assert np.isfinite(history["loss"]).all()
    for name in ("loss/body_joint", "loss/body_reproj", "loss/cloth_chamfer"):
        assert np.isfinite(history[name]).all(), name
    # Rank 0 drew steps × batch samples, and says from which source each came.
    last = result.metrics
    drawn = [last.get(f"data/source{i}", 0.0) for i in range(3)]
    assert math.isclose(sum(drawn), 4 * config.train.batch_size)
