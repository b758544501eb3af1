"""The optimisation step guards against NaN/inf losses and accumulates batches into the global
batch; the learning rate warms up, then decays."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from munet.config import load_config
from munet.train.optim import NonFiniteLossError, OptimizerStep, accumulation_steps, build_optimizer


def _setup(steps: int = 10):
    config = load_config(overrides=[f"train.steps={steps}", "train.max_bad_steps=2", "train.lr_warmup=2"])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    optimizer, scheduler = build_optimizer(model, config)
    return config, model, optimizer, scheduler, OptimizerStep(model, optimizer, scheduler, config.train)


def _loss(model, seed: int) -> torch.Tensor:
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed))
    return (model(x) - x.sum(1, keepdim=True)).square().mean()


def test_nan_loss_skips_the_step_then_stops_the_run():
    _, model, _, _, stepper = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    nan_loss = _loss(model, 0) * float("nan")
    assert stepper(nan_loss, 1) is False
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert stepper(_loss(model, 1), 2) is True  # a good step resets the count
    assert not all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    stepper(_loss(model, 0) * float("inf"), 3)
    stepper(_loss(model, 0) * float("nan"), 4)
    with pytest.raises(NonFiniteLossError, match="NaN/inf for 3 consecutive steps"):
        stepper(_loss(model, 0) * float("nan"), 5)
    assert stepper.skipped == 4


def test_learning_rate_warms_up_then_decays():
    config, model, optimizer, scheduler, stepper = _setup(steps=20)
    lrs = []
    for step in range(1, 21):
        lrs.append(optimizer.param_groups[0]["lr"])
        stepper(_loss(model, step), step)
    assert lrs[0] < lrs[1] <= config.train.lr + 1e-12
    assert lrs[-1] < lrs[5] and lrs[-1] >= 0.1 * config.train.lr - 1e-12


def test_accumulated_batches_take_the_step_of_their_union():
    # global batch 32 = 16 per pass × 1 worker × 2 accumulated: the same update as one pass of 32
    config, model, _, _, stepper = _setup()
    reference = copy.deepcopy(model)
    ref_optimizer, ref_scheduler = build_optimizer(reference, config)
    ref_stepper = OptimizerStep(reference, ref_optimizer, ref_scheduler, config.train)
    accumulation = accumulation_steps(dataclasses.replace(config.train, batch_size=16, global_batch_size=32), 1)
    assert accumulation == 2
    for seed in (0, 1):
        stepper.backward(_loss(model, seed), accumulation)
    assert stepper.step(1)
    x = torch.cat([torch.randn(16, 4, generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)])
    assert ref_stepper((reference(x) - x.sum(1, keepdim=True)).square().mean(), 1)
    for ours, theirs in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_global_batch_must_split_evenly_over_the_workers():
    train = dataclasses.replace(load_config().train, batch_size=8, global_batch_size=48)
    assert accumulation_steps(train, 2) == 3
    assert accumulation_steps(dataclasses.replace(train, global_batch_size=0), 4) == 1
    with pytest.raises(ValueError, match=r"48 is not a multiple of train.batch_size 8 × 4 worker\(s\) = 32"):
        accumulation_steps(train, 4)
