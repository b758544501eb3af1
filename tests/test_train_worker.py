"""The Ray Train worker's progress line (the loop itself runs in tests/test_distributed.py)."""

from __future__ import annotations

import logging

from munet.train.worker import _show, duration


def test_duration_reads_as_hours_minutes_seconds():
    assert duration(0) == "0:00:00"
    assert duration(3725.4) == "1:02:05"
    assert duration(float("inf")) == "?"


def test_rank_0_logs_one_line_with_throughput_data_wait_and_eta(caplog):
    metrics = {"step": 50.0, "loss": 0.5, "samples_per_s": 32.0, "data_wait_frac": 0.1}
    with caplog.at_level(logging.INFO, logger="munet.train.worker"):
        _show(metrics, steps=100, samples_per_step=16, rank=0, writer=None)
        _show(metrics, steps=100, samples_per_step=16, rank=1, writer=None)  # other ranks stay quiet
    # 50 steps left × 16 samples at 32 samples/s = 25 s.
    assert caplog.messages == ["step 50/100 loss 0.5000 | 32.0 samples/s | data wait 10% | ETA 0:00:25"]


def test_ray_train_report_lines_stay_off_the_console_unless_verbose(monkeypatch):
    from ray.train.v2._internal.execution import context

    from munet.console import VERBOSE_ENV
    from munet.train.worker import _quiet_ray_train_reports

    reports = logging.getLogger(context.__file__)  # where Ray logs "Reporting training result ..."
    monkeypatch.setattr(reports, "level", logging.NOTSET)
    monkeypatch.setenv(VERBOSE_ENV, "1")
    _quiet_ray_train_reports()
    assert reports.level == logging.NOTSET  # verbose: left as Ray set it
    monkeypatch.setenv(VERBOSE_ENV, "0")
    _quiet_ray_train_reports()
    assert reports.level == logging.WARNING
