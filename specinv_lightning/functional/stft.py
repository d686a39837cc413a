"""STFT and inverse STFT exactly as a :class:`MelConfig` describes them (padding, window, scaling)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from specinv_lightning.config import MelConfig

__all__ = ["make_window", "stft", "istft", "window_envelope", "spectrogram_magnitude"]

_WINDOW_FNS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
}


def make_window(
    config: MelConfig, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """Periodic analysis window of ``win_length`` zero-padded (centred) to ``n_fft`` samples."""
    if config.window == "rectangular":
        win = torch.ones(config.win_length, dtype=torch.float64)
    else:
        win = _WINDOW_FNS[config.window](config.win_length, periodic=True, dtype=torch.float64)
    left = (config.n_fft - config.win_length) // 2
    win = F.pad(win, (left, config.n_fft - config.win_length - left))
    return win.to(dtype=dtype, device=device)


def _scale(window: Tensor) -> Tensor:
    return window.square().sum().sqrt()


def stft(waveform: Tensor, config: MelConfig, window: Tensor | None = None) -> Tensor:
    """Complex STFT ``(..., n_fft // 2 + 1, frames)`` of a real ``(..., samples)`` waveform.

    Applies ``manual_pad`` (reflect), then ``torch.stft`` with the config's centre padding, and the
    torchaudio-style ``normalized`` scaling.

    Args:
        waveform: Real tensor ``(..., samples)``.
        config: The transform.
        window: Optional precomputed :func:`make_window` (same dtype/device as ``waveform``).
    """
    if window is None:
        window = make_window(config, waveform.dtype, waveform.device)
    shape = waveform.shape
    x = waveform.reshape(-1, shape[-1])
    if config.manual_pad:
        x = F.pad(x.unsqueeze(1), (config.manual_pad, config.manual_pad), mode="reflect").squeeze(1)
    spec = torch.stft(
        x,
        n_fft=config.n_fft,
        hop_length=config.hop_length,
        win_length=config.n_fft,
        window=window,
        center=config.center,
        pad_mode=config.pad_mode,
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    if config.normalized:
        spec = spec / _scale(window)
    return spec.reshape(*shape[:-1], *spec.shape[-2:])


def window_envelope(config: MelConfig, num_frames: int, window: Tensor) -> Tensor:
    """Overlap-added squared window, ``(n_fft + hop * (num_frames - 1),)``, for the iSTFT division."""
    sq = window.square().unsqueeze(-1).expand(-1, num_frames).unsqueeze(0)
    length = config.n_fft + config.hop_length * (num_frames - 1)
    env = F.fold(
        sq, output_size=(1, length), kernel_size=(1, config.n_fft), stride=(1, config.hop_length)
    )
    env = env.reshape(length)
    # positions no window reaches (edges of an uncentred STFT) are left at zero instead of blowing up
    return torch.where(env > 1e-11, env, torch.ones_like(env))


def istft(
    spec: Tensor,
    config: MelConfig,
    length: int | None = None,
    window: Tensor | None = None,
    envelope: Tensor | None = None,
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
        envelope: Optional precomputed :func:`window_envelope` for this number of frames.
    """
    real_dtype = spec.real.dtype
    if window is None:
        window = make_window(config, real_dtype, spec.device)
    n_freqs, num_frames = spec.shape[-2:]
    batch_shape = spec.shape[:-2]
    if config.normalized:
        spec = spec * _scale(window)
    frames = torch.fft.irfft(spec.reshape(-1, n_freqs, num_frames), n=config.n_fft, dim=-2)
    frames = frames * window[:, None]
    full = config.n_fft + config.hop_length * (num_frames - 1)
    signal = F.fold(
        frames, output_size=(1, full), kernel_size=(1, config.n_fft), stride=(1, config.hop_length)
    )
    if envelope is None:
        envelope = window_envelope(config, num_frames, window)
    signal = signal.reshape(-1, full) / envelope
    start = config.manual_pad + (config.n_fft // 2 if config.center else 0)
    if length is None:
        length = config.num_samples(num_frames)
    signal = signal[:, start : start + length]
    if signal.shape[-1] < length:
        signal = F.pad(signal, (0, length - signal.shape[-1]))
    return signal.reshape(*batch_shape, length)


def spectrogram_magnitude(spec: Tensor, power: float = 1.0, eps: float = 0.0) -> Tensor:
    """``(re^2 + im^2 + eps) ** (power / 2)`` of a complex spectrogram (gradient-safe at 0 when eps=0)."""
    if power == 2.0:
        return spec.real.square() + spec.imag.square() + eps
    if eps > 0:
        return (spec.real.square() + spec.imag.square() + eps).sqrt()
    return spec.abs()
