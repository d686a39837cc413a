"""Which mel convention made this mel? (``MelConfig.identify``, ``specinv-invert --identify``)

Given a waveform and a mel some code base computed from it, every preset's transform is applied to
the waveform and compared with the mel under three hypotheses, simplest first: the preset as it is,
the preset with a scalar normalisation ``(c - mean) / std`` fitted by least squares (Matcha-TTS,
StyleTTS2, a log base of 10 instead of e), and a per-band one (ESPnet's global statistics).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor

from specinv_lightning.config import PRESETS, MelConfig
from specinv_lightning.functional._checks import check_tensor
from specinv_lightning.mel import MelSpectrogram

__all__ = ["Identification", "identify"]

HYPOTHESES = ("as the preset", "scalar normalisation", "per-band normalisation")


class Identification(NamedTuple):
    """The result of :func:`identify`.

    ``config`` reproduces the mel (``None`` when no preset fits); ``preset`` names the preset it
    starts from; ``error_db`` is ``20 log10(rms(mel - reproduced) / spread(mel))`` of the best
    candidate (matched or not); ``hypothesis`` says how it fits.
    """

    config: MelConfig | None
    preset: str | None
    error_db: float
    hypothesis: str

    @property
    def matched(self) -> bool:
        return self.config is not None

    def __str__(self) -> str:
        if self.config is None:
            return (
                f"no preset reproduces this mel (closest: {self.preset}, {self.hypothesis}, error"
                f" {self.error_db:.1f} dB)"
            )
        stats = ""
        if self.hypothesis != HYPOTHESES[0]:
            stats = (
                f", mel_mean={_short(self.config.mel_mean)}, mel_std={_short(self.config.mel_std)}"
            )
        return f"preset {self.preset!r}{stats} ({self.hypothesis}, error {self.error_db:.1f} dB)"


def _short(value: float | tuple[float, ...] | None) -> str:
    if isinstance(value, tuple):
        return f"[{value[0]:.4g}, ..., {value[-1]:.4g}] ({len(value)} bands)"
    return "None" if value is None else f"{value:.6g}"


def identify(
    waveform: Tensor,
    mel: Tensor,
    sample_rate: int | None = None,
    presets: Iterable[str] | None = None,
    threshold_db: float = -30.0,
) -> Identification:
    """Find the preset (and normalisation) that reproduces ``mel`` from ``waveform``.

    Args:
        waveform: ``(samples,)`` or ``(1, samples)``.
        mel: ``(n_mels, frames)`` or ``(1, n_mels, frames)``, as the other code base computed it
            from ``waveform`` (its frame count may differ by one).
        sample_rate: The waveform's rate; each preset is evaluated at it. ``None``: each preset at
            its own rate.
        presets: Names to try (default: all of :data:`~specinv_lightning.PRESETS`).
        threshold_db: A candidate matches when its error is at most this (default -30 dB: the
            residual is under 3 % of the mel's spread).

    Example:
        >>> import torch
        >>> from specinv_lightning import MelConfig, MelSpectrogram
        >>> wave = torch.randn(22050, dtype=torch.float64)
        >>> mel = MelSpectrogram("matcha").double()(wave)
        >>> found = MelConfig.identify(wave, mel)
        >>> found.preset, found.config == MelConfig.from_preset("matcha")
        ('matcha', True)
    """
    wave, target = _check_inputs(waveform, mel)
    best: tuple[int, float, str, MelConfig] | None = None
    closest: tuple[float, str, int] = (math.inf, "", 0)
    seen: list[MelConfig] = []
    for name in presets if presets is not None else PRESETS:
        config = _candidate(name, sample_rate)
        if config in seen or config.n_mels != target.shape[0]:
            continue
        seen.append(config)
        for rank, (error, fitted) in enumerate(_hypotheses(config, wave, target)):
            if error < closest[0]:
                closest = (error, name, rank)
            if error <= threshold_db and (best is None or (rank, error) < best[:2]):
                best = (rank, error, name, fitted)
    if best is None:
        error, name, rank = closest
        return Identification(None, name or None, error, HYPOTHESES[rank])
    rank, error, name, fitted = best
    return Identification(fitted, name, error, HYPOTHESES[rank])


def _check_inputs(waveform: object, mel: object) -> tuple[Tensor, Tensor]:
    wave = check_tensor(waveform, "waveform", min_dim=1).detach().double().cpu()
    target = check_tensor(mel, "mel", min_dim=2).detach().double().cpu()
    if wave.dim() == 2 and wave.shape[0] == 1:
        wave = wave[0]
    if target.dim() == 3 and target.shape[0] == 1:
        target = target[0]
    if wave.dim() != 1 or target.dim() != 2:
        raise ValueError(
            f"waveform and mel: expected (samples,) and (n_mels, frames), got"
            f" {tuple(wave.shape)} and {tuple(target.shape)}"
        )
    if not (bool(torch.isfinite(wave).all()) and bool(torch.isfinite(target).all())):
        raise ValueError("waveform and mel: expected finite values")
    return wave, target


def _candidate(name: str, sample_rate: int | None) -> MelConfig:
    if sample_rate is None:
        return MelConfig.from_preset(name)
    f_max = PRESETS[name.lower()].get("f_max")
    fits = f_max is not None and f_max <= sample_rate / 2
    return MelConfig.from_preset(name, sample_rate=sample_rate, f_max=f_max if fits else None)


def _hypotheses(config: MelConfig, wave: Tensor, target: Tensor) -> list[tuple[float, MelConfig]]:
    """``(error_db, config)`` of the preset as it is, with a scalar and with a per-band
    normalisation fitted to ``target`` (empty when the frame counts differ by more than one)."""
    plain = dataclasses.replace(config, mel_mean=None, mel_std=None)
    if wave.shape[-1] < plain.min_samples:
        return []
    raw = MelSpectrogram(plain).double()(wave)  # compressed, not normalised
    frames = min(raw.shape[-1], target.shape[-1])
    if abs(raw.shape[-1] - target.shape[-1]) > 1 or frames < 2:
        return []
    raw, target = raw[:, :frames], target[:, :frames]
    as_is = MelSpectrogram(config).double()(wave)[:, :frames]
    out = [(_error_db(as_is, target), config)]
    for dims in ((0, 1), (1,)):  # one (mean, std) for all bands, then one per band
        scale, offset = _affine_fit(raw, target, dims)
        if bool((scale <= 0).any()):
            out.append((math.inf, config))
            continue
        std, mean = 1.0 / scale, -offset / scale  # target = (raw - mean) / std
        if len(dims) == 2:
            fitted = dataclasses.replace(plain, mel_mean=float(mean), mel_std=float(std))
        else:
            fitted = dataclasses.replace(plain, mel_mean=tuple(mean.flatten().tolist()),
                                         mel_std=tuple(std.flatten().tolist()))  # fmt: skip
        out.append((_error_db(scale * raw + offset, target), fitted))
    return out


def _affine_fit(x: Tensor, y: Tensor, dims: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    """Least-squares ``y ~ scale x + offset`` over ``dims`` (kept as size-1 dims)."""
    xm, ym = x.mean(dims, keepdim=True), y.mean(dims, keepdim=True)
    var = (x - xm).square().mean(dims, keepdim=True)
    cov = ((x - xm) * (y - ym)).mean(dims, keepdim=True)
    scale = cov / var.clamp(min=1e-300)
    return scale, ym - scale * xm


def _error_db(pred: Tensor, target: Tensor) -> float:
    spread = float(target.std()) if target.numel() > 1 else 0.0
    rms = float((pred - target).square().mean().sqrt())
    if spread == 0.0:
        return -math.inf if rms == 0.0 else math.inf
    return 20.0 * math.log10(max(rms / spread, 1e-300))
