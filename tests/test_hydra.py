"""Hydra/OmegaConf users: configs from any mapping (DictConfig, nested, ListConfig statistics)."""

from __future__ import annotations

from types import MappingProxyType

import pytest
import torch

from specinv_lightning import (
    InversionCallback,
    MelConfig,
    MelConsistency,
    MelInverter,
    WaveformReconstructionLoss,
)

hydra_utils = pytest.importorskip("hydra.utils")
omegaconf = pytest.importorskip("omegaconf")

MEAN = [-5.0 + 0.01 * k for k in range(80)]
TARGETS = {
    "callback": {
        "_target_": "specinv_lightning.InversionCallback",
        "config": {"preset": "hifigan", "sample_rate": 16000, "mel_mean": MEAN, "mel_std": 2.0},
        "num_samples": 2,
        "inverter_kwargs": {"init": "zeros"},
    },
    "loss": {
        "_target_": "specinv_lightning.WaveformReconstructionLoss",
        "config": {"preset": "matcha"},
        "n_iter": 4,
    },
    "metric": {"_target_": "specinv_lightning.MelConsistency", "config": {"preset": "nemo"}},
    "callback_with_inverter": {
        "_target_": "specinv_lightning.InversionCallback",
        "inverter": {
            "_target_": "specinv_lightning.MelInverter",
            "config": {"preset": "styletts2"},
            "n_iter": 8,
        },
    },
}


@pytest.mark.parametrize("flavour", ["plain", "omegaconf"])
@pytest.mark.parametrize("name", list(TARGETS))
def test_instantiate(name: str, flavour: str) -> None:
    spec = TARGETS[name]
    if flavour == "omegaconf":
        spec = omegaconf.OmegaConf.create(spec)
    obj = hydra_utils.instantiate(spec)
    if name == "callback":
        assert isinstance(obj, InversionCallback)
        assert obj.config == MelConfig.from_preset(
            "hifigan", sample_rate=16000, mel_mean=MEAN, mel_std=2.0
        )
        assert obj.inverter.init == "zeros"
    elif name == "loss":
        assert isinstance(obj, WaveformReconstructionLoss)
        assert obj.config == MelConfig.from_preset("matcha") and obj.inverter.n_iter == 4
    elif name == "metric":
        assert isinstance(obj, MelConsistency)
    else:
        assert isinstance(obj.inverter, MelInverter) and obj.inverter.n_iter == 8
        assert obj.config == MelConfig.from_preset("styletts2")


def test_other_mappings() -> None:
    expected = MelConfig.from_preset("hifigan", n_mels=64)
    assert MelInverter(MappingProxyType({"preset": "hifigan", "n_mels": 64})).config == expected
    nested = omegaconf.OmegaConf.create({"model": {"mel": {"preset": "hifigan", "n_mels": 64}}})
    inverter = MelInverter(nested.model.mel, n_iter=2)
    assert inverter.config == expected
    assert inverter(torch.zeros(1, 64, 10) - 5.0).shape == (1, expected.num_samples(10))
