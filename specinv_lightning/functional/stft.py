"""STFT and inverse STFT exactly as a :class:`MelConfig` describes them (padding, window, scaling).

The usual ``(..., n_freqs, frames)`` layout; the frame-major machinery underneath lives in the
private ``_frames`` module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._frames import (
    istft_frames,
    make_plan,
    stft_frames,
    window_envelope,
)

__all__ = ["make_window", "stft", "istft", "window_envelope", "spectrogram_magnitude"]

_WINDOW_FNS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}


def make_window(
    config: MelConfig, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Analysis window of ``win_length`` (periodic unless ``periodic_window=False``) zero-padded
    (centred) to ``n_fft`` samples."""
    if config.window == "rectangular":
        win = torch.ones(config.win_length, dtype=torch.float64)
    else:
        win = _WINDOW_FNS[config.window](
            config.win_length, periodic=config.periodic_window, dtype=torch.float64
        )
    left = (config.n_fft - config.win_length) // 2
    win = F.pad(win, (left, config.n_fft - config.win_length - left))
    return win.to(dtype=dtype, device=device)


def stft(waveform: Tensor, config: MelConfig, window: Tensor | None = None) -> Tensor:
    """Complex STFT ``(..., n_fft // 2 + 1, frames)`` of a real ``(..., samples)`` waveform.

    Applies ``manual_pad`` (reflect), the config's centre padding, the window, and the
    torchaudio-style ``normalized`` scaling; equal to ``torch.stft`` with the same settings.

    Args:
        waveform: Real tensor ``(..., samples)``.
        config: The transform.
        window: Optional precomputed :func:`make_window` (same dtype/device as ``waveform``).
    """
    if window is None:
        window = make_window(config, waveform.dtype, waveform.device)
    if config.normalized:
        window = window / window.square().sum().sqrt()
    shape = waveform.shape
    spec = stft_frames(waveform.reshape(-1, shape[-1]), config, window)
    return spec.reshape(*shape[:-1], *spec.shape[-2:]).transpose(-1, -2)


def istft(
    spec: Tensor,
    config: MelConfig,
    length: int | None = None,
    window: Tensor | None = None,
) -> Tensor:
    """Least-squares inverse of :func:`stft`: complex ``(..., n_freqs, frames)`` -> ``(..., samples)``.

    Weighted overlap-add divided by the window envelope, then the padding of the forward transform
    is removed. Unlike ``torch.istft`` it also works for uncentred transforms (HiFi-GAN) whose
    envelope vanishes at the edges.

    Args:
        spec: Complex spectrogram.
        config: The transform.
        length: Output length; defaults to :meth:`MelConfig.num_samples` of the frame count.
        window: Optional precomputed :func:`make_window` (real dtype of ``spec``).
    """
    if window is None:
        window = make_window(config, spec.real.dtype, spec.device)
    n_freqs, num_frames = spec.shape[-2:]
    plan = make_plan(config, num_frames, window)
    if length is None:
        length = config.num_samples(num_frames)
    frames_major = spec.reshape(-1, n_freqs, num_frames).transpose(-1, -2)
    signal = istft_frames(frames_major, config, plan, length)
    return signal.reshape(*spec.shape[:-2], length)


def spectrogram_magnitude(spec: Tensor, power: float = 1.0, eps: float = 0.0) -> Tensor:
    """``(re^2 + im^2 + eps) ** (power / 2)`` of a complex spectrogram (gradient-safe at 0 when eps=0)."""
    if power == 2.0:
        return spec.real.square() + spec.imag.square() + eps
    if eps > 0:
        return (spec.real.square() + spec.imag.square() + eps).sqrt()
    return spec.abs()
