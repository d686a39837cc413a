"""Mel filterbanks: exact parity with librosa for every (mel_scale, norm) pair, and basic properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specinv_lightning import MelConfig
from specinv_lightning.functional import hz_to_mel, mel_filterbank, mel_to_hz

SCALE_NORM = [("htk", None), ("htk", "slaney"), ("slaney", None), ("slaney", "slaney")]
# (sample_rate, n_fft, n_mels, f_min, f_max)
GEOMETRIES = [
    (22050, 1024, 80, 0.0, 8000.0),  # HiFi-GAN / Tacotron2
    (24000, 1024, 100, 0.0, None),  # Vocos / BigVGAN
    (16000, 400, 128, 0.0, None),  # torchaudio defaults: rank deficient (empty filters)
    (16000, 512, 40, 125.0, 7600.0),  # f_min > 0
    (44100, 2048, 128, 20.0, 16000.0),
    (8000, 256, 24, 300.0, 3400.0),
]


def _rel_max_err(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


@pytest.mark.filterwarnings("ignore:Empty filters detected:UserWarning")
@pytest.mark.parametrize(("mel_scale", "norm"), SCALE_NORM)
@pytest.mark.parametrize(("sr", "n_fft", "n_mels", "f_min", "f_max"), GEOMETRIES)
def test_matches_librosa(mel_scale, norm, sr, n_fft, n_mels, f_min, f_max) -> None:
    librosa = pytest.importorskip("librosa")
    cfg = MelConfig(
        sample_rate=sr, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max,
        mel_scale=mel_scale, norm=norm,
    )  # fmt: skip
    ref = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max,
        htk=mel_scale == "htk", norm=norm, dtype=np.float64,
    )  # fmt: skip
    ours = mel_filterbank(cfg, dtype=torch.float64)
    assert ours.dtype == torch.float64
    assert ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    assert _rel_max_err(ours.numpy(), ref) <= 1e-5
    # the float32 cast is the float64 one rounded
    ours32 = mel_filterbank(cfg, dtype=torch.float32)
    assert ours32.dtype == torch.float32
    assert _rel_max_err(ours32.double().numpy(), ref) <= 1e-6


def test_torchaudio_defaults_are_rank_deficient() -> None:
    fb = mel_filterbank(MelConfig.from_preset("torchaudio"), dtype=torch.float64)
    empty = (fb.sum(dim=1) == 0).sum().item()
    assert empty > 0  # n_fft=400 cannot resolve 128 HTK mels at low frequencies
    assert torch.linalg.matrix_rank(fb).item() < fb.shape[0]


@pytest.mark.parametrize(("mel_scale", "norm"), SCALE_NORM)
def test_filter_shape_properties(mel_scale: str, norm: str | None) -> None:
    cfg = MelConfig(sample_rate=22050, n_fft=1024, n_mels=80, f_max=8000.0, mel_scale=mel_scale,
                    norm=norm)  # fmt: skip
    fb = mel_filterbank(cfg, dtype=torch.float64)
    assert (fb >= 0).all()
    freqs = torch.linspace(0, cfg.sample_rate / 2, cfg.n_freqs, dtype=torch.float64)
    # nothing above f_max, every filter non-empty at this resolution
    assert fb[:, freqs > cfg.f_max].abs().max() == 0
    assert (fb.sum(dim=1) > 0).all()
    # each frequency bin touches at most two filters (banded: F F^T is tridiagonal)
    assert ((fb > 0).sum(dim=0) <= 2).all()
    gram = fb @ fb.T
    off = gram - torch.diag(torch.diagonal(gram))
    off = off - torch.diag(torch.diagonal(gram, 1), 1) - torch.diag(torch.diagonal(gram, -1), -1)
    assert off.abs().max() == 0
    # filter peaks increase with the band index
    peaks = fb.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all()
    if norm is None:
        assert fb.max() <= 1.0 + 1e-12
        assert fb.max() > 0.9


def test_slaney_norm_is_area_normalisation() -> None:
    base = dict(sample_rate=16000, n_fft=2048, n_mels=40, mel_scale="slaney")
    plain = mel_filterbank(MelConfig(norm=None, **base), dtype=torch.float64)
    normed = mel_filterbank(MelConfig(norm="slaney", **base), dtype=torch.float64)
    ratio = normed.sum(dim=1) / plain.sum(dim=1)
    # enorm = 2 / (f_{m+2} - f_m): each triangle of unit height becomes one of unit area (in Hz)
    f_pts = mel_to_hz(
        torch.linspace(0, float(hz_to_mel(torch.tensor(8000.0, dtype=torch.float64), "slaney")),
                       42, dtype=torch.float64),
        "slaney",
    )  # fmt: skip
    expected = 2.0 / (f_pts[2:] - f_pts[:-2])
    torch.testing.assert_close(ratio, expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("mel_scale", ["htk", "slaney"])
def test_hz_mel_round_trip_and_reference_points(mel_scale: str) -> None:
    hz = torch.tensor([0.0, 100.0, 700.0, 999.0, 1000.0, 1001.0, 4000.0, 8000.0, 11025.0],
                      dtype=torch.float64)  # fmt: skip
    torch.testing.assert_close(mel_to_hz(hz_to_mel(hz, mel_scale), mel_scale), hz, rtol=1e-12,
                               atol=1e-9)  # fmt: skip
    mels = hz_to_mel(hz, mel_scale)
    assert (mels[1:] > mels[:-1]).all()
    if mel_scale == "htk":
        # 1000 Hz is ~1000 mel on the HTK scale
        assert (
            abs(float(hz_to_mel(torch.tensor(1000.0, dtype=torch.float64), "htk")) - 1000.0) < 0.1
        )
    else:
        # Slaney: linear 3 bins per 200 Hz below 1 kHz (1 kHz = 15 mel), log above
        torch.testing.assert_close(mels[4], torch.tensor(15.0, dtype=torch.float64))
        torch.testing.assert_close(mels[1], torch.tensor(1.5, dtype=torch.float64))


def test_hz_to_mel_matches_librosa() -> None:
    librosa = pytest.importorskip("librosa")
    hz = np.linspace(0, 12000, 97)
    for htk in (True, False):
        ours = hz_to_mel(torch.from_numpy(hz), "htk" if htk else "slaney").numpy()
        np.testing.assert_allclose(ours, librosa.hz_to_mel(hz, htk=htk), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_device(dtype: torch.dtype) -> None:
    cfg = MelConfig.from_preset("vocos")
    fb = mel_filterbank(cfg, dtype=dtype, device="cpu")
    assert fb.dtype == dtype and fb.device.type == "cpu"
    meta = mel_filterbank(cfg, dtype=dtype, device="meta")
    assert meta.device.type == "meta" and meta.shape == (100, 513)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    cfg = MelConfig.from_preset("hifigan")
    fb = mel_filterbank(cfg, dtype=torch.float64, device="cuda")
    assert fb.is_cuda
    torch.testing.assert_close(fb.cpu(), mel_filterbank(cfg, dtype=torch.float64), rtol=0, atol=0)
