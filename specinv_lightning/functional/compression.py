"""Dynamic-range compression of mels (log, log10, dB) and its exact inverse."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig

__all__ = ["compress", "decompress", "compressed_floor", "clamp_to_floor"]


def compress(mel: Tensor, config: MelConfig) -> Tensor:
    """Apply the config's compression to a linear mel (``"none"`` returns it unchanged).

    ``log_multiplier * log_b(clamp(mel, min=log_floor))`` with ``b = e`` for ``"log"`` and 10 for
    ``"log10"``/``"db"``.
    """
    if config.compression == "none":
        return mel
    clamped = mel.clamp(min=config.log_floor)
    if config.compression == "log":
        return config.log_multiplier * torch.log(clamped)
    return config.log_multiplier * torch.log10(clamped)


def decompress(mel: Tensor, config: MelConfig) -> Tensor:
    """Invert :func:`compress`: compressed mel -> linear mel (values at the floor stay at the floor)."""
    if config.compression == "none":
        return mel
    base = math.e if config.compression == "log" else 10.0
    return torch.exp(mel * (math.log(base) / config.log_multiplier))


def compressed_floor(config: MelConfig) -> float:
    """The compressed value of silence: ``compress(log_floor)`` (0.0 for ``"none"``).

    No waveform's mel goes below it (above it for a negative ``log_multiplier``).

    Example:
        >>> from specinv_lightning import MelConfig
        >>> round(compressed_floor(MelConfig.from_preset("hifigan")), 4)
        -11.5129
    """
    if config.compression == "none":
        return 0.0
    base = math.e if config.compression == "log" else 10.0
    return config.log_multiplier * math.log(config.log_floor) / math.log(base)


def clamp_to_floor(mel: Tensor, config: MelConfig) -> Tensor:
    """Clamp a compressed mel at :func:`compressed_floor`, as the forward transform does."""
    floor = compressed_floor(config)
    if config.compression != "none" and config.log_multiplier < 0:
        return mel.clamp(max=floor)
    return mel.clamp(min=floor)
