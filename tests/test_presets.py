"""Every model-family preset against a reference written from that family's feature code, round
trips through the inverter (normalised mels too), derived fields, and bad statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from specinv_lightning import PRESETS, MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import mel_consistency
from specinv_lightning.presets import DERIVED, SOURCES

librosa = pytest.importorskip("librosa")


def _clip(speech: torch.Tensor, sample_rate: int, seconds: float = 1.5) -> torch.Tensor:
    """The 16 kHz test clip resampled (linearly) to ``sample_rate``, float64, ``(1, samples)``."""
    x = F.interpolate(speech[None, None].double(), scale_factor=sample_rate / 16000, mode="linear")
    return x[0, :, 2000 : 2000 + int(seconds * sample_rate)]


def _fb(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None, **kw) -> torch.Tensor:
    return torch.from_numpy(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
                                                fmax=fmax, **kw)).double()  # fmt: skip


def _bigvgan_reference(x, sr, n_fft, hop, n_mels, fmax) -> torch.Tensor:
    """BigVGAN/HiFi-GAN meldataset.mel_spectrogram: reflect pad (n_fft - hop) / 2, uncentred STFT,
    sqrt(|X|^2 + 1e-9), librosa (slaney) mel, log(clamp(., 1e-5))."""
    y = F.pad(x[:, None], ((n_fft - hop) // 2, (n_fft - hop) // 2), mode="reflect")[:, 0]
    spec = torch.stft(y, n_fft, hop_length=hop, win_length=n_fft,
                      window=torch.hann_window(n_fft, dtype=x.dtype), center=False,
                      return_complex=True)  # fmt: skip
    mag = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-9)
    return torch.log(torch.clamp(_fb(sr, n_fft, n_mels, 0.0, fmax) @ mag, min=1e-5))


def _pwg_reference(x: torch.Tensor) -> torch.Tensor:
    """ParallelWaveGAN logmelfilterbank: librosa.stft (centred, reflect), |X|, mel 80-7600 Hz,
    log10(max(1e-10, .))."""
    spc = np.abs(librosa.stft(x[0].numpy(), n_fft=1024, hop_length=256, win_length=1024,
                              window="hann", pad_mode="reflect"))  # fmt: skip
    mel = np.maximum(1e-10, _fb(22050, 1024, 80, 80.0, 7600.0).numpy() @ spc)
    return torch.from_numpy(np.log10(mel))[None]


def _nemo_reference(x: torch.Tensor, sr: int, n_fft: int, hop: int, fmax) -> torch.Tensor:
    """NeMo FilterbankFeatures: symmetric Hann (periodic=False), centred torch.stft, |X|, librosa
    mel, log(x + 1e-5) (log_zero_guard_type 'add')."""
    window = torch.hann_window(n_fft, periodic=False, dtype=x.dtype)
    spec = torch.stft(x, n_fft, hop_length=hop, win_length=n_fft, window=window, center=True,
                      pad_mode="reflect", return_complex=True)  # fmt: skip
    mag = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1))
    return torch.log(_fb(sr, n_fft, 80, 0.0, fmax) @ mag + 1e-5)


def _styletts2_reference(x: torch.Tensor) -> torch.Tensor:
    """StyleTTS2 meldataset: torchaudio MelSpectrogram(n_mels=80, n_fft=2048, win_length=1200,
    hop_length=300) at 24 kHz (power 2, centred reflect, htk, no norm), (log(1e-5 + mel) + 4) / 4."""
    spec = torch.stft(x, 2048, hop_length=300, win_length=1200,
                      window=torch.hann_window(1200, dtype=x.dtype), center=True,
                      pad_mode="reflect", return_complex=True)  # fmt: skip
    power = spec.abs().square()
    mel = _fb(24000, 2048, 80, 0.0, 12000.0, htk=True, norm=None) @ power
    return (torch.log(1e-5 + mel) - (-4.0)) / 4.0


REFERENCES = {
    "bigvgan-v2-22k-80": lambda x: _bigvgan_reference(x, 22050, 1024, 256, 80, None),
    "bigvgan-v2-24k-100": lambda x: _bigvgan_reference(x, 24000, 1024, 256, 100, 12000.0),
    "bigvgan-v2-44k-128": lambda x: _bigvgan_reference(x, 44100, 1024, 256, 128, None),
    "bigvgan-v2-44k-128-512x": lambda x: _bigvgan_reference(x, 44100, 2048, 512, 128, None),
    "matcha": lambda x: (_bigvgan_reference(x, 22050, 1024, 256, 80, 8000.0) + 5.536622) / 2.116101,
    "parallel-wavegan": _pwg_reference,
    "nemo": lambda x: _nemo_reference(x, 22050, 1024, 256, 8000.0),
    "nemo-44k": lambda x: _nemo_reference(x, 44100, 2048, 512, None),
    "styletts2": _styletts2_reference,
}


@pytest.mark.parametrize("name", list(REFERENCES))
def test_preset_matches_its_family(name: str, speech: torch.Tensor) -> None:
    cfg = MelConfig.from_preset(name)
    x = _clip(speech, cfg.sample_rate)
    ours = MelSpectrogram(cfg).double()(x)
    ref = REFERENCES[name](x)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_every_preset_has_a_source() -> None:
    assert set(SOURCES) == set(PRESETS) - {"bigvgan", "espnet"}  # the two aliases


@pytest.mark.parametrize("name", list(REFERENCES))
def test_round_trip(name: str, speech: torch.Tensor) -> None:
    cfg = MelConfig.from_preset(name)
    x = _clip(speech, cfg.sample_rate).float()
    mel = MelSpectrogram(cfg)(x)
    with torch.no_grad():
        wave = MelInverter(cfg, n_iter=16)(mel, length=x.shape[-1])
    assert float(mel_consistency(wave, mel, cfg)) <= -20.0
    rms = float(wave.square().mean().sqrt() / x.square().mean().sqrt())
    assert 0.5 < rms < 2.0  # the level is undone too (no 16x too loud)


@pytest.mark.parametrize("per_band", [False, True])
def test_normalised_mel_inverts_exactly_like_the_plain_one(per_band: bool, speech) -> None:
    plain = MelConfig.from_preset("hifigan")
    x = _clip(speech, 22050)
    log_mel = MelSpectrogram(plain).double()(x)
    if per_band:
        mean, std = log_mel.mean(-1)[0].tolist(), (log_mel.std(-1)[0] + 0.1).tolist()
    else:
        mean, std = -5.5, 2.1
    normed = MelConfig.from_preset("hifigan", mel_mean=mean, mel_std=std)
    mel = MelSpectrogram(normed).double()(x)
    stats = torch.tensor(mean, dtype=torch.float64)[..., None] if per_band else mean
    scale = torch.tensor(std, dtype=torch.float64)[..., None] if per_band else std
    torch.testing.assert_close(mel, (log_mel - stats) / scale)
    with torch.no_grad():
        a = MelInverter(plain, n_iter=8).double()(log_mel)
        b = MelInverter(normed, n_iter=8).double()(mel)
    torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)
    # gradients stay finite through the normalisation and an 'add' log guard
    guard = MelConfig.from_preset("styletts2")
    y = MelSpectrogram(guard)(_clip(speech, 24000).float()).requires_grad_()
    MelInverter(guard, n_iter=3)(y).square().sum().backward()
    assert torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0


def test_stats_files(tmp_path, speech) -> None:
    mean, std = np.linspace(-6, -4, 80), np.linspace(1, 2, 80)
    np.save(tmp_path / "mean.npy", mean)
    torch.save({"mean": torch.tensor(mean), "std": torch.tensor(std)}, tmp_path / "stats.pt")
    count = 10.0
    np.savez(tmp_path / "feats_stats.npz", count=count, sum=mean * count,
             sum_square=(std**2 + mean**2) * count)  # fmt: skip
    expected = MelConfig.from_preset("hifigan", mel_mean=mean.tolist(), mel_std=std.tolist())
    for mean_file, std_file in (
        (tmp_path / "mean.npy", tmp_path / "stats.pt"),
        (str(tmp_path / "stats.pt"), str(tmp_path / "stats.pt")),
        (tmp_path / "feats_stats.npz", tmp_path / "feats_stats.npz"),
    ):
        cfg = MelConfig.from_preset("hifigan", mel_mean=mean_file, mel_std=std_file)
        assert cfg.mel_mean == pytest.approx(expected.mel_mean)
        assert cfg.mel_std == pytest.approx(expected.mel_std)
    assert MelConfig.from_dict(expected.to_dict()) == expected  # YAML-safe round trip


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"mel_mean": [0.0] * 79}, "mel_mean must be a number or n_mels=80 per-band values"),
        ({"mel_std": 0.0}, "mel_std must be > 0"),
        ({"mel_std": [1.0] * 79 + [-1.0]}, "mel_std must be > 0"),
        ({"mel_mean": float("nan")}, "mel_mean must hold finite numbers"),
        ({"mel_std": [1.0, math.inf] * 40}, "mel_std must hold finite numbers"),
        ({"mel_mean": "/no/such/stats.npy"}, "mel_mean: no stats file"),
        ({"mel_mean": {"a": 1}}, "mel_mean must be a number"),
        ({"log_guard": "max"}, "log_guard must be one of"),
        ({"periodic_window": "yes"}, "periodic_window must be a bool"),
    ],
)
def test_bad_statistics_name_the_field(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MelConfig.from_preset("hifigan", **overrides)


def test_unreadable_stats_file(tmp_path) -> None:
    (tmp_path / "stats.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match=r"mel_std: cannot read stats file .*\.npy, \.npz or \.pt"):
        MelConfig.from_preset("hifigan", mel_std=tmp_path / "stats.txt")


@pytest.mark.parametrize("name", sorted(DERIVED))
def test_derived_manual_pad_follows_its_inputs(name: str) -> None:
    cfg = MelConfig.from_preset(name, sample_rate=44100, n_fft=2048, win_length=2048,
                                hop_length=512, n_mels=128, f_max=None)  # fmt: skip
    assert cfg.manual_pad == (2048 - 512) // 2 == 768
    base = MelConfig.from_preset(name)
    assert MelConfig.from_preset(name, hop_length=128).manual_pad == (base.n_fft - 128) // 2
    assert MelConfig.from_preset(name, n_fft=2048, manual_pad=5).manual_pad == 5  # explicit wins
    # the derived transform is aligned: frames = samples / hop, as the family's code gives
    assert cfg.num_frames(512 * 100) == 100


def test_every_derived_field_follows_its_inputs() -> None:
    base = MelConfig(n_fft=512)
    assert (base.win_length, base.hop_length) == (512, 128)  # win <- n_fft, hop <- win / 4
    assert MelConfig(n_fft=512, win_length=400).hop_length == 100
    assert MelConfig(n_fft=512, hop_length=64).win_length == 512
    assert MelConfig(sample_rate=16000).f_max == 8000.0  # f_max <- sample_rate / 2
    assert MelConfig.from_preset("vocos", sample_rate=16000).f_max == 8000.0
    assert MelConfig.from_preset("bigvgan-v2-44k-128", sample_rate=48000).f_max == 24000.0
    assert MelConfig(compression="db", power=2.0).log_multiplier == 10.0  # <- compression, power
    assert MelConfig(compression="db", power=1.0).log_multiplier == 20.0
    assert MelConfig(compression="db", log_multiplier=7.0).log_multiplier == 7.0
