"""STFT and inverse STFT exactly as a :class:`MelConfig` describes them (padding, window, scaling).

Internally everything is *frame-major*: complex ``(batch, frames, n_freqs)`` tensors, so that the
FFTs run over the contiguous last dim and the mel products are single GEMMs. The public
:func:`stft`/:func:`istft` use the usual ``(..., n_freqs, frames)`` layout (as views).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from specinv_lightning.config import MelConfig

__all__ = [
    "make_window",
    "stft",
    "istft",
    "window_envelope",
    "spectrogram_magnitude",
    "StftPlan",
    "make_plan",
    "stft_frames",
    "istft_frames",
    "supports_inplace_projection",
    "project_consistent_",
]

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


def window_envelope(config: MelConfig, num_frames: int, window: Tensor) -> Tensor:
    """Overlap-added squared window, ``(n_fft + hop * (num_frames - 1),)``, for the iSTFT division.

    Positions no window reaches (edges of an uncentred STFT) hold 1 instead of 0, so that they are
    left at zero instead of blowing up.
    """
    env = _overlap_add(window.square().expand(1, num_frames, -1), config.hop_length).reshape(-1)
    return torch.where(env > 1e-11, env, torch.ones_like(env))


class StftPlan(NamedTuple):
    """Everything one STFT/iSTFT pair needs that does not change between calls (or iterations).

    ``analysis`` and ``synthesis`` are the windows with the ``normalized`` scaling folded in;
    ``inv_envelope`` is the reciprocal of :func:`window_envelope`.
    """

    analysis: Tensor
    synthesis: Tensor
    inv_envelope: Tensor
    num_frames: int


def make_plan(config: MelConfig, num_frames: int, window: Tensor) -> StftPlan:
    """Build the :class:`StftPlan` for ``num_frames`` frames from a :func:`make_window`."""
    scale = window.square().sum().sqrt() if config.normalized else None
    analysis = window / scale if scale is not None else window
    synthesis = window * scale if scale is not None else window
    inv_envelope = window_envelope(config, num_frames, window).reciprocal()
    return StftPlan(analysis, synthesis, inv_envelope, num_frames)


def _overlap_add(frames: Tensor, hop: int) -> Tensor:
    """Sum ``(batch, frames, n)`` frames placed ``hop`` apart -> ``(batch, n + hop * (frames - 1))``.

    A loop over the ``ceil(n / hop)`` overlapping frame segments (4 for a 75 % overlap), each a single
    strided add over all frames: no ``col2im``, no Python loop over frames.
    """
    batch, num_frames, n = frames.shape
    segments = -(-n // hop)
    if segments * hop != n:
        frames = F.pad(frames, (0, segments * hop - n))
    parts = frames.reshape(batch, num_frames, segments, hop)
    # first segment copied in (no zero-fill of the whole output), the others added in place
    tail = frames.new_zeros(batch, segments - 1, hop)
    out = torch.cat([parts[:, :, 0], tail], dim=1)
    for r in range(1, segments):
        out[:, r : r + num_frames] += parts[:, :, r]
    return out.reshape(batch, -1)[:, : n + hop * (num_frames - 1)]


def _pad_signal(x: Tensor, config: MelConfig) -> Tensor:
    """Apply ``manual_pad`` (reflect) and ``center`` padding to a ``(batch, samples)`` signal."""
    if config.manual_pad:
        x = F.pad(x.unsqueeze(1), (config.manual_pad, config.manual_pad), mode="reflect").squeeze(1)
    if config.center:
        half = config.n_fft // 2
        x = F.pad(x.unsqueeze(1), (half, half), mode=config.pad_mode).squeeze(1)
    return x


def stft_frames(x: Tensor, config: MelConfig, analysis: Tensor) -> Tensor:
    """Frame-major complex STFT ``(batch, frames, n_freqs)`` of a ``(batch, samples)`` signal."""
    frames = _pad_signal(x, config).unfold(-1, config.n_fft, config.hop_length)
    return torch.fft.rfft(frames * analysis, dim=-1)


def istft_frames(spec: Tensor, config: MelConfig, plan: StftPlan, length: int) -> Tensor:
    """Inverse of :func:`stft_frames`: frame-major complex ``(batch, frames, n_freqs)`` -> ``(batch, length)``."""
    frames = torch.fft.irfft(spec, n=config.n_fft, dim=-1) * plan.synthesis
    signal = _overlap_add(frames, config.hop_length) * plan.inv_envelope
    start = config.manual_pad + (config.n_fft // 2 if config.center else 0)
    signal = signal[:, start : start + length]
    if signal.shape[-1] < length:
        signal = F.pad(signal, (0, length - signal.shape[-1]))
    return signal


def supports_inplace_projection(config: MelConfig, num_frames: int) -> bool:
    """Whether :func:`project_consistent_` handles this config's padding for ``num_frames`` frames.

    Centred STFTs (even ``n_fft``) with any ``pad_mode`` and uncentred ones with or without
    ``manual_pad``; not the combination of centring and ``manual_pad``, nor signals too short to pad.
    """
    if config.center and (config.manual_pad or config.n_fft % 2):
        return False
    pad = config.n_fft // 2 if config.center else config.manual_pad
    return pad == 0 or config.num_samples(num_frames) > pad


def _pad_in_place(signal: Tensor, pad: int, natural: int, mode: str) -> None:
    """Overwrite the ``pad`` samples on each side of ``signal[:, pad : pad + natural]`` as
    ``F.pad(..., mode=mode)`` would fill them."""
    if pad == 0:
        return
    end = pad + natural
    if mode == "reflect":
        signal[:, :pad] = signal[:, pad + 1 : 2 * pad + 1].flip(-1)
        signal[:, end:] = signal[:, natural - 1 : end - 1].flip(-1)
    elif mode == "constant":
        signal[:, :pad] = 0.0
        signal[:, end:] = 0.0
    elif mode == "replicate":
        signal[:, :pad] = signal[:, pad : pad + 1]
        signal[:, end:] = signal[:, end - 1 : end]
    else:  # circular
        signal[:, :pad] = signal[:, natural:end]
        signal[:, end:] = signal[:, pad : 2 * pad]


def project_consistent_(
    spec: Tensor,
    config: MelConfig,
    plan: StftPlan,
    out: Tensor,
    signal: Tensor,
) -> Tensor:
    """``out <- STFT(iSTFT(spec))`` (the projection onto consistent spectrograms) without allocating.

    The no-autograd fast path of phase retrieval: the same arithmetic as
    ``stft_frames(istft_frames(spec, ...), ...)``, written into preallocated buffers, with the
    synthesis window folded into the overlap-add and the padding of the forward transform filled
    in place. Requires :func:`supports_inplace_projection`.

    Args:
        spec: Frame-major complex ``(batch, frames, n_freqs)``.
        config: The transform.
        plan: :func:`make_plan` for this number of frames.
        out: Complex ``(batch, frames, n_freqs)`` receiving the result (not ``spec``).
        signal: Real scratch ``(batch, ceil(n_fft / hop) * hop + hop * (frames - 1))``.
    """
    batch, num_frames, _ = spec.shape
    n_fft, hop = config.n_fft, config.hop_length
    segments = -(-n_fft // hop)
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)  # (out= would cost an extra copy here)
    # overlap-add of the windowed frames: one strided multiply-add per frame segment
    rows = signal.view(batch, num_frames + segments - 1, hop)
    torch.mul(frames[:, :, :hop], plan.synthesis[:hop], out=rows[:, :num_frames])
    rows[:, num_frames:].zero_()
    for r in range(1, segments):
        lo, hi = r * hop, min(n_fft, (r + 1) * hop)
        rows[:, r : r + num_frames, : hi - lo].addcmul_(frames[:, :, lo:hi], plan.synthesis[lo:hi])
    total = n_fft + hop * (num_frames - 1)
    used = signal[:, :total]
    used.mul_(plan.inv_envelope)
    pad = n_fft // 2 if config.center else config.manual_pad
    mode = config.pad_mode if config.center else "reflect"
    _pad_in_place(used, pad, config.num_samples(num_frames), mode)
    torch.mul(used.unfold(-1, n_fft, hop), plan.analysis, out=frames)
    return torch.fft.rfft(frames, dim=-1, out=out)


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
    if window is None:
        window = make_window(config, spec.real.dtype, spec.device)
    n_freqs, num_frames = spec.shape[-2:]
    plan = make_plan(config, num_frames, window)
    if envelope is not None:
        plan = plan._replace(inv_envelope=envelope.reciprocal())
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
