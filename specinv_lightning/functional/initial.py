"""The initial phase of phase retrieval: one function, chosen by name everywhere.

``MelInverter``, ``griffin_lim``, the loss, the callback and the CLI all start from
:func:`initial_phase`, so the same name gives the same phase wherever it is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional.magnitude import root
from specinv_lightning.functional.peaks import PEAK_SHARPEN, PeakModel, peak_fits
from specinv_lightning.functional.pghi import pghi_phase
from specinv_lightning.functional.stft import istft, stft

__all__ = ["INITS", "Init", "Probe", "initial_phase"]

Init = Literal["pghi", "pghi-fast", "random", "zeros"]
INITS: tuple[str, ...] = get_args(Init)
#: Runs a few iterations of the caller's phase retrieval from stacked candidate phases
#: ``(candidates, ..., n_freqs, frames)`` and returns the complex spectrograms after them.
Probe = Callable[[Tensor], Tensor]


def initial_phase(
    magnitude: Tensor,
    init: str | Tensor = "random",
    generator: torch.Generator | None = None,
    config: MelConfig | None = None,
    *,
    mel: Tensor | None = None,
    peaks: PeakModel | None = None,
    probe: Probe | None = None,
) -> Tensor:
    """Phase in radians to start phase retrieval from, broadcastable to ``magnitude``.

    Args:
        magnitude: Real ``(..., n_freqs, frames)``.
        init: ``"pghi"``: phase-gradient integration along spectral peaks
            (:func:`~specinv_lightning.functional.pghi.pghi_phase`; deterministic, per item,
            needs ``config``). Given the ``mel`` and its ``peaks`` model, three phases are
            computed, one from ``magnitude`` and two from the mel's
            :func:`~specinv_lightning.functional.peaks.peak_fit` (sharp harmonic peaks where a
            mel band holds several bins, each partial's phase advancing at the fit's
            ``frequency``, or at the ``centroid`` of the fit after its multiplicative
            sharpening steps), and each item keeps the one whose resynthesis
            has the smallest mel error:
            after the ``probe``'s iterations, or after one projection without a probe; without
            them, the phase of
            ``magnitude``. ``"pghi-fast"``: always the phase of ``magnitude`` (no peak fit, no
            comparison; about a quarter of the cost). ``"random"``: one phase ``(n_freqs, frames)``, uniform on the circle, shared by
            every item, drawn frame by frame (in float32, then cast) so that an item's phase
            depends neither on the batch it is in nor on the dtype, and a longer item starts
            with the same phases as a shorter one. ``"zeros"``: phase 0, ``(n_freqs, frames)``.
            A tensor shaped like ``magnitude``: real phases in radians, or a complex spectrogram
            whose phase is used (0 where it is 0), e.g. the target's STFT for teacher forcing.
        generator: Optional ``torch.Generator`` for ``"random"`` (it may live on another device
            than ``magnitude``).
        config: The STFT of ``magnitude`` (needed by ``"pghi"`` and ``"pghi-fast"``).
        mel: Linear mel ``(..., n_mels, frames)`` in the power domain, one per magnitude item
            (used by ``"pghi"``).
        peaks: :func:`~specinv_lightning.functional.peaks.peak_model` of ``config`` in
            ``magnitude``'s dtype and device (used by ``"pghi"`` with ``mel``).
        probe: For ``"pghi"`` with ``mel`` and ``peaks``: a :data:`Probe` running a few
            iterations of the caller's loop, by which the three phases are judged, one at a time
            (the engine passes its own; the chosen phase is still the initial one, not the
            probed one).

    Returns:
        Real phases of ``magnitude``'s dtype and device: ``(n_freqs, frames)`` for ``"random"``
        and ``"zeros"``, else ``magnitude``'s shape.

    Raises:
        ValueError: Unknown ``init``, a tensor of the wrong shape, or ``"pghi"`` without ``config``.

    Example:
        >>> mag = torch.ones(2, 5, 3)
        >>> initial_phase(mag, "random", torch.Generator().manual_seed(0)).shape
        torch.Size([5, 3])
        >>> float(initial_phase(mag, "zeros").abs().max())
        0.0
    """
    n_freqs, num_frames = magnitude.shape[-2:]
    dtype, device = magnitude.dtype, magnitude.device
    if isinstance(init, Tensor):
        if init.shape != magnitude.shape:
            raise ValueError(
                f"init: expected a phase/complex tensor of shape {tuple(magnitude.shape)},"
                f" got {tuple(init.shape)}"
            )
        init = init.detach().to(device)
        return (torch.angle(init) if init.is_complex() else init).to(dtype)
    if init in ("pghi", "pghi-fast"):
        if config is None:
            raise ValueError(f"config: init={init!r} needs the STFT config of the magnitude")
        if init == "pghi" and mel is not None and peaks is not None:
            return _best_pghi(magnitude, mel, config, peaks, probe)
        return pghi_phase(magnitude, config)
    if init == "zeros":
        return torch.zeros(n_freqs, num_frames, dtype=dtype, device=device)
    if init == "random":
        where = generator.device if generator is not None else device
        draws = torch.rand(num_frames, n_freqs, generator=generator, device=where)
        return (draws.to(device=device, dtype=dtype) * (2 * math.pi)).t()
    raise ValueError(f"init: expected one of {INITS} or a tensor, got {init!r}")


#: Per candidate of :func:`_pghi_candidates`, the factor by which its mel error must undercut
#: the best so far to be chosen: the harmonic fit's phase must be 0.5 dB better (a strong prior
#: that can be wrong: near-ties at the probe went on to lose 0.7-1.7 dB by 32 iterations).
_MARGINS = (1.0, 1.0, 1.0, 10 ** (-0.5 / 10))


def _pghi_candidates(
    magnitude: Tensor, mel: Tensor, config: MelConfig, peaks: PeakModel
) -> list[Tensor]:
    """The phases ``init="pghi"`` chooses from, in order of preference among equals: PGHI of
    ``magnitude``; PGHI of the mel's peak spectrum with the fit's per-bin ``frequency``; PGHI of
    the sharpened fit's spectrum with its ``centroid`` frequency; PGHI of the harmonic fit's
    spectrum with its ``centroid``
    (:class:`~specinv_lightning.functional.peaks.PeakFit`; the fit before and after
    :data:`~specinv_lightning.functional.peaks.PEAK_SHARPEN` multiplicative steps, and the
    harmonic fit of :func:`~specinv_lightning.functional.peaks.peak_fits`)."""
    return [
        pghi_phase(start, config, frequency=frequency)
        for start, frequency in _pghi_starts(magnitude, mel, config, peaks)
    ]


def _pghi_starts(
    magnitude: Tensor, mel: Tensor, config: MelConfig, peaks: PeakModel
) -> list[tuple[Tensor, Tensor | None]]:
    """The ``(magnitude, frequency or None)`` each of :func:`_pghi_candidates` is PGHI of."""
    plain, sharpened, harmonic = peak_fits(mel, peaks, (0, PEAK_SHARPEN), harmonic=True)
    return [(magnitude, None)] + [
        (root(fit.spectrum, config.power), frequency)
        for fit, frequency in (
            (plain, plain.frequency),
            (sharpened, sharpened.centroid),
            (harmonic, harmonic.centroid),
        )
    ]


def _best_pghi(
    magnitude: Tensor, mel: Tensor, config: MelConfig, peaks: PeakModel, probe: Probe | None
) -> Tensor:
    """Per item, the one of :func:`_pghi_candidates` that resynthesises to the smallest squared
    mel error (the first of equals; a NaN error never wins; the harmonic fit's phase only when
    its error is 0.5 dB under the best of the others, :data:`_MARGINS`): after ``probe``'s
    iterations from each, or after one projection with ``magnitude``. The candidates are probed one at a time,
    so the probe holds one batch of items at once."""
    with torch.no_grad():
        magnitude, mel = magnitude.detach(), mel.detach()
        best = best_error = None
        candidates = _pghi_candidates(magnitude, mel, config, peaks)
        for phase, margin in zip(candidates, _MARGINS, strict=True):
            spectrogram = torch.polar(magnitude, phase) if probe is None else probe(phase[None])[0]
            error = _mel_error(spectrogram, mel, config, peaks).nan_to_num(nan=math.inf)
            if best is None or best_error is None:
                best, best_error = phase, error
                continue
            better = error < best_error * margin
            best = torch.where(better[..., None, None], phase, best)
            best_error = torch.where(better, error, best_error)
        return best


def _mel_error(spectrograms: Tensor, mel: Tensor, config: MelConfig, peaks: PeakModel) -> Tensor:
    """``||F |STFT(ISTFT(X))|^power - M||^2`` per complex spectrogram ``X`` and item."""
    num_frames = spectrograms.shape[-1]
    wave = istft(spectrograms, config, window=peaks.window)
    again = stft(wave, config, window=peaks.window)[..., :num_frames].abs()
    estimate = torch.matmul(peaks.fb, again.square() if config.power == 2.0 else again)
    return (estimate - mel).square().sum(dim=(-2, -1))
