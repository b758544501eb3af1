"""Sweeps of the mutualistic mechanism (:mod:`munet.tune`).

Fast checks of the search space, the settings and the result tables, then one real sweep — Ray
Tune + Optuna + ASHA around Ray Train, tiny model, 3 steps per trial — run through the command
line in a subprocess (it starts its own Ray with the dashboard, which Tune around a TorchTrainer
needs). Its ``--out`` is a ``file://`` URI, as a cluster's would be ``s3://``: the sweep, its trials
and their training runs reach the folder only through the URI. The sweep has 4 trials, trial 2
raises (fault injection; with the default ``max_failures: 1`` it must be recorded, not restarted),
and it is interrupted with Ctrl-C once trials 1 and 2 have ended, then resumed: the finished trials
must be kept, not redone.
"""

from __future__ import annotations

import csv
import math
import signal
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
import yaml

from munet.config import ConfigError, load_config
from munet.tune.cli import build_parser, parse_trial_overrides, resolve_spec
from munet.tune.results import pareto_mask
from munet.tune.settings import SweepSettings, SweepSpec, load_sweep_settings, sweep_location
from munet.tune.space import Range, SearchSpace, param_overrides, trial_config

REPO = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# Search space, settings, results (no Ray)


def test_sweep_yaml_mirrors_the_dataclass_defaults():
    assert load_sweep_settings() == SweepSettings()


def test_params_land_on_the_documented_config_keys():
    base = load_config("cpu", ["train.steps=200", "loss.cloth_p2s=0.3", "loss.cloth_chamfer=0.6"])
    params = {
        "feedback_weight": 1.5e-5,
        "feedback_warmup": 0.25,
        "teacher_forcing_ramp": 0.6,
        "consistency_weight": 0.7,
        "cloth_weight": 2.0,
        "lr": 1e-4,
    }
    config = trial_config(base, params, ["train.inject_failure_at_step=3"])

    assert config.mutual.feedback_weight.end == 1.5e-5  # exact: the override text reads back as float
    assert config.mutual.feedback_weight.warmup == 50  # 0.25 of 200 steps
    assert config.mutual.feedback_weight.start == base.mutual.feedback_weight.start  # shape kept
    assert config.mutual.teacher_forcing.ramp == 120
    assert config.loss.consistency_inside.start == 0.7 and config.loss.consistency_inside.kind == "constant"
    assert config.loss.cloth_chamfer.start == 2.0
    assert config.loss.cloth_p2s.start == pytest.approx(2.0 * 0.3 / 0.6)  # P2S keeps its ratio
    assert config.train.lr == 1e-4
    assert config.train.inject_failure_at_step == 3  # per-trial override applied last
    untouched = ("body", "graph", "model", "data")
    assert all(getattr(config, s) == getattr(base, s) for s in untouched)


def test_every_space_parameter_maps_onto_the_config():
    everything = SearchSpace(lr=Range(1e-4, 1e-3, log=True))
    base = load_config("cpu")
    point = {name: rng.low for name, rng in everything.ranges().items()}
    assert len(param_overrides(point, base)) >= len(point)
    with pytest.raises(ConfigError, match="unknown sweep parameter"):
        param_overrides({"feedbak_weight": 1.0}, base)


def test_yaml_overrides_change_only_what_they_name(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "trials": 5,
                "space": {
                    "feedback_weight": {"high": 5.0},
                    "lr": {"low": 1e-4, "high": 1e-3, "log": True},
                    "cloth_weight": None,
                },
            }
        )
    )
    settings = load_sweep_settings(path)
    assert settings.trials == 5
    assert settings.space.feedback_weight == Range(0.1, 5.0, log=True)  # low and log kept
    assert settings.space.lr == Range(1e-4, 1e-3, log=True)
    assert "cloth_weight" not in settings.space.ranges()
    assert settings.asha == SweepSettings().asha

    path.write_text("space: {feedback_weight: {low: 0.0, high: 1.0, log: true}}\n")
    with pytest.raises(ConfigError, match="log range"):
        load_sweep_settings(path)
    path.write_text("trails: 4\n")
    with pytest.raises(ConfigError, match="trails"):
        load_sweep_settings(path)


def test_pareto_mask_against_a_hand_made_front():
    points = [(1.0, 5.0), (2.0, 2.0), (3.0, 3.0), (5.0, 1.0), (2.0, 2.0), (1.0, 6.0)]
    # (3,3) is dominated by (2,2); (1,6) by (1,5); equal points do not dominate each other.
    assert pareto_mask(points) == [True, True, False, True, True, False]


def test_result_files_rank_only_evaluated_finite_trials(tmp_path):
    from munet.config import save_config
    from munet.tune.results import SweepResults, TrialRow, write_results
    from munet.tune.settings import ObjectiveSettings

    def evaluated(name, body, cloth, weight):
        folder = tmp_path / name
        folder.mkdir()
        save_config(load_config("cpu", [f"loss.cloth_chamfer={weight}"]), folder / "config.yaml")
        metrics = dict.fromkeys(("mpjpe_mm", "pve_mm", "p2s_cm", "normal_consistency"), 1.0)
        return TrialRow(
            name,
            name,
            "done",
            {"cloth_weight": weight},
            path=folder.as_uri(),
            metrics={**metrics, "pa_mpjpe_mm": body, "chamfer_cm": cloth},
            score=body / 50 + cloth,
        )

    rows = [
        evaluated("trial_001", 100.0, 3.0, 1.0),
        evaluated("trial_002", 50.0, 4.5, 2.0),
        evaluated("trial_003", 120.0, 3.5, 3.0),
        evaluated("trial_004", math.nan, math.nan, 4.0),
        TrialRow("trial_005", "e", "error", {"cloth_weight": 0.5}, error="RuntimeError: boom"),
        TrialRow("trial_006", "s", "stopped", {"cloth_weight": 0.7}, step=15),
    ]
    results = SweepResults(rows, ObjectiveSettings())
    for row, front in zip(results.ranked, pareto_mask([results.objectives(r) for r in results.ranked]), strict=True):
        row.pareto = front
    assert [r.name for r in results.ranked] == ["trial_001", "trial_002", "trial_003"]
    assert results.best.name == "trial_001"  # score 100/50 + 3 = 5.0 < 50/50 + 4.5 = 5.5

    out = tmp_path / "sweep"  # written through its URI
    spec = SweepSpec(out=out.as_uri(), data="d", val_data="v", base=load_config("cpu"))
    files = write_results(results, spec)
    names = {"csv": "results.csv", "markdown": "results.md", "plot": "pareto.png", "best_config": "best_config.yaml"}
    assert files == {key: f"{out.as_uri()}/{name}" for key, name in names.items()}
    with open(out / "results.csv", newline="") as handle:
        table = {row["trial"]: row for row in csv.DictReader(handle)}
    assert [table[f"trial_00{i}"]["pareto"] for i in range(1, 5)] == ["1", "1", "0", "0"]
    assert table["trial_005"]["error"] == "RuntimeError: boom" and table["trial_005"]["score"] == ""
    assert "trial_001 ★" in (out / "results.md").read_text()
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert load_config(out / "best_config.yaml").loss.cloth_chamfer.start == 1.0


def test_asha_rungs_fall_before_the_last_step():
    from munet.tune.settings import AshaSettings
    from munet.tune.sweep import asha_scheduler

    assert asha_scheduler(AshaSettings(grace_period=1.0), 3) is None  # grace covers the run
    for steps, grace, factor in ((200, 0.25, 2.0), (3, 0.34, 2.0), (1000, 0.1, 3.0)):
        scheduler = asha_scheduler(AshaSettings(grace, factor), steps)
        rungs = [milestone for milestone, _ in scheduler._brackets[0]._rungs]  # Ray internals
        assert rungs and max(rungs) < steps and min(rungs) == round(grace * steps), (steps, rungs)


def test_trial_overrides_parse_and_reject_bad_input():
    assert parse_trial_overrides(["2:train.lr=1e-3", "2:train.max_failures=0", "5:a.b=1"]) == {
        2: ["train.lr=1e-3", "train.max_failures=0"],
        5: ["a.b=1"],
    }
    for bad in ("train.lr=1", "0:train.lr=1", "x:train.lr=1", "3:train.lr"):
        with pytest.raises(ConfigError):
            parse_trial_overrides([bad])


def test_resume_keeps_the_saved_sweep_and_refuses_a_different_one(tmp_path):
    args = build_parser().parse_args(["--out", str(tmp_path), "--steps", "7", "--trials", "3"])
    spec = resolve_spec(args)
    spec.save()
    assert SweepSpec.load(str(tmp_path)) == spec
    resumed = resolve_spec(build_parser().parse_args(["--out", str(tmp_path), "--resume"]))
    assert resumed == spec and resumed.base.train.steps == 7
    same = build_parser().parse_args(["--out", str(tmp_path), "--resume", "--steps", "7", "--trials", "3"])
    assert resolve_spec(same) == spec
    other = build_parser().parse_args(["--out", str(tmp_path), "--resume", "--steps", "8", "--trials", "3"])
    with pytest.raises(ConfigError, match="base"):
        resolve_spec(other)
    with pytest.raises(FileNotFoundError):
        resolve_spec(Namespace(**{**vars(args), "out": str(tmp_path / "none"), "resume": True}))


def test_relative_data_paths_are_fixed_before_trials_run_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["--out", "sweep", "--data", "shards/train", "--val-data", "s3://b/held"])
    spec = resolve_spec(args)
    assert spec.out == str(tmp_path / "sweep")
    assert spec.data == str(tmp_path / "shards" / "train")  # trials run in Ray's own folders
    assert spec.val_data == "s3://b/held"  # a URI stays as it is


def test_out_uri_is_the_sweep_storage_and_a_bad_one_is_refused(tmp_path, monkeypatch):
    from munet.tune.sweep import build_tuner

    monkeypatch.chdir(tmp_path)
    uri = (tmp_path / "sweeps" / "s1").as_uri()
    spec = resolve_spec(build_parser().parse_args(["--out", uri, "--steps", "7"]))
    assert (spec.out, spec.data, spec.val_data) == (uri, f"{uri}/data", f"{uri}/val_data")
    spec.save()
    assert SweepSpec.load(uri) == spec and (tmp_path / "sweeps" / "s1" / "sweep.yaml").is_file()
    assert resolve_spec(build_parser().parse_args(["--out", uri, "--resume"])) == spec

    tuner = build_tuner(spec)._local_tuner  # Ray internals: what Tune was given
    assert tuner._run_config.storage_path == uri
    assert tuner._run_config.failure_config.max_failures == SweepSettings().max_failures >= 1
    for bad in ("foo://bucket/sweeps", "file://relative/sweeps"):
        with pytest.raises(ConfigError, match="not a usable sweep location"):
            sweep_location(bad)
    assert not any(tmp_path.glob("*:*")), "a URI must never become a local folder named after its scheme"


def test_default_concurrency_follows_the_cluster_as_it_grows(tmp_path, monkeypatch):
    import ray

    from munet.tune.concurrency import ClusterConcurrency, trial_resources
    from munet.tune.sweep import build_tuner

    # a trial: its driver, 2 workers of 1 CPU and a decode task of 1 CPU
    spec = SweepSpec(out=str(tmp_path), data="d", val_data="v", base=load_config("cpu"))
    limiter = build_tuner(spec)._local_tuner._tune_config.search_alg  # Ray internals: what Tune was given
    assert isinstance(limiter, ClusterConcurrency) and limiter.resources == {"CPU": 4.0}
    # Sized when a trial is to start: a cold cluster (a head without CPUs) starts one trial, whose
    # workers make an autoscaler add a node; each node that joins lets more start.
    for cpus, limit in ((0, 1), (8, 3), (24, 7)):
        monkeypatch.setattr(ray, "cluster_resources", lambda cpus=cpus: {"CPU": float(cpus)})
        assert limiter.cluster_limit() == limit
    gpu = SweepSpec(out=str(tmp_path), data="d", val_data="v", base=load_config("cpu", ["train.use_gpu=true"]))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 48.0, "GPU": 4.0})
    assert ClusterConcurrency(limiter.searcher, trial_resources(gpu)).cluster_limit() == 3  # 2 GPUs a trial
    assert build_tuner(spec, max_concurrent=2)._local_tuner._tune_config.max_concurrent_trials == 2


def test_resume_refuses_a_moved_or_copied_sweep_folder(tmp_path):
    import shutil

    original = tmp_path / "original"
    spec = resolve_spec(build_parser().parse_args(["--out", str(original), "--steps", "7"]))
    spec.save()
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    with pytest.raises(ConfigError, match=f"started in {original}.*would write into that folder"):
        resolve_spec(build_parser().parse_args(["--out", str(copy), "--resume"]))
    assert (original / "sweep.yaml").read_text() == (copy / "sweep.yaml").read_text()  # nothing rewritten


# ---------------------------------------------------------------------------------------------
# A real sweep: Ray Tune + Optuna + ASHA around Ray Train, through the command line

TINY = [
    "--steps",
    "3",
    "--set",
    "model.image_size=64",
    "--set",
    "data.image_size=64",
    "--set",
    "model.body_channels=16",
    "--set",
    "model.cloth_channels=16",
    "--set",
    "model.body_blocks=1",
    "--set",
    "model.cloth_blocks=1",
    "--set",
    "data.synthetic_samples=4",
    "--set",
    "data.samples_per_shard=2",
    "--set",
    "data.cloth_points=256",
    "--set",
    "train.batch_size=2",
    "--set",
    "train.workers=1",
    "--set",
    "train.log_every=1",
    "--set",
    "train.checkpoint_every=3",
]
TIMEOUT_S = 1200


def _run_log(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-40:]) if path.exists() else ""


def _statuses(out: Path) -> dict[str, str]:
    """Trial statuses as Tune last saved them ({} before its first save)."""
    from munet.tune.results import collect_results
    from munet.tune.settings import ObjectiveSettings

    try:
        results = collect_results(out.as_uri(), ObjectiveSettings())
    except (ValueError, OSError):  # no experiment state yet, or caught mid-write
        return {}
    return {row.name: row.status for row in results.rows}


def _fingerprint(folder: Path) -> dict[str, float]:
    """Every file under a trial's train/ and eval/ folders with its modification time."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime
        for sub in ("train", "eval")
        for p in (folder / sub).rglob("*")
        if p.is_file()
    }


def _rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "results.csv", newline="") as handle:
        return {row["trial"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Run the sweep, Ctrl-C it once trials 1 and 2 have ended, resume it; return what we saw."""
    root = tmp_path_factory.mktemp("sweep")
    out, settings = root / "out", root / "tiny_sweep.yaml"
    settings.write_text(
        yaml.safe_dump(
            {
                "asha": {"grace_period": 1.0},  # 3-step trials: never stop one early
                "eval": {"samples": 2, "surface_samples": 500, "pictures": 1},
            }
        )
    )
    command = [
        sys.executable,
        "sweeps/tune_mutual.py",
        "--out",
        out.as_uri(),
        "--sweep",
        str(settings),
        "--trials",
        "4",
        "--max-concurrent",
        "2",
        "--num-cpus",
        "6",  # 2 trials × (driver, worker, decode task)
        *TINY,
        "--trial-set",
        "2:train.inject_failure_at_step=1",
        "--trial-set",
        "2:train.max_failures=0",
    ]
    first_log = root / "first.log"
    with open(first_log, "w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + TIMEOUT_S
        while _statuses(out).get("trial_001") != "done" or _statuses(out).get("trial_002") != "error":
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the sweep ended or hung before it could be interrupted:\n{_run_log(first_log)}")
            time.sleep(3)
        ended = {name: _fingerprint(out / "tune" / name) for name in ("trial_001", "trial_002")}
        process.send_signal(signal.SIGINT)
        first_code = process.wait(timeout=300)
    first_rows = _rows(out)

    second_log = root / "second.log"
    with open(second_log, "w") as log:
        second = subprocess.run(
            [sys.executable, "sweeps/tune_mutual.py", "--out", out.as_uri(), "--resume", "--num-cpus", "6"],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT_S,
        )
    assert second.returncode == 0, _run_log(second_log)
    return Namespace(
        out=out, root=root, first_code=first_code, first_rows=first_rows, ended=ended, rows=_rows(out), log=second_log
    )


@pytest.mark.slow
def test_interrupted_sweep_reports_what_it_has(sweep):
    rows = sweep.first_rows
    assert sweep.first_code == 1  # interrupted: "rerun with --resume"
    assert rows["trial_001"]["status"] == "done" and rows["trial_002"]["status"] == "error"
    assert any(row["status"] == "unfinished" for row in rows.values()), rows


@pytest.mark.slow
def test_resume_keeps_finished_trials_and_finishes_the_rest(sweep):
    rows = sweep.rows
    assert sorted(rows) == ["trial_001", "trial_002", "trial_003", "trial_004"]
    for name in ("trial_001", "trial_002"):
        before = sweep.first_rows[name]
        # Same trial, same result, and not a file of its training or evaluation rewritten.
        assert rows[name] == {**before, "pareto": rows[name]["pareto"]}
        assert _fingerprint(sweep.out / "tune" / name) == sweep.ended[name]
    assert sweep.ended["trial_001"], "trial_001 should have written checkpoints and an evaluation"
    assert [rows[n]["status"] for n in sorted(rows)] == ["done", "error", "done", "done"]


@pytest.mark.slow
def test_a_failing_trial_is_recorded_and_the_others_finish(sweep):
    failed = sweep.rows["trial_002"]
    assert "injected failure at step 1" in failed["error"]
    assert failed["pa_mpjpe_mm"] == "" and failed["score"] == ""
    for name in ("trial_001", "trial_003", "trial_004"):
        assert int(sweep.rows[name]["step"]) == 3
        assert (sweep.out / "tune" / name / "eval" / "metrics.json").is_file()
        assert (sweep.out / "tune" / name / "train" / "checkpoint_00000003" / "state.pt").is_file()
    assert not (REPO / "file:").exists(), "the --out URI became a local folder"


@pytest.mark.slow
def test_table_plot_and_best_config(sweep):
    done = {name: row for name, row in sweep.rows.items() if row["status"] == "done"}
    # The score and the front, recomputed from the table's own metrics.
    for row in done.values():
        assert float(row["score"]) == pytest.approx(float(row["pa_mpjpe_mm"]) / 50 + float(row["chamfer_cm"]))
        assert math.isfinite(float(row["chamfer_cm"])) and float(row["pa_mpjpe_mm"]) > 0
    points = {n: (float(r["pa_mpjpe_mm"]), float(r["chamfer_cm"])) for n, r in done.items()}
    for name, (body, cloth) in points.items():
        dominated = any(b <= body and c <= cloth and (b, c) != (body, cloth) for b, c in points.values())
        assert done[name]["pareto"] == str(int(not dominated))
    markdown = (sweep.out / "results.md").read_text()
    assert "injected failure" in markdown and markdown.count("| trial_00") == 4
    assert (sweep.out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    best = min(done, key=lambda name: float(done[name]["score"]))
    config = load_config(sweep.out / "best_config.yaml")
    assert config == load_config(sweep.out / "tune" / best / "config.yaml")
    assert config.loss.cloth_chamfer.start == pytest.approx(float(done[best]["cloth_weight"]))
    assert config.mutual.feedback_weight.end == pytest.approx(float(done[best]["feedback_weight"]))


@pytest.mark.slow
def test_best_config_trains_with_jobs_train(sweep):
    log = sweep.root / "train.log"
    with open(log, "w") as handle:
        run = subprocess.run(
            [
                sys.executable,
                "jobs/train.py",
                "--config",
                str(sweep.out / "best_config.yaml"),
                "--steps",
                "2",
                "--data",
                str(sweep.out / "data"),
                "--out",
                str(sweep.root / "retrain"),
            ],
            cwd=REPO,
            stdout=handle,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT_S,
        )
    assert run.returncode == 0, _run_log(log)
    assert list((sweep.root / "retrain" / "train").glob("checkpoint_*"))
