"""A peak-model magnitude for a mel: the non-negative sum of main lobes that best explains it.

A mel band averages several STFT bins, so the minimum-norm (pseudo-inverse) spectrum of a mel
is smooth across each band: a harmonic's peak is smeared and often sits on the wrong bin, and the
phase that PGHI reads off it advances at the wrong rate. The STFT of a sum of sinusoids is a sum of
copies of the window's main lobe, so this module fits the mel with non-negative combinations of
those copies (``|W(k - c)|^power``, centres ``c`` every half bin) and returns their sum. Its peaks
and lobe shapes are what phase-gradient integration assumes; :func:`~specinv_lightning.functional.initial.initial_phase`
uses it for ``init="pghi"`` when it knows the mel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_tensor
from specinv_lightning.functional._inplace import (
    BandedFilterbank,
    filterbank_blocks,
    rescale_onto_mel_,
)
from specinv_lightning.functional.magnitude import (
    _bands,
    filterbank_lipschitz,
    filterbank_pinv,
    nnls_spectrum,
    root,
)

__all__ = [
    "HARMONIC_F0",
    "HARMONIC_SIGMA",
    "PeakFit",
    "harmonic_pitch",
    "PeakModel",
    "peak_fit",
    "peak_fits",
    "peak_model",
    "peak_spectrum",
    "PEAK_ITERATIONS",
    "PEAK_SHARPEN",
    "PEAK_STEP",
]

#: Spacing of the lobe centres in bins.
PEAK_STEP = 0.5
#: Iterations of the non-negative fit.
PEAK_ITERATIONS = 100
#: Multiplicative (Richardson-Lucy) steps after it, which gather each partial onto fewer lobes.
PEAK_SHARPEN = 50
#: Pitch range (Hz) of the harmonic fit's comb.
HARMONIC_F0 = (60.0, 450.0)
#: Width (bins, one standard deviation) of the harmonic fit's prior around each harmonic.
HARMONIC_SIGMA = 1.0
_HARMONIC_BAND = 1500.0  # Hz: the band whose harmonics set the pitch (at least 3 of the highest)
_HARMONIC_FLOOR = 1e-3  # the prior's weight far from every harmonic
_HARMONIC_VOICING = 0.25  # comb score per harmonic over the compressed frame's maximum: voiced
_RESOLVED = 0.4  # a multiple is resolved where mel bands lie at most 0.4 pitch apart ...
_LOWEST = 3  # ... and the lowest three always are
_RESOLVED_VOICING = 0.3  # score per resolved multiple over the frame's maximum: voiced ...
_OFF_GRID = 0.8  # ... unless a resolved half-way point exceeds 0.8 x its higher neighbour
_COMB_STEP = 0.05  # pitch grid step in bins
_COMB_COMPRESSION = 0.01  # log1p(|X| / (0.01 max |X|)): every harmonic above -40 dB counts


class PeakModel(NamedTuple):
    """The operators of :func:`peak_spectrum` for one config and filterbank.

    Attributes:
        fb: The filterbank ``F`` ``(n_mels, n_freqs)`` it was built for.
        window: The analysis window (``n_fft`` samples) whose lobes it holds.
        lobes: ``(n_freqs, n_lobes)``: column ``j`` is ``|W(k - c_j)|^power`` over the bins ``k``,
            ``W`` the window's transform normalised to ``W(0) = 1``.
        mel_lobes: ``F @ lobes`` ``(n_mels, n_lobes)``: the mel of each lobe.
        mel_lobes_pinv: Pseudo-inverse of ``mel_lobes`` (the fit's warm start).
        centres: ``(n_lobes,)``: the centre ``c_j`` of each lobe in bins.
        lipschitz: Largest eigenvalue of ``mel_lobes^T mel_lobes`` (the fit's step size).
        nearest: ``(n_freqs,)`` int64: the lobe centred nearest each bin (for
            :attr:`PeakFit.centroid`).
        span: Lobes on each side of it that :attr:`PeakFit.centroid` averages over:
            ``floor(n_fft / win_length / PEAK_STEP)``, i.e. ``n_fft / win_length`` bins (a
            quarter of a Hann window's main lobe).
        banded: ``mel_lobes`` in blocks of lobes with the mels that touch them (the products of
            the multiplicative steps skip its zeros).
        lobe_rows: ``lobes`` in groups of rows ``(r0, r1, c0, c1)``: rows ``r0:r1`` are zero
            outside columns ``c0:c1`` (each lobe spans a few bins: ``lobes @ a`` skips them).
        comb: ``(band_bins, n_pitches)``: column ``g`` scores pitch ``pitches[g]`` on a frame's
            compressed magnitude below ``_HARMONIC_BAND`` Hz: the sum of its values at the
            pitch's multiples minus the sum half-way between them (linear interpolation).
        harmonics: ``(n_pitches,)``: how many multiples of each pitch the comb sums.
        resolved: ``(n_pitches, n_multiples)``: 1 where multiple ``h + 1`` of pitch ``g`` lies
            in the comb's band and the mel resolves it: the centres of the filterbank's bands
            there lie at most ``_RESOLVED`` (0.4) times the pitch apart, or ``h + 1 <= 3``;
            else 0 (the second voicing test of :func:`harmonic_pitch`).
        pitches: ``(n_pitches,)``: the comb's pitch grid in bins, :data:`HARMONIC_F0` every
            ``_COMB_STEP`` bins.
        power: The config's ``power`` (the lobes hold ``|W|^power``).
    """

    fb: Tensor
    window: Tensor
    lobes: Tensor
    mel_lobes: Tensor
    mel_lobes_pinv: Tensor
    centres: Tensor
    lipschitz: float
    nearest: Tensor
    span: int
    banded: BandedFilterbank
    lobe_rows: tuple[tuple[int, int, int, int], ...]
    comb: Tensor
    pitches: Tensor
    harmonics: Tensor
    resolved: Tensor
    power: float

    def to(self, dtype: torch.dtype, device: torch.device | None = None) -> PeakModel:
        """The same model with its real tensors in ``dtype`` (and all on ``device``)."""
        fb, window, lobes, mel_lobes, pinv, centres, comb, pitches, harmonics, resolved = (
            t.to(device=device, dtype=dtype)
            for t in (self.fb, self.window, self.lobes, self.mel_lobes, self.mel_lobes_pinv,
                      self.centres, self.comb, self.pitches, self.harmonics, self.resolved)
        )  # fmt: skip
        banded = self.banded._replace(
            fb=mel_lobes, gram_pinv=self.banded.gram_pinv.to(device=device, dtype=dtype)
        )
        return self._replace(fb=fb, window=window, lobes=lobes, mel_lobes=mel_lobes,
                             mel_lobes_pinv=pinv, centres=centres,
                             nearest=self.nearest.to(device), banded=banded, comb=comb,
                             pitches=pitches, harmonics=harmonics, resolved=resolved)  # fmt: skip


def peak_model(config: MelConfig, fb: Tensor, window: Tensor) -> PeakModel:
    """The lobe dictionary of ``config``'s window over the bins ``fb`` covers, in float64.

    Lobe centres run every :data:`PEAK_STEP` bins from one bin below the first bin any filter
    touches to one bin above the last (bins no filter sees cannot be fitted); each lobe is cut
    where ``|k - c| > 4 n_fft / win_length`` (the main lobe and first side lobes of a Hann window).

    Args:
        config: The STFT (``n_fft``, ``win_length``, ``power``).
        fb: Filterbank ``F`` ``(n_mels, n_freqs)``.
        window: The analysis window, ``n_fft`` samples (:func:`~specinv_lightning.functional.make_window`).
    """
    fb = fb.detach().double()
    n_freqs = fb.shape[-1]
    covered = (fb.abs().sum(0) > 0).nonzero().flatten()
    first, last = (0, n_freqs - 1) if covered.numel() == 0 else (int(covered[0]), int(covered[-1]))
    centres = torch.arange(
        max(first - 1, 0), min(last + 1, n_freqs - 1) + 1e-9, PEAK_STEP, dtype=torch.float64
    ).to(fb.device)
    offsets = torch.arange(n_freqs, dtype=torch.float64, device=fb.device)[:, None] - centres
    reach = 4.0 * config.n_fft / config.win_length
    w = window.detach().double().to(fb.device)
    t = torch.arange(w.numel(), dtype=torch.float64, device=fb.device)
    inside = offsets.abs() <= reach
    # the kept offsets take a few distinct values (bins minus centres on a half-bin grid)
    d, which = torch.unique(offsets[inside], return_inverse=True)
    # |W(d)| = |sum_t w[t] exp(-2 pi i d t / n_fft)| / sum w, for each distinct offset
    arg = (2 * math.pi / config.n_fft) * d[:, None] * t
    transform = torch.complex(w * torch.cos(arg), -w * torch.sin(arg)).sum(-1).abs()
    lobes = torch.zeros_like(offsets)
    lobes[inside] = (
        transform[which] / w.sum().clamp(min=torch.finfo(w.dtype).tiny)
    ) ** config.power
    mel_lobes = fb @ lobes
    pinv, lipschitz = filterbank_pinv(mel_lobes), filterbank_lipschitz(mel_lobes)
    nearest = offsets.abs().argmin(dim=-1)
    span = int(config.n_fft / config.win_length / PEAK_STEP + 1e-9)
    banded = filterbank_blocks(mel_lobes)
    lobe_rows = tuple(where for where, _ in _bands(lobes, rows=64)[0])
    comb, pitches, harmonics, resolved = _comb(config, fb)
    return PeakModel(fb, w, lobes, mel_lobes, pinv, centres, lipschitz, nearest, span, banded,
                     lobe_rows, comb, pitches, harmonics, resolved, config.power)  # fmt: skip


def _band_spacing(fb: Tensor, where: Tensor) -> Tensor:
    """Distance in bins from the centre of the band of ``fb`` nearest each of ``where`` (bins)
    to the next band's (band centres: the filters' centroids; empty filters skipped)."""
    bins = torch.arange(fb.shape[-1], dtype=fb.dtype, device=fb.device)
    mass = fb.sum(-1)
    centres = (fb @ bins)[mass > 0] / mass[mass > 0]
    if centres.numel() < 2:
        return torch.full_like(where, math.inf)
    gaps, mids = torch.diff(centres), (centres[1:] + centres[:-1]) / 2
    return gaps[torch.searchsorted(mids, where.contiguous()).clamp(max=len(gaps) - 1)]


def _comb(config: MelConfig, fb: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:attr:`PeakModel.comb`, ``pitches``, ``harmonics`` and ``resolved`` of ``config`` and the
    filterbank ``fb``, in float64."""
    n_freqs, device = fb.shape[-1], fb.device
    bin_hz = config.sample_rate / config.n_fft
    top = min(_HARMONIC_BAND / bin_hz, n_freqs - 1.0)
    low, high = (f / bin_hz for f in HARMONIC_F0)
    pitches = torch.arange(low, max(low, min(high, top / 3)) + 1e-9, _COMB_STEP,
                           dtype=torch.float64, device=device)  # fmt: skip
    band = int(top) + 2
    harmonics = torch.arange(1, int(top / low) + 1, dtype=torch.float64, device=device)
    on = pitches[:, None] * harmonics  # (n_pitches, harmonics)
    inside = (on <= top).double()
    spacing = _band_spacing(fb, on.flatten()).reshape(on.shape)
    resolved = inside * ((spacing <= _RESOLVED * pitches[:, None]) | (harmonics <= _LOWEST))
    comb = torch.zeros(len(pitches), band, dtype=torch.float64, device=device)
    for where, sign in ((on, 1.0), (on - pitches[:, None] / 2, -1.0)):  # harmonics, half-way
        lo = where.floor().clamp(max=band - 2)
        frac = (where - lo) * inside
        rows = torch.arange(len(pitches), device=device)[:, None].expand_as(lo)
        comb.index_put_((rows, lo.long()), sign * (inside - frac), accumulate=True)
        comb.index_put_((rows, lo.long() + 1), sign * frac, accumulate=True)
    return comb.t().contiguous(), pitches, inside.sum(-1), resolved


class PeakFit(NamedTuple):
    """What :func:`peak_fit` returns, all ``(..., n_freqs, frames)``.

    Attributes:
        spectrum: ``lobes @ a``: the fitted ``|X|^power``.
        frequency: Per bin, the mean centre (in bins) of the lobes that make up its value,
            weighted by their contribution ``a_j |W(k - c_j)|^power``: the frequency of the
            partial the bin belongs to. A partial between two lobe centres is fitted by both, and
            this mean falls between them; where no lobe reaches, the bin itself. The lobe
            centred on the bin weighs most, so the mean leans towards the bin (by about a tenth
            of a bin on pure tones).
        centroid: Per bin, the mean centre of the lobes within :attr:`PeakModel.span` lobes of
            the bin, weighted by their fitted weights ``a_j`` alone. At a partial's peak bin
            the window holds all the lobes that fit it, so there is no lean towards the bin: a
            few times closer to a partial whose neighbours are a main lobe or more away, but
            lobes of partials closer than that pull it off (on a partial's flanks the window
            cuts its lobes on one side, and the estimate leans towards the bin). Where those
            lobes are all zero, or the bin lies outside the lobes' range, the bin itself.
    """

    spectrum: Tensor
    frequency: Tensor
    centroid: Tensor


def peak_fit(
    mel: Tensor, model: PeakModel, max_iter: int = PEAK_ITERATIONS, sharpen: int = PEAK_SHARPEN
) -> PeakFit:
    """The peak spectrum of the linear mel ``M``, and two estimates of each bin's frequency.

    The weights are ``a = argmin_{a >= 0} ||mel_lobes a - M||``, fitted with
    :func:`~specinv_lightning.functional.nnls_spectrum` (FISTA, warm-started from the
    pseudo-inverse) over the lobes instead of the bins, for exactly ``max_iter`` iterations (no
    tolerance: it would stop when the slowest item of the batch does, making an item's result
    depend on its batch), then ``sharpen`` multiplicative steps
    ``a <- a * mel_lobes^T (M / mel_lobes a) / mel_lobes^T 1``
    (:func:`~specinv_lightning.functional.rescale_onto_mel` with the lobes as the filterbank).
    The fit has many solutions where a band is wider than a lobe (a partial fitted by a spread
    of neighbouring lobes has nearly the mel of one lobe at their mean), and FISTA from the
    pseudo-inverse ends on a spread one whose centre drifts towards the band's; the
    multiplicative (Richardson-Lucy) steps keep the mel fitted while they gather each partial's
    weight onto fewer lobes. Each frame is fitted on its own; items are independent. Not
    differentiated (an initial value).

    Args:
        mel: Linear mel ``(..., n_mels, frames)``, values >= 0, in the config's power domain.
        model: :func:`peak_model` of the config, in ``mel``'s dtype and device.
        max_iter: Iteration cap of the fit.
        sharpen: Multiplicative steps after it (0: none).
    """
    return peak_fits(mel, model, (sharpen,), max_iter)[0]


def peak_fits(
    mel: Tensor,
    model: PeakModel,
    sharpen: Sequence[int],
    max_iter: int = PEAK_ITERATIONS,
    *,
    harmonic: bool = False,
) -> list[PeakFit]:
    """:func:`peak_fit` for each count of multiplicative steps in ``sharpen`` (ascending), from
    one FISTA fit: the steps of each count continue those of the one before it.

    With ``harmonic``, one more fit is appended: the **harmonic fit**. Each frame's pitch is
    read off the last fit's spectrum below 1.5 kHz, where a mel still resolves a voice's
    harmonics (:func:`harmonic_pitch`); in voiced frames its lobe weights are multiplied by a
    prior that keeps lobes within about :data:`HARMONIC_SIGMA` bins of a multiple of the pitch
    (``1e-3`` elsewhere), and :data:`PEAK_SHARPEN` more multiplicative steps fit the mel again.
    Where bands hold two harmonics or more (above 1-2 kHz on a voice with an 80 Hz-wide
    harmonic spacing), the mel alone leaves their places open and the fit smears them into
    one bump; the prior puts them on the pitch's multiples. Unvoiced frames get the steps
    without the prior.
    """
    if list(sharpen) != sorted(sharpen) or any(int(n) < 0 for n in sharpen):
        raise ValueError(f"sharpen: expected ascending counts >= 0, got {list(sharpen)}")
    if harmonic and not len(sharpen):
        raise ValueError("sharpen: the harmonic fit continues the last count; got no counts")
    with torch.no_grad():
        mel = mel.detach()
        weights = nnls_spectrum(
            mel,
            model.mel_lobes,
            model.mel_lobes_pinv,
            max_iter=max_iter,
            tol=None,  # always max_iter: a tolerance stops when the batch's slowest item does
            lipschitz=model.lipschitz,
        )
        if harmonic or any(int(n) > 0 for n in sharpen):  # the in-place steps' frame-major layout
            weights = weights.transpose(-1, -2).contiguous().transpose(-1, -2)
        fits, done = [], 0
        for count in sharpen:
            if count > done:
                rescale_onto_mel_(weights, mel, model.banded, int(count) - done)
                done = int(count)
            fits.append(_fit_from(weights, model))
        if harmonic:
            weights.mul_(_harmonic_prior(fits[-1].spectrum, model))
            rescale_onto_mel_(weights, mel, model.banded, PEAK_SHARPEN)
            fits.append(_fit_from(weights, model))
        return fits


def harmonic_pitch(spectrum: Tensor, model: PeakModel) -> tuple[Tensor, Tensor]:
    """Each frame's pitch (in bins) and whether it is voiced, from a peak spectrum.

    The magnitude ``|X|`` of ``spectrum`` (``|X|^power``) below 1.5 kHz, compressed per frame to
    ``log(1 + |X| / (0.01 max |X|))`` so that every harmonic above -40 dB counts, is scored by
    :attr:`PeakModel.comb` on a grid of pitches (:data:`HARMONIC_F0`, every 0.05 bin): the sum
    at the pitch's multiples minus the sum half-way between them. An octave too low puts half
    its multiples and all its half-way points in the gaps, an octave too high its half-way
    points on harmonics, and two or three octaves too high sum fewer harmonics: each scores
    under the right pitch. The best grid pitch is refined by a parabola through the scores and
    then by least squares over the harmonics (``f0 = sum w_k h_k k / sum w_k h_k^2``, ``h_k``
    the multiple nearest bin ``k``, ``w_k = |X|^2``). A frame is voiced when the best pitch's
    score per harmonic exceeds a quarter of its compressed maximum, or when, over the multiples
    the mel resolves alone (:attr:`PeakModel.resolved`: where its bands lie at most 0.4 pitch
    apart, and the lowest three), the score per multiple exceeds 0.3 of it and no point half-way
    between two of them exceeds 0.8 of the higher one. The second test is for low voices: their
    upper harmonics share bands and come out of the fit smeared, and in the first they dilute
    the score; its off-grid check keeps it from calling a chord one voice. Per frame; no
    gradient.

    Args:
        spectrum: ``|X|^power`` ``(..., n_freqs, frames)`` (e.g. :attr:`PeakFit.spectrum`).
        model: :func:`peak_model` of the config, in ``spectrum``'s dtype and device.

    Returns:
        ``(pitch, voiced)``, each ``(..., frames)``: pitch in bins (float), voiced (bool).

    Raises:
        ValueError: ``spectrum`` is not a real tensor ``(..., n_freqs, frames)`` with the model's
            ``n_freqs``.
    """
    check_tensor(spectrum, "spectrum", min_dim=2)
    n_freqs = model.lobes.shape[0]
    if spectrum.is_complex() or spectrum.shape[-2] != n_freqs:
        raise ValueError(
            f"spectrum: expected a real (..., {n_freqs}, frames) |X|^power for this model, "
            f"got {spectrum.dtype} of shape {tuple(spectrum.shape)}"
        )
    with torch.no_grad():
        band_bins = model.comb.shape[0]
        lead, frames = spectrum.shape[:-2], spectrum.shape[-1]
        band = spectrum[..., :band_bins, :].detach().transpose(-1, -2).reshape(-1, band_bins)
        band = root(band, model.power)
        tiny = torch.finfo(band.dtype).tiny
        peak = band.amax(-1, keepdim=True)
        squeezed = torch.log1p(band / (_COMB_COMPRESSION * peak).clamp(min=tiny))
        score = squeezed @ model.comb
        best = score.argmax(-1, keepdim=True).clamp(1, max(1, score.shape[-1] - 2))
        left, mid, right = (score.gather(-1, (best + d).clamp(0, score.shape[-1] - 1))
                            for d in (-1, 0, 1))  # fmt: skip
        curve = left - 2 * mid + right
        shift = torch.where(curve < 0, (left - right) / (2 * curve).clamp(max=-tiny), 0.0)
        pitch = model.pitches[best] + _COMB_STEP * shift.clamp(-1.0, 1.0)
        per_harmonic = mid[:, 0] / model.harmonics[best[:, 0]].clamp(min=1)
        loudest = squeezed.amax(-1)
        voiced = (per_harmonic > _HARMONIC_VOICING * loudest) | _resolved_voicing(
            squeezed, model, best[:, 0], loudest
        )
        bins = torch.arange(band_bins, dtype=band.dtype, device=band.device)
        multiple = torch.round(bins / pitch)
        weight = band.square() * (multiple >= 1)
        den = (weight * multiple.square()).sum(-1, keepdim=True)
        refined = torch.where(den > 0, (weight * multiple * bins).sum(-1, keepdim=True)
                              / den.clamp(min=tiny), pitch)  # fmt: skip
        return refined[:, 0].reshape(*lead, frames), voiced.reshape(*lead, frames)


def _resolved_voicing(squeezed: Tensor, model: PeakModel, best: Tensor, loudest: Tensor) -> Tensor:
    """:func:`harmonic_pitch`'s second voicing test, per row of ``squeezed`` (frames, band bins)
    with the grid pitch ``best``: over the multiples the mel resolves
    (:attr:`PeakModel.resolved`), the score per multiple exceeds ``_RESOLVED_VOICING`` of the
    row's maximum ``loudest``, and no half-way point exceeds ``_OFF_GRID`` of the higher of the two
    multiples beside it (a partial between them: a chord, not one voice)."""
    kept = model.resolved[best]  # (frames, multiples)
    step = model.pitches[best][:, None]
    multiples = torch.arange(1, kept.shape[-1] + 1, dtype=squeezed.dtype, device=squeezed.device)
    on, half = (_sample(squeezed, (multiples - d) * step) for d in (0.0, 0.5))
    below = torch.cat([on[:, :1], on[:, :-1]], dim=-1)  # the multiple under each half-way point
    score = ((on - half) * kept).sum(-1) / kept.sum(-1).clamp(min=1)
    off_grid = ((half > _OFF_GRID * torch.maximum(on, below)) & (kept > 0)).any(-1)
    return (score > _RESOLVED_VOICING * loudest) & ~off_grid


def _sample(rows: Tensor, where: Tensor) -> Tensor:
    """``rows`` (N, bins) at fractional bins ``where`` (N, M), linearly interpolated (clamped
    to the last bin)."""
    where = where.clamp(0, rows.shape[-1] - 1)
    lo = where.floor().clamp(max=rows.shape[-1] - 2)
    frac = where - lo
    lo = lo.long()
    return rows.gather(-1, lo) * (1 - frac) + rows.gather(-1, lo + 1) * frac


def _harmonic_prior(spectrum: Tensor, model: PeakModel) -> Tensor:
    """The harmonic fit's prior on the lobe weights ``(..., n_lobes, frames)``: 1 in unvoiced
    frames, else ``1e-3 + (1 - 1e-3) exp(-d^2 / (2 HARMONIC_SIGMA^2))`` with ``d`` the distance
    in bins from a lobe's centre to the nearest multiple of the frame's pitch."""
    pitch, voiced = harmonic_pitch(spectrum, model)
    pitch = pitch.unsqueeze(-2)  # (..., 1, frames)
    ratio = model.centres[:, None] / pitch
    distance = (ratio - torch.round(ratio)) * pitch
    prior = torch.exp(-0.5 * (distance / HARMONIC_SIGMA).square())
    prior = _HARMONIC_FLOOR + (1.0 - _HARMONIC_FLOOR) * prior
    return torch.where(voiced.unsqueeze(-2), prior, torch.ones_like(prior))


def _fit_from(weights: Tensor, model: PeakModel) -> PeakFit:
    """The :class:`PeakFit` of the lobe weights ``a`` ``(..., n_lobes, frames)``."""
    spectrum = _lobes_times(weights, model)
    moment = _lobes_times(weights * model.centres[:, None], model)
    bins = torch.arange(spectrum.shape[-2], dtype=spectrum.dtype, device=spectrum.device)
    own = bins[:, None].expand_as(spectrum)
    frequency = torch.where(spectrum > 0, moment / torch.where(spectrum > 0, spectrum, 1), own)
    return PeakFit(spectrum, frequency, _centroid(weights, model, bins, own))


def _lobes_times(x: Tensor, model: PeakModel) -> Tensor:
    """``lobes @ x`` by :attr:`PeakModel.lobe_rows` (the products skip the lobes' zeros)."""
    out = x.new_empty(*x.shape[:-2], model.lobes.shape[0], x.shape[-1])
    for r0, r1, c0, c1 in model.lobe_rows:
        torch.matmul(model.lobes[r0:r1, c0:c1], x[..., c0:c1, :], out=out[..., r0:r1, :])
    return out


def _centroid(weights: Tensor, model: PeakModel, bins: Tensor, own: Tensor) -> Tensor:
    """:attr:`PeakFit.centroid` from the lobe weights ``a`` ``(..., n_lobes, frames)``."""
    mass, moment = weights.clone(), weights * model.centres[:, None]
    total = moment.clone()
    for d in range(1, model.span + 1):  # sums over lobes j - span .. j + span
        mass[..., d:, :] += weights[..., :-d, :]
        mass[..., :-d, :] += weights[..., d:, :]
        total[..., d:, :] += moment[..., :-d, :]
        total[..., :-d, :] += moment[..., d:, :]
    mass, total = mass[..., model.nearest, :], total[..., model.nearest, :]
    inside = ((model.centres[model.nearest] - bins).abs() <= PEAK_STEP / 2)[:, None]
    has_mass = inside & (mass > 0)
    return torch.where(has_mass, total / torch.where(mass > 0, mass, 1), own)


def peak_spectrum(
    mel: Tensor, model: PeakModel, max_iter: int = PEAK_ITERATIONS, sharpen: int = PEAK_SHARPEN
) -> Tensor:
    """``lobes @ a`` with ``a`` the non-negative lobe weights of :func:`peak_fit`: a spectrum
    ``|X|^power`` ``(..., n_freqs, frames)`` made of window lobes whose mel is the linear mel
    ``M`` (:func:`peak_fit`'s ``spectrum``).

    Args:
        mel: Linear mel ``(..., n_mels, frames)``, values >= 0, in the config's power domain.
        model: :func:`peak_model` of the config, in ``mel``'s dtype and device.
        max_iter: Iteration cap of the fit.
        sharpen: Multiplicative steps after it (0: none).
    """
    return peak_fit(mel, model, max_iter, sharpen).spectrum
