"""Frame-major STFT machinery shared by :mod:`~specinv_lightning.functional.stft` and the engine.

Private: complex spectrograms here are *frame-major* ``(batch, frames, n_freqs)``, so that the
FFTs run over the contiguous last dim and the mel products are single GEMMs. The public
:func:`~specinv_lightning.functional.stft`/``istft`` use the usual ``(..., n_freqs, frames)`` layout.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from specinv_lightning.config import MelConfig


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


def make_plan(config: MelConfig, num_frames: int, window: Tensor) -> StftPlan:
    """Build the :class:`StftPlan` for ``num_frames`` frames from a :func:`make_window`."""
    scale = window.square().sum().sqrt() if config.normalized else None
    analysis = window / scale if scale is not None else window
    synthesis = window * scale if scale is not None else window
    inv_envelope = window_envelope(config, num_frames, window).reciprocal()
    return StftPlan(analysis, synthesis, inv_envelope)


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
