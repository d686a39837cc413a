"""Input validation shared by the functional core: every error names the argument and what was expected."""

from __future__ import annotations

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig

__all__ = [
    "check_finite",
    "check_tensor",
    "check_mel",
    "check_magnitude",
    "check_lengths",
    "check_waveform",
    "check_same_shape",
]


def check_tensor(x: object, name: str, min_dim: int = 1) -> Tensor:
    """Raise ValueError unless ``x`` is a floating tensor with at least ``min_dim`` dims."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not (x.is_floating_point() or x.is_complex()):
        raise ValueError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name}: expected at least {min_dim} dims, got shape {tuple(x.shape)}")
    if x.numel() == 0:
        raise ValueError(f"{name}: got an empty tensor of shape {tuple(x.shape)}")
    return x


def check_finite(x: Tensor, name: str) -> None:
    """Raise ValueError if ``x`` holds NaN or Inf (skipped while tracing/compiling)."""
    if _skip_value_checks(x):
        return
    if not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name}: contains {n_bad} NaN/Inf value(s); expected finite values")


def _skip_value_checks(x: Tensor) -> bool:
    # data-dependent checks need real values: not while tracing/compiling, not on the meta device
    return torch.jit.is_tracing() or torch.compiler.is_compiling() or x.device.type == "meta"


def check_mel(mel: object, config: MelConfig, name: str = "mel", linear: bool = False) -> Tensor:
    """Validate a ``(..., n_mels, frames)`` mel for ``config``: real, finite, ``config.n_mels``
    bands, at least ``config.min_frames`` frames (one analysis window), and values >= 0 when it is
    linear (``linear=True``, or the config neither compresses nor normalises)."""
    mel = check_tensor(mel, name, min_dim=2)
    if mel.is_complex():
        raise ValueError(f"{name}: expected a real tensor, got dtype {mel.dtype}")
    n_mels, min_frames = config.n_mels, config.min_frames
    if mel.shape[-2] != n_mels:
        raise ValueError(
            f"{name}: expected shape (..., n_mels={n_mels}, frames), got {tuple(mel.shape)}"
            f" (dim -2 has {mel.shape[-2]} mel bands)"
        )
    if mel.shape[-1] < min_frames:
        raise ValueError(
            f"{name}: expected at least {min_frames} frames (one window of n_fft={config.n_fft}"
            f" samples at hop_length={config.hop_length}), got shape {tuple(mel.shape)}"
        )
    check_finite(mel, name)
    nonnegative = linear or (config.compression == "none" and not config.normalised)
    if nonnegative and not _skip_value_checks(mel) and bool((mel < 0).any()):
        raise ValueError(
            f"{name}: contains negative values (min {float(mel.min()):.3g}); expected a linear"
            " (uncompressed) mel with values >= 0. Did you pass a log-mel with compression='none'?"
        )
    return mel


def check_magnitude(magnitude: object, config: MelConfig, name: str = "magnitude") -> Tensor:
    """Validate a real, finite, non-negative STFT magnitude ``(..., n_freqs, frames)``."""
    magnitude = check_tensor(magnitude, name, min_dim=2)
    if magnitude.is_complex():
        raise ValueError(f"{name}: expected a real tensor (|STFT|), got dtype {magnitude.dtype}")
    if magnitude.shape[-2] != config.n_freqs:
        raise ValueError(
            f"{name}: expected shape (..., n_freqs={config.n_freqs}, frames), got"
            f" {tuple(magnitude.shape)}"
        )
    check_finite(magnitude, name)
    if not _skip_value_checks(magnitude) and bool((magnitude < 0).any()):
        raise ValueError(
            f"{name}: contains negative values (min {float(magnitude.min()):.3g}); expected an"
            " STFT magnitude with values >= 0"
        )
    return magnitude


def check_lengths(lengths: object, n_items: int, name: str = "lengths") -> Tensor:
    """Valid length of each item (samples or frames): one integer >= 1 per item, as a tensor or
    sequence (integral floats accepted). Returns a ``long`` tensor ``(n_items,)``; values above an
    item's size mean the whole item (callers clamp)."""
    try:
        values = torch.as_tensor(lengths).detach()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name}: expected {n_items} integer lengths, got {lengths!r}") from err
    integral = not (values.is_complex() or values.dtype == torch.bool) and (
        not values.is_floating_point() or bool((values == values.round()).all())
    )
    if values.numel() != n_items or not integral:
        raise ValueError(
            f"{name}: expected {n_items} integer lengths (one per item), got shape"
            f" {tuple(values.shape)} of {values.dtype}"
        )
    values = values.reshape(-1).long()
    if bool((values < 1).any()):
        raise ValueError(f"{name}: expected lengths >= 1, got {values.tolist()}")
    return values


def check_waveform(waveform: object, min_samples: int, name: str = "waveform") -> Tensor:
    """Validate a (..., samples) real waveform tensor."""
    waveform = check_tensor(waveform, name, min_dim=1)
    if waveform.is_complex():
        raise ValueError(f"{name}: expected a real tensor, got dtype {waveform.dtype}")
    if waveform.shape[-1] < min_samples:
        raise ValueError(
            f"{name}: expected shape (..., samples) with samples >= {min_samples}, got"
            f" {tuple(waveform.shape)}"
        )
    check_finite(waveform, name)
    return waveform


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    """Raise ValueError unless ``a`` and ``b`` have the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b}: expected the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
