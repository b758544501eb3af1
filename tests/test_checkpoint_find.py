"""Finding checkpoints: folder names, completeness and ordering in run storage on local folders and URIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from munet.checkpoint.find import (
    checkpoint_dir_name,
    checkpoint_step,
    complete_checkpoints,
    latest_checkpoint,
    run_has_checkpoints,
)


def _folder(run: Path, name: str, complete: bool = True) -> None:
    (run / name).mkdir(parents=True)
    if complete:
        (run / name / "state.pt").write_bytes(b"x")


def test_checkpoint_names_encode_the_step_and_sort_by_it():
    assert checkpoint_dir_name(120) == "checkpoint_00000120"
    assert checkpoint_step("s3://bucket/run/checkpoint_00000120/") == 120
    assert checkpoint_step("checkpoint_2026-11-24_01-43-52.298739") is None
    assert checkpoint_step("model_00000120") is None
    assert sorted([checkpoint_dir_name(s) for s in (1000, 20, 3)]) == [checkpoint_dir_name(s) for s in (3, 20, 1000)]


@pytest.mark.parametrize("as_uri", [False, True])
def test_latest_complete_checkpoint_skips_partial_uploads(tmp_path, as_uri):
    run = tmp_path / "out" / "job"
    _folder(run, checkpoint_dir_name(9))
    _folder(run, checkpoint_dir_name(20))
    _folder(run, checkpoint_dir_name(30), complete=False)  # an upload cut short
    _folder(run, "checkpoint_2026-11-24_01-43-52.298739")  # a name without a step: oldest
    (run / "checkpoint_manager_snapshot.json").write_text("{}")
    location = f"file://{run}" if as_uri else str(run)

    found = complete_checkpoints(location)
    assert [Path(p).name for p in found] == [
        "checkpoint_2026-11-24_01-43-52.298739",
        checkpoint_dir_name(9),
        checkpoint_dir_name(20),
    ]
    assert latest_checkpoint(location) == f"{location}/{checkpoint_dir_name(20)}"
    out = f"file://{tmp_path / 'out'}" if as_uri else str(tmp_path / "out")
    assert run_has_checkpoints(out, "job")
    assert not run_has_checkpoints(out, "other")
    assert latest_checkpoint(f"{out}/other") is None
