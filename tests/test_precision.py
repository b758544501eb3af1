"""``train.precision``: the forward pass in bfloat16 trains the same float32 network, and settings a
device cannot run are refused with a message."""

from __future__ import annotations

import pytest
import torch

from munet.config import load_config
from munet.model import MuNet
from munet.train.optim import OptimizerStep, build_optimizer
from munet.train.precision import resolve_precision
from munet.train.step import training_step
from tests.samples import SMALL_NETWORK, make_samples, stack


def test_auto_is_bf16_on_gpus_and_fp32_on_the_cpu():
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="must be one of auto, fp32, bf16, fp16, got 'fp8'"):
        resolve_precision("fp8", torch.device("cpu"))


def test_a_bf16_step_trains_the_float32_network_close_to_fp32(anny_body):
    batch = stack(make_samples(anny_body, count=2, cloth_points=256))
    losses, updated = {}, {}
    for precision in ("fp32", "bf16"):
        config = load_config("cpu", [*SMALL_NETWORK, "data.cloth_points=256", f"train.precision={precision}"])
        torch.manual_seed(0)
        model = MuNet(config, anny_body)
        optimizer, scheduler = build_optimizer(model, config)
        loss, logs = training_step(model, batch, 1, config, torch.Generator().manual_seed(0))
        assert loss.dtype == torch.float32 and all(torch.isfinite(torch.as_tensor(v)) for v in logs.values())
        assert OptimizerStep(model, optimizer, scheduler, config.train)(loss, 1)
        assert all(p.dtype == torch.float32 for p in model.parameters())  # checkpoints do not change
        losses[precision] = float(loss)
        updated[precision] = torch.cat([p.detach().flatten() for p in model.parameters()])
    # bf16 keeps 8 bits of mantissa: the loss agrees to about a percent, the step moves the same way
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)
    assert torch.nn.functional.cosine_similarity(updated["bf16"], updated["fp32"], dim=0) > 0.999
