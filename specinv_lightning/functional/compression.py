"""Dynamic-range compression of mels (log, log10, dB) and its exact inverse."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig

__all__ = ["compress", "decompress"]


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
