"""Mel filterbanks, identical to ``librosa.filters.mel`` and ``torchaudio.functional.melscale_fbanks``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig

__all__ = ["hz_to_mel", "mel_to_hz", "mel_filterbank"]

_F_SP = 200.0 / 3  # slaney: Hz per mel below 1 kHz
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(freq: Tensor, mel_scale: str = "htk") -> Tensor:
    """Convert frequencies in Hz to mels (``"htk"`` or ``"slaney"`` scale)."""
    if mel_scale == "htk":
        return 2595.0 * torch.log10(1.0 + freq / 700.0)
    mels = freq / _F_SP
    log_part = _MIN_LOG_MEL + torch.log(freq.clamp(min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(freq >= _MIN_LOG_HZ, log_part, mels)


def mel_to_hz(mels: Tensor, mel_scale: str = "htk") -> Tensor:
    """Convert mels back to Hz (inverse of :func:`hz_to_mel`)."""
    if mel_scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    freqs = _F_SP * mels
    log_part = _MIN_LOG_HZ * torch.exp(_LOGSTEP * (mels - _MIN_LOG_MEL))
    return torch.where(mels >= _MIN_LOG_MEL, log_part, freqs)


def mel_filterbank(
    config: MelConfig,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Triangular mel filterbank of shape ``(n_mels, n_fft // 2 + 1)``.

    Computed in float64 and cast, so it equals ``librosa.filters.mel(..., htk=mel_scale == "htk",
    norm=norm)`` and ``torchaudio.functional.melscale_fbanks(...).T`` to float precision.
    Filters that fall between two FFT bins (too many mels for ``n_fft``) are all-zero rows; the
    inversion handles such rank-deficient filterbanks.

    Args:
        config: The mel transform.
        dtype: Output dtype.
        device: Output device.

    Example:
        >>> fb = mel_filterbank(MelConfig.from_preset("hifigan"))
        >>> tuple(fb.shape)
        (80, 513)
    """
    f64 = torch.float64
    all_freqs = torch.linspace(0.0, config.sample_rate / 2, config.n_freqs, dtype=f64)
    m_min = hz_to_mel(torch.tensor(config.f_min, dtype=f64), config.mel_scale)
    m_max = hz_to_mel(torch.tensor(config.f_max, dtype=f64), config.mel_scale)
    f_pts = mel_to_hz(
        torch.linspace(float(m_min), float(m_max), config.n_mels + 2, dtype=f64), config.mel_scale
    )
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[:, None] - all_freqs[None, :]  # (n_mels + 2, n_freqs)
    down = -slopes[:-2] / f_diff[:-1, None]
    up = slopes[2:] / f_diff[1:, None]
    fb = torch.clamp(torch.minimum(down, up), min=0.0)
    if config.norm == "slaney":
        enorm = 2.0 / (f_pts[2 : config.n_mels + 2] - f_pts[: config.n_mels])
        fb = fb * enorm[:, None]
    return fb.to(dtype=dtype, device=device)
