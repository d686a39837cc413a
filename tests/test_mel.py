"""MelSpectrogram: parity with librosa, with HiFi-GAN's and Vocos' own feature code, shapes, dtypes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from specinv_lightning import MelConfig, MelSpectrogram
from specinv_lightning.mel import as_config


def _rel_max_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.double(), ref.double()
    return float((ours - ref).abs().max() / ref.abs().max())


def _librosa_fb(cfg: MelConfig, librosa) -> torch.Tensor:
    return torch.from_numpy(
        librosa.filters.mel(
            sr=cfg.sample_rate,
            n_fft=cfg.n_fft,
            n_mels=cfg.n_mels,
            fmin=cfg.f_min,
            fmax=cfg.f_max,
            htk=cfg.mel_scale == "htk",
            norm=cfg.norm,
            dtype=np.float64,
        )  # fmt: skip
    )


@pytest.mark.parametrize("power", [2.0, 1.0])
def test_librosa_preset_matches_librosa(power: float, speech, speech_sr) -> None:
    librosa = pytest.importorskip("librosa")
    y = speech[:24000].double().numpy()
    ref = librosa.feature.melspectrogram(y=y, sr=speech_sr, power=power)  # all defaults
    cfg = MelConfig.from_preset("librosa", sample_rate=speech_sr, power=power)
    ours = MelSpectrogram(cfg)(torch.from_numpy(y))
    assert ours.shape == ref.shape and ours.dtype == torch.float64
    assert _rel_max_err(ours, torch.from_numpy(ref)) <= 1e-5


def _hifigan_mel_spectrogram(y, n_fft, num_mels, sampling_rate, hop_size, win_size, fmin, fmax,
                             librosa):  # fmt: skip
    """jik876/hifi-gan ``meldataset.mel_spectrogram`` (center=False), line for line."""
    mel = librosa.filters.mel(sr=sampling_rate, n_fft=n_fft, n_mels=num_mels, fmin=fmin, fmax=fmax)
    mel_basis = torch.from_numpy(mel).to(y.dtype)
    hann_window = torch.hann_window(win_size, dtype=y.dtype)
    pad = int((n_fft - hop_size) / 2)
    y = torch.nn.functional.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(y, n_fft, hop_length=hop_size, win_length=win_size, window=hann_window,
                      center=False, pad_mode="reflect", normalized=False, onesided=True,
                      return_complex=True)  # fmt: skip
    spec = torch.view_as_real(spec)
    spec = torch.sqrt(spec.pow(2).sum(-1) + (1e-9))
    spec = torch.matmul(mel_basis, spec)
    return torch.log(torch.clamp(spec, min=1e-5) * 1)  # spectral_normalize_torch


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sample_rate", [22050, 16000])
def test_hifigan_preset_matches_hifigan(dtype: torch.dtype, sample_rate: int, speech) -> None:
    librosa = pytest.importorskip("librosa")
    y = speech[:16000].to(dtype).reshape(2, 8000)
    y[1, 4000:] = 0.0  # digital silence reaches the log floor
    f_max = 8000.0
    ref = _hifigan_mel_spectrogram(y, 1024, 80, sample_rate, 256, 1024, 0, f_max, librosa)
    cfg = MelConfig.from_preset("hifigan", sample_rate=sample_rate)
    ours = MelSpectrogram(cfg)(y)
    assert ours.shape == ref.shape == (2, 80, 8000 // 256)
    assert ours.dtype == dtype
    # HiFi-GAN's filterbank is librosa's float32 one: ~6e-8 relative rounding even in float64
    tol = 1e-4 if dtype == torch.float32 else 1e-6
    assert float((ours - ref).abs().max()) <= tol  # log domain: absolute error
    assert float(ours.min()) == pytest.approx(math.log(1e-5), rel=1e-6)


def _vocos_features(audio: torch.Tensor, librosa) -> torch.Tensor:
    """gemelo-ai/vocos ``MelSpectrogramFeatures`` (torchaudio MelSpectrogram(power=1, center) +
    ``safe_log``), written without torchaudio."""
    window = torch.hann_window(1024, dtype=audio.dtype)
    spec = torch.stft(audio, 1024, 256, 1024, window, center=True, pad_mode="reflect",
                      return_complex=True).abs()  # fmt: skip
    fb = torch.from_numpy(librosa.filters.mel(sr=24000, n_fft=1024, n_mels=100, htk=True,
                                              norm=None, dtype=np.float64)).to(audio.dtype)  # fmt: skip
    return torch.log(torch.clip(fb @ spec, min=1e-7))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vocos_preset_matches_vocos(dtype: torch.dtype, speech) -> None:
    librosa = pytest.importorskip("librosa")
    y = speech[:24000].to(dtype).reshape(1, 2, 12000)
    ref = _vocos_features(y.reshape(2, 12000), librosa).reshape(1, 2, 100, -1)
    ours = MelSpectrogram("vocos")(y)
    assert ours.shape == ref.shape == (1, 2, 100, 1 + 12000 // 256)
    tol = 1e-4 if dtype == torch.float32 else 1e-9
    assert float((ours - ref).abs().max()) <= tol


def test_tacotron2_preset_matches_reference(speech) -> None:
    """NVIDIA/tacotron2 TacotronSTFT.mel_spectrogram: reflect-centred STFT magnitude, librosa
    slaney mel (8 kHz), log(clamp(x, 1e-5))."""
    librosa = pytest.importorskip("librosa")
    cfg = MelConfig.from_preset("tacotron2")
    y = speech[:16000].double()
    window = torch.hann_window(1024, dtype=torch.float64)
    mag = torch.stft(y, 1024, 256, 1024, window, center=True, pad_mode="reflect",
                     return_complex=True).abs()  # fmt: skip
    ref = torch.log(torch.clamp(_librosa_fb(cfg, librosa) @ mag, min=1e-5))
    torch.testing.assert_close(MelSpectrogram(cfg)(y), ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["hifigan", "vocos", "torchaudio", "librosa"])
def test_linear_and_compressed(name: str, speech) -> None:
    module = MelSpectrogram(name)
    y = speech[:8000].double()
    lin = module.linear(y)
    assert (lin >= 0).all()
    cfg = module.config
    if cfg.compression == "none":
        torch.testing.assert_close(module(y), lin)
    else:
        expected = cfg.log_multiplier * torch.log(lin.clamp(min=cfg.log_floor))
        if cfg.compression != "log":
            expected = expected / math.log(10.0)
        torch.testing.assert_close(module(y), expected)


def test_batch_dims_are_independent(speech) -> None:
    module = MelSpectrogram("hifigan")
    y = speech[:12000].reshape(2, 3, 2000)
    out = module(y)
    assert out.shape == (2, 3, 80, 2000 // 256)
    torch.testing.assert_close(out[1, 2], module(y[1, 2]))


def test_config_forms_and_buffers() -> None:
    cfg = MelConfig.from_preset("vocos")
    for form in (cfg, "vocos", {"preset": "vocos"}, cfg.to_dict()):
        assert MelSpectrogram(form).config == cfg
        assert as_config(form) == cfg
    with pytest.raises(ValueError, match="config"):
        MelSpectrogram(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="preset"):
        MelSpectrogram("not-a-preset")
    module = MelSpectrogram(cfg)
    assert module.state_dict() == {}  # caches are rebuilt from the config, not checkpointed
    assert {name for name, _ in module.named_buffers()} >= {"fb", "window"}
    assert module.to(torch.float32).fb.shape == (100, 513)


def test_inference_mode_and_autograd(speech) -> None:
    module = MelSpectrogram("hifigan")
    y = speech[:4000]
    with torch.inference_mode():
        ref = module(y)
    x = y.clone().requires_grad_(True)
    out = module(x)
    torch.testing.assert_close(out.detach(), ref)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("waveform", "match"),
    [
        (torch.zeros(100), "samples"),  # shorter than one frame
        (torch.zeros(2, 0), "waveform"),
        (torch.full((4000,), math.nan), "NaN"),
        (torch.zeros(4000, dtype=torch.int16), "floating"),
        (torch.zeros(4000, dtype=torch.complex64), "real"),
        ([0.0] * 4000, "Tensor"),
    ],
)
def test_bad_waveforms(waveform, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MelSpectrogram("hifigan")(waveform)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(speech) -> None:
    module = MelSpectrogram("hifigan")
    y = speech[:8000].double()
    torch.testing.assert_close(module.cuda()(y.cuda()).cpu(), MelSpectrogram("hifigan")(y))
