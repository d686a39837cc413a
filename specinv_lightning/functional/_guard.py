"""Mismatched-config guard (private): does a mel look like what the config computes from audio?

A model trained on normalised mels (Matcha-TTS, StyleTTS2, ESPnet) fed to an unnormalised config
inverts to audio many dB too loud, and its scores look fine. Comparing the predicted mel with the
mel the config computes from the target audio catches that at the first validation batch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional.compression import decompress

LEVEL_DB = 6.0  # predicted vs computed level beyond which the config is suspect
SPREAD_RATIO = 2.0  # ... and ratio of the compressed values' spreads


class MelComparison(NamedTuple):
    """Level and range of a mel against a reference mel of the same config (valid frames only)."""

    level_db: float  # linear level of ``mel`` relative to the reference, in dB
    mean: float  # mean of the compressed ``mel``
    std: float  # spread of the compressed ``mel``
    ref_mean: float
    ref_std: float
    rms_diff: float  # RMS of ``mel - reference`` (compressed)


def compare_mels(mel: Tensor, reference: Tensor, config: MelConfig, mask: Tensor) -> MelComparison:
    """Compare compressed mels ``(batch, n_mels, frames)`` on the frames where ``mask``
    ``(batch, 1, frames)`` is true (both cut to the shorter frame count)."""
    n = min(mel.shape[-1], reference.shape[-1], mask.shape[-1])
    m = mask[..., :n].expand(-1, mel.shape[-2], -1)
    a = mel[..., :n].double()[m]
    b = reference[..., :n].double()[m]
    lin_a = decompress(mel[..., :n].double(), config)[m]
    lin_b = decompress(reference[..., :n].double(), config)[m]
    tiny = torch.finfo(torch.float64).tiny
    ratio = float(lin_a.mean().clamp(min=tiny) / lin_b.mean().clamp(min=tiny))
    level = (20.0 / config.power) * math.log10(ratio) if math.isfinite(ratio) else math.inf
    return MelComparison(
        level_db=level,
        mean=float(a.mean()),
        std=float(a.std()),
        ref_mean=float(b.mean()),
        ref_std=float(b.std()),
        rms_diff=float((a - b).square().mean().sqrt()),
    )


def prediction_mismatch(c: MelComparison) -> str | None:
    """A warning when a predicted mel's level or range is far from the computed one, else None."""
    spread = c.std / c.ref_std if c.ref_std > 0 else math.inf
    if abs(c.level_db) <= LEVEL_DB and 1 / SPREAD_RATIO <= spread <= SPREAD_RATIO:
        return None
    scale = c.ref_std / c.std if c.std > 0 else 1.0
    direction = "above" if c.level_db > 0 else "below"
    return (
        f"the predicted mel is about {abs(c.level_db):.0f} dB {direction} what this config"
        f" computes from the target audio (compressed values: mean {c.mean:.2f} vs"
        f" {c.ref_mean:.2f}, spread {c.std:.2f} vs {c.ref_std:.2f}). Is it normalised? Set"
        f" mel_mean/mel_std in the config (this batch suggests mel_mean={c.ref_mean - c.mean * scale:.3g},"
        f" mel_std={scale:.3g}), or check the preset (compression, log base, sample rate). If the"
        " model is untrained yet, this can be noise."
    )


def target_mel_mismatch(c: MelComparison) -> str | None:
    """A warning when a given target mel is not what the config computes from the target audio."""
    relative = c.rms_diff / c.ref_std if c.ref_std > 0 else math.inf
    if abs(c.level_db) <= 0.5 and relative <= 0.05:
        return None
    return (
        f"the target mel differs from what this config computes from the target audio: level"
        f" {c.level_db:+.1f} dB, RMS difference {c.rms_diff:.3g} ({100 * relative:.0f}% of its"
        " spread). The config does not describe the data pipeline's mel (preset, padding,"
        " normalisation?)."
    )
