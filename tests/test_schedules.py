"""Schedules (loss weights, teacher forcing, feedback weight) evaluated at chosen steps."""

from __future__ import annotations

import math

import pytest

from munet.config import MutualConfig, Schedule
from munet.model import MutualState
from munet.schedules import schedule_value


def test_constant_ignores_end_and_steps():
    schedule = Schedule(start=0.3, end=5.0, kind="constant", warmup=10, ramp=10)
    assert [schedule_value(schedule, s) for s in (0, 10, 1000)] == [0.3, 0.3, 0.3]


def test_linear_warmup_then_ramp_then_hold():
    schedule = Schedule(start=0.0, end=1.0, kind="linear", warmup=10, ramp=20)
    values = [schedule_value(schedule, s) for s in (0, 9, 10, 15, 20, 30, 500)]
    assert values == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.5, 1.0, 1.0])


def test_linear_can_decay():
    schedule = Schedule(start=0.5, end=0.0, kind="linear", warmup=0, ramp=200)
    assert schedule_value(schedule, 50) == pytest.approx(0.375)


def test_cosine_is_a_half_cosine_ramp():
    schedule = Schedule(start=2.0, end=0.0, kind="cosine", warmup=4, ramp=8)
    assert schedule_value(schedule, 4) == pytest.approx(2.0)
    assert schedule_value(schedule, 6) == pytest.approx(2.0 - 2.0 * 0.5 * (1 - math.cos(math.pi / 4)))
    assert schedule_value(schedule, 8) == pytest.approx(1.0)
    assert schedule_value(schedule, 12) == pytest.approx(0.0)


def test_step_switches_at_warmup():
    schedule = Schedule(start=1.0, end=0.1, kind="step", warmup=100)
    assert schedule_value(schedule, 99) == 1.0
    assert schedule_value(schedule, 100) == pytest.approx(0.1)


def test_zero_ramp_and_missing_end():
    assert schedule_value(Schedule(start=0.0, end=3.0, kind="linear", warmup=5, ramp=0), 5) == 3.0
    assert schedule_value(Schedule(start=0.7, kind="cosine", warmup=0, ramp=10), 5) == pytest.approx(0.7)


def test_invalid_schedules_and_steps_are_errors():
    with pytest.raises(ValueError, match="unknown schedule kind 'exp'"):
        schedule_value(Schedule(kind="exp"), 0)
    with pytest.raises(ValueError, match="warmup and ramp must be >= 0"):
        schedule_value(Schedule(kind="linear", ramp=-1), 0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        schedule_value(Schedule(), -1)


def test_mutual_state_follows_the_configuration():
    config = MutualConfig(
        teacher_forcing=Schedule(start=1.0, end=0.0, kind="linear", ramp=100),
        feedback_weight=Schedule(start=0.0, end=2.0, kind="linear", warmup=10, ramp=10),
    )
    state = MutualState.at_step(config, 15)
    assert state.teacher_forcing == pytest.approx(0.85)
    assert state.feedback_weight == pytest.approx(1.0)
    inference = MutualState.at_step(config, None)
    assert inference.teacher_forcing == 0.0
    off = MutualState.at_step(MutualConfig(feedback=False, feedback_weight=Schedule(1.0)), 15)
    assert off.feedback_weight == 0.0 and not off.feedback
    with pytest.raises(ValueError, match="teacher_forcing is a probability"):
        MutualState.at_step(MutualConfig(teacher_forcing=Schedule(1.5)), 0)
