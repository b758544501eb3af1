"""Configuration: YAML round trip, overrides, presets, and errors for bad keys/values."""

from __future__ import annotations

import pytest

from munet.config import (
    ConfigError,
    MuNetConfig,
    Schedule,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_override,
    save_config,
)


def test_defaults_round_trip_through_yaml(tmp_path):
    config = load_config(overrides=["train.lr=0.001", "mutual.feedback=false", "loss.cloth_p2s=0.25"])
    assert config.train.lr == pytest.approx(1e-3)
    assert config.mutual.feedback is False
    assert config.loss.cloth_p2s == Schedule(start=0.25)
    save_config(config, tmp_path / "run.yaml")
    assert load_config(tmp_path / "run.yaml") == config
    assert load_config() == MuNetConfig()


def test_nested_schedule_override_keeps_other_fields():
    config = load_config(overrides=["mutual.feedback_weight.warmup=7"])
    assert config.mutual.feedback_weight.warmup == 7
    assert config.mutual.feedback_weight.end == MuNetConfig().mutual.feedback_weight.end


def test_unknown_keys_and_wrong_types_are_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"config.train: unknown key\(s\) \['learning_rate'\]"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config.train.steps: expected int"):
        load_config(overrides=["train.steps=many"])
    with pytest.raises(ConfigError, match="must look like section.key=value"):
        parse_override("train.steps")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(bad)


def test_float_overrides_accept_exponents_and_refuse_non_numbers():
    assert load_config("small", ["train.lr=1e-3"]).train.lr == 0.001  # YAML 1.1 reads "1e-3" as text
    with pytest.raises(ConfigError, match="train.lr: expected a number, got 'fast'"):
        load_config("small", ["train.lr=fast"])


def test_model_and_data_image_sizes_must_agree():
    """The network is fed data.image_size crops; model.image_size records that size."""
    with pytest.raises(
        ConfigError,
        match=r"model.image_size \(64\) differs from data.image_size \(128\)"
        r".*Set model.image_size=128",
    ):
        load_config("cpu", ["model.image_size=64"])
    with pytest.raises(ConfigError, match=r"data.image_size \(96\).*model.image_size=96"):
        apply_overrides(load_config("cpu"), ["data.image_size=96"])
    both = load_config("cpu", ["model.image_size=64", "data.image_size=64"])
    assert (both.model.image_size, both.data.image_size) == (64, 64)
    # A stored configuration (a checkpoint's) is read as it is.
    assert config_from_dict({"model": {"image_size": 64}}).model.image_size == 64
