"""Dynamic-range compression of mels (log, log10, dB) and its exact inverse."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import _skip_value_checks

__all__ = [
    "compress",
    "decompress",
    "decompress_checked",
    "compressed_floor",
    "clamp_to_floor",
    "clamp_to_level",
]


def _stats(config: MelConfig, like: Tensor) -> tuple[Tensor | float, Tensor | float]:
    """``(mean, std)`` of the normalisation, per band as ``(n_mels, 1)`` tensors when per band."""

    def as_value(value: float | tuple[float, ...] | None, default: float) -> Tensor | float:
        if value is None:
            return default
        if isinstance(value, tuple):
            return torch.tensor(value, dtype=like.dtype, device=like.device)[:, None]
        return float(value)

    return as_value(config.mel_mean, 0.0), as_value(config.mel_std, 1.0)


def compress(mel: Tensor, config: MelConfig) -> Tensor:
    """Apply the config's compression and normalisation to a linear mel ``(..., n_mels, frames)``.

    ``log_multiplier * log_b(max(mel, log_floor))`` (``log_guard="add"``: ``log_b(mel +
    log_floor)``) with ``b = e`` for ``"log"`` and 10 for ``"log10"``/``"db"``, then
    ``(c - mel_mean) / mel_std`` when the config is normalised. ``"none"`` skips the logarithm.
    """
    out = mel
    if config.compression != "none":
        guarded = (
            mel + config.log_floor if config.log_guard == "add" else mel.clamp(min=config.log_floor)
        )
        log = torch.log(guarded) if config.compression == "log" else torch.log10(guarded)
        out = config.log_multiplier * log
    if config.normalised:
        mean, std = _stats(config, out)
        out = (out - mean) / std
    return out


def decompress(mel: Tensor, config: MelConfig) -> Tensor:
    """Invert :func:`compress`: compressed mel -> linear mel (values at the floor stay at the floor;
    with ``log_guard="add"``, values below the floor give 0)."""
    if config.normalised:
        mean, std = _stats(config, mel)
        mel = mel * std + mean
    if config.compression == "none":
        return mel
    base = math.e if config.compression == "log" else 10.0
    lin = torch.exp(mel * (math.log(base) / config.log_multiplier))
    return (lin - config.log_floor).clamp(min=0.0) if config.log_guard == "add" else lin


def decompress_checked(mel: Tensor, config: MelConfig, name: str = "mel") -> Tensor:
    """:func:`decompress`, raising ``ValueError`` naming ``name`` when the linear mel overflows
    ``mel``'s dtype (a compressed value far above anything the config produces).

    The inverter and :func:`~specinv_lightning.functional.mel_consistency` both use it, so they
    accept and reject the same mels.
    """
    lin = decompress(mel, config)
    checkable = config.compression != "none" and not _skip_value_checks(lin)
    if checkable and not bool(torch.isfinite(lin).all()):
        raise ValueError(
            f"{name}: values up to {float(mel.max()):.4g} overflow {mel.dtype} when"
            f" decompressed ({config.compression}, multiplier {config.log_multiplier});"
            " expected a compressed mel in the range the config produces"
        )
    return lin


def compressed_floor(
    config: MelConfig, dtype: torch.dtype = torch.float64, device: Any = None
) -> Tensor:
    """The compressed (and normalised) mel of silence, ``(n_mels, 1)``: ``compress(0)``.

    No waveform's mel goes below it (above it for a negative ``log_multiplier``).

    Example:
        >>> from specinv_lightning import MelConfig
        >>> round(float(compressed_floor(MelConfig.from_preset("hifigan"))[0, 0]), 4)
        -11.5129
    """
    return compress(torch.zeros(config.n_mels, 1, dtype=dtype, device=device), config)


def clamp_to_level(mel: Tensor, config: MelConfig, linear_max: Tensor) -> Tensor:
    """Clamp a compressed mel ``(..., n_mels, frames)`` so that no linear value exceeds
    ``linear_max`` (broadcastable to ``(..., 1, 1)``): the ceiling matching
    :func:`clamp_to_floor`'s floor."""
    shape = (*linear_max.shape[:-2], config.n_mels, 1)
    ceiling = compress(linear_max.to(mel.dtype).expand(shape), config)
    if config.compression != "none" and config.log_multiplier < 0:
        return torch.maximum(mel, ceiling)
    return torch.minimum(mel, ceiling)


def clamp_to_floor(mel: Tensor, config: MelConfig) -> Tensor:
    """Clamp a compressed mel at :func:`compressed_floor`, as the forward transform does."""
    floor = compressed_floor(config, mel.dtype, mel.device)
    if config.compression != "none" and config.log_multiplier < 0:
        return torch.minimum(mel, floor)
    return torch.maximum(mel, floor)
