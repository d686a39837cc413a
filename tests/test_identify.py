"""MelConfig.identify: the preset (and normalisation) behind a mel, or "no match"."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf
import torch

from specinv_lightning import PRESETS, MelConfig, MelSpectrogram
from specinv_lightning.invert import main
from specinv_lightning.presets import ALIASES


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    from pathlib import Path

    data, _ = sf.read(Path(__file__).parent / "assets" / "arctic_a0007.wav", dtype="float64")
    return torch.from_numpy(data[4000:30000])


@pytest.mark.parametrize("name", sorted(set(PRESETS) - set(ALIASES)))
def test_recovers_each_preset(name: str, clip: torch.Tensor) -> None:
    expected = MelConfig.from_preset(name)
    mel = MelSpectrogram(expected).double()(clip)
    found = MelConfig.identify(clip, mel)
    assert found.matched and found.config == expected, str(found)
    assert found.hypothesis == "as the preset" and found.error_db < -100


def test_fits_normalisations(clip: torch.Tensor) -> None:
    plain = MelConfig.from_preset("tacotron2")
    log_mel = MelSpectrogram(plain).double()(clip)
    scalar = (log_mel + 4.2) / 1.7  # a data set's statistics
    found = MelConfig.identify(clip, scalar.float())  # float32, as another code base saves it
    assert found.preset == "tacotron2" and found.hypothesis == "scalar normalisation"
    assert found.config.mel_mean == pytest.approx(-4.2, abs=1e-3)
    assert found.config.mel_std == pytest.approx(1.7, rel=1e-3)
    mean, std = log_mel.mean(-1, keepdim=True), log_mel.std(-1, keepdim=True)
    found = MelConfig.identify(clip, (log_mel - mean) / std)  # ESPnet-style global MVN
    assert found.preset == "tacotron2" and found.hypothesis == "per-band normalisation"
    assert found.config.mel_std == pytest.approx(tuple(std.flatten().tolist()), rel=1e-6)
    redone = MelSpectrogram(found.config).double()(clip)
    torch.testing.assert_close(redone, (log_mel - mean) / std)
    log10 = MelSpectrogram(dataclasses.replace(plain, compression="log10")).double()(clip)
    assert MelConfig.identify(clip, log10).config.mel_std == pytest.approx(np.log(10), rel=1e-6)


def test_no_match(clip: torch.Tensor) -> None:
    found = MelConfig.identify(clip, torch.randn(80, 102, dtype=torch.float64))
    assert not found.matched and found.config is None
    assert found.error_db > -10 and "no preset reproduces this mel" in str(found)
    with pytest.raises(ValueError, match="waveform and mel"):
        MelConfig.identify(clip, torch.randn(2, 80, 10))


def test_cli_identify(tmp_path, clip: torch.Tensor, capsys) -> None:
    sf.write(tmp_path / "a.wav", clip.numpy(), 22050)
    np.save(tmp_path / "a.npy", MelSpectrogram("matcha").double()(clip).numpy())
    assert main(["--identify", str(tmp_path / "a.wav"), str(tmp_path / "a.npy")]) == 0
    assert "preset 'matcha'" in capsys.readouterr().out
    np.save(tmp_path / "noise.npy", np.random.default_rng(0).standard_normal((80, 100)))
    assert main(["--identify", str(tmp_path / "a.wav"), str(tmp_path / "noise.npy")]) == 1
    assert "no preset reproduces this mel" in capsys.readouterr().out
    assert main(["--identify", str(tmp_path / "missing.wav"), str(tmp_path / "a.npy")]) == 2
