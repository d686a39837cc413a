"""Phase-gradient heuristic integration (PGHI): a non-iterative initial phase from a magnitude.

References:
    Z. Prusa, P. Balazs and P. L. Sondergaard, "A Noniterative Method for Reconstruction of Phase
    From STFT Magnitude", IEEE/ACM TASLP 25(5), 2017 (PGHI).
    G. T. Beauregard, M. Harish and L. Wyse, "Single Pass Spectrogram Inversion", IEEE DSP 2015
    (SPSI: phase accumulated along spectral peaks, neighbouring bins locked to their peak).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_finite, check_magnitude, check_tensor

__all__ = ["pghi_phase", "GAUSSIAN_EQUIVALENT"]

#: ``gamma / win_length**2`` of the Gaussian ``exp(-pi t^2 / gamma)`` equivalent to each window
#: (ltfat's ``pghi`` constants; the rectangular window falls back to Hann's).
GAUSSIAN_EQUIVALENT = {
    "hann": 0.25645,
    "hamming": 0.29794,
    "blackman": 0.17954,
    "rectangular": 0.25645,
}

_FLOOR = 1e-10  # log floor relative to each item's maximum magnitude


def pghi_phase(
    magnitude: Tensor,
    config: MelConfig,
    window: Tensor | None = None,
    *,
    frequency: Tensor | None = None,
) -> Tensor:
    r"""Initial phase ``(..., n_freqs, frames)`` in radians for a magnitude, by peak-path PGHI.

    PGHI (Prusa, Balazs & Sondergaard 2017) reads the phase gradient off the log-magnitude
    ``l = log(S + 1e-10 max S)`` of a Gaussian-windowed STFT: with hop ``a``, FFT size ``M`` and the
    window's Gaussian equivalent ``gamma`` (:data:`GAUSSIAN_EQUIVALENT` ``* win_length**2``),

    - time direction, per hop: ``tgrad = (a M / gamma) d_k l + 2 pi a k / M``;
    - frequency direction, per bin: ``fgrad = -(gamma / (a M)) d_n l``

    (centred differences; ``d_k l = 0`` at DC and Nyquist, one-sided ``d_n l`` at the first and
    last frame). Instead of PGHI's heap-ordered integration, this variant integrates along spectral
    peaks as SPSI (Beauregard et al. 2015) does: every bin ``k`` of frame ``n`` is owned by the
    peak ``o`` it climbs to (towards its larger neighbour; nearest peak on the other side if none;
    itself in a frame without peaks), and

    ``psi(k, n) = psi(o, n - 1) + (tgrad(o, n) + tgrad(o, n - 1)) / 2 + Phi(k, n) - Phi(o, n)``

    with ``Phi`` the trapezoidal integral of ``fgrad`` over frequency, ``psi = 0`` before frame 0
    and ``tgrad(o, -1) := tgrad(o, 0)``. The recurrence is evaluated by pointer doubling
    (``ceil(log2 frames)`` steps of two gathers, no loop over frames or bins). ``psi`` is the phase
    with the window centred on the time origin; the package's STFT references the phase to the
    frame start with the window centred at ``c = (n_fft - win_length) // 2 + win_length / 2``,
    so the result is ``psi - 2 pi k c / n_fft`` (``-pi k`` for a full-length window), wrapped to
    ``[-pi, pi)``.

    Dependencies: frame ``n``'s phase depends on the magnitude of frames ``0 .. n + 1`` only
    (``d_n l`` at frame ``n`` reads frame ``n + 1``) and on the item's maximum. So appending frames
    after the last frame ``T - 1`` (padding in a batch) leaves frames ``0 .. T - 2`` bit-for-bit
    unchanged as long as the appended frames do not exceed the item's maximum (zeros, silence);
    frame ``T - 1`` changes (its one-sided time difference becomes a centred one). Items of a
    batch are independent. Computed without gradient: it is an initial value.

    Args:
        magnitude: Real STFT magnitude ``(..., n_freqs, frames)``, values >= 0 (not the power).
        config: The STFT the magnitude belongs to (``hop_length``, ``n_fft``, ``win_length``,
            ``window``).
        window: Optional analysis window of ``n_fft`` samples, e.g. a custom one passed to
            :func:`~specinv_lightning.functional.stft`. Its Gaussian equivalent and centre are
            then taken from the moments of ``window**2`` (``gamma = 4 pi var``; within 2 % of
            the tabulated constants for the built-in windows) instead of from ``config.window``.

    Returns:
        Phases in ``[-pi, pi)``, same shape, dtype and device as ``magnitude``, detached.

    Example:
        >>> import torch
        >>> from specinv_lightning import MelConfig
        >>> from specinv_lightning.functional import griffin_lim, stft
        >>> cfg = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
        >>> mag = stft(torch.randn(2, 8000), cfg).abs()
        >>> phase = pghi_phase(mag, cfg)
        >>> phase.shape
        torch.Size([2, 257, 63])
        >>> griffin_lim(mag, cfg, n_iter=4, init=phase).shape
        torch.Size([2, 7936])
    """
    magnitude = check_magnitude(magnitude, config)
    gamma, centre = _window_params(config, window)
    if frequency is not None:
        frequency = check_tensor(frequency, "frequency")
        if frequency.shape != magnitude.shape or frequency.is_complex():
            raise ValueError(
                f"frequency: expected a real tensor of the magnitude's shape"
                f" {tuple(magnitude.shape)}, got {tuple(frequency.shape)} of dtype {frequency.dtype}"
            )
        check_finite(frequency, "frequency")
    with torch.no_grad():
        work_dtype = magnitude.dtype if magnitude.dtype == torch.float64 else torch.float32
        n_freqs, num_frames = magnitude.shape[-2:]
        # frame-major (items, frames, n_freqs): every gather and scan runs over the last dim
        mag = magnitude.detach().reshape(-1, n_freqs, num_frames).transpose(-1, -2)
        logs = _log_magnitude(mag.to(work_dtype).contiguous())
        if frequency is not None:
            frequency = frequency.detach().reshape(-1, n_freqs, num_frames).transpose(-1, -2)
            frequency = frequency.to(work_dtype)
        tgrad, fgrad = _gradients(logs, config, gamma, frequency)
        owner = _owners(logs)
        psi = _follow_owners(_wrap(_increments(tgrad, fgrad, owner)), owner)
        phase = _to_frame_start(psi, centre, config.n_fft)
        phase = phase.transpose(-1, -2).reshape(magnitude.shape)
        return phase.to(magnitude.dtype).detach()


def _window_params(config: MelConfig, window: Tensor | None) -> tuple[float, float]:
    """``(gamma, centre)``: the window's Gaussian-equivalent ``gamma`` and its centre in samples."""
    if window is None:
        length = config.win_length
        centre = (config.n_fft - length) // 2 + length / 2
        return GAUSSIAN_EQUIVALENT[config.window] * length**2, centre
    window = check_tensor(window, "window", min_dim=1)
    if window.is_complex() or window.shape != (config.n_fft,):
        raise ValueError(
            f"window: expected a real tensor of shape (n_fft={config.n_fft},), got"
            f" {tuple(window.shape)} of dtype {window.dtype}"
        )
    check_finite(window, "window")
    energy = window.detach().double().square()
    if not float(energy.sum()) > 0:
        raise ValueError("window: expected a window with non-zero values, got all zeros")
    t = torch.arange(config.n_fft, dtype=torch.float64, device=window.device)
    centre = float((energy * t).sum() / energy.sum())
    variance = float((energy * (t - centre).square()).sum() / energy.sum())
    return 4 * math.pi * max(variance, 1e-12), centre


def _gradients(
    logs: Tensor, config: MelConfig, gamma: float, frequency: Tensor | None
) -> tuple[Tensor, Tensor]:
    """PGHI's ``(tgrad, fgrad)`` of a log-magnitude ``(items, frames, n_freqs)``: the phase
    advance per hop (from ``frequency`` in bins, same layout, when given) and the phase slope per
    bin."""
    hop, n_fft = config.hop_length, config.n_fft
    bins = torch.arange(logs.shape[-1], device=logs.device, dtype=logs.dtype)
    if frequency is None:
        tgrad = (hop * n_fft / gamma) * _centred_diff(logs, -1, edges=False)
        tgrad = tgrad + (2 * math.pi * hop / n_fft) * bins
    else:
        tgrad = (2 * math.pi * hop / n_fft) * frequency
    fgrad = -(gamma / (hop * n_fft)) * _centred_diff(logs, -2, edges=True)
    return tgrad, fgrad


def _to_frame_start(psi: Tensor, centre: float, n_fft: int) -> Tensor:
    """Phases ``psi`` (``(..., n_freqs)`` last) of a window centred on the time origin, referred to
    the frame start (window centre at ``centre`` samples), wrapped to ``[-pi, pi)``."""
    bins = torch.arange(psi.shape[-1], device=psi.device, dtype=psi.dtype)
    return _wrap(psi - (2 * math.pi * centre / n_fft) * bins)


def _log_magnitude(mag: Tensor) -> Tensor:
    """``log(S + 1e-10 max S)`` with the max per item, ``(items, frames, n_freqs)``."""
    peak = mag.amax(dim=(-2, -1), keepdim=True)
    floor = (_FLOOR * peak).clamp(min=torch.finfo(mag.dtype).tiny)
    return torch.log(mag + floor)


def _centred_diff(x: Tensor, dim: int, edges: bool) -> Tensor:
    """``(x[i + 1] - x[i - 1]) / 2`` along ``dim``; at the two ends one-sided differences when
    ``edges`` else 0 (and 0 everywhere when ``dim`` has a single entry)."""
    size = x.shape[dim]
    if size < 2:
        return torch.zeros_like(x)
    inner = (x.narrow(dim, 2, size - 2) - x.narrow(dim, 0, size - 2)) / 2
    if edges:
        first = x.narrow(dim, 1, 1) - x.narrow(dim, 0, 1)
        last = x.narrow(dim, size - 1, 1) - x.narrow(dim, size - 2, 1)
    else:
        first = last = torch.zeros_like(x.narrow(dim, 0, 1))
    return torch.cat([first, inner, last], dim=dim)


def _owners(logs: Tensor) -> Tensor:
    """Index of the peak owning each bin, ``(items, frames, n_freqs)`` int64.

    Peaks are bins strictly above both neighbours (never DC or Nyquist). A bin rising to the right
    (``l(k) < l(k + 1)``) is owned by the nearest peak at or right of it, otherwise by the nearest
    at or left of it; by the nearest on the other side when there is none; by itself in a frame
    without peaks.
    """
    n_freqs = logs.shape[-1]
    # int32 for the searches (half the memory traffic of int64), int64 once at the end for gather
    bins = torch.arange(n_freqs, device=logs.device, dtype=torch.int32)
    centre = logs[..., 1:-1]
    peak = torch.zeros_like(logs, dtype=torch.bool)
    peak[..., 1:-1] = (centre > logs[..., :-2]) & (centre > logs[..., 2:])
    none = torch.tensor(-1, dtype=torch.int32, device=logs.device)
    left = torch.where(peak, bins, none).cummax(dim=-1).values
    right = torch.where(peak.flip(-1), bins, none).cummax(dim=-1).values  # from the top
    right = torch.where(right >= 0, (n_freqs - 1) - right, none).flip(-1)
    rising = torch.zeros_like(peak)
    rising[..., :-1] = logs[..., :-1] < logs[..., 1:]
    first = torch.where(rising, right, left)
    second = torch.where(rising, left, right)
    second = torch.where(second >= 0, second, bins)
    return torch.where(first >= 0, first, second).long()


def _increments(tgrad: Tensor, fgrad: Tensor, owner: Tensor) -> Tensor:
    """``delta(k, n) = (tgrad(o, n) + tgrad(o, n - 1)) / 2 + Phi(k, n) - Phi(o, n)``.

    ``Phi`` is the trapezoidal cumulative integral of ``fgrad`` over frequency (``Phi(0) = 0``);
    ``tgrad(o, -1)`` is taken as ``tgrad(o, 0)``.
    """
    steps = (fgrad[..., :-1] + fgrad[..., 1:]) / 2
    phi = torch.cat([torch.zeros_like(fgrad[..., :1]), steps.cumsum(dim=-1)], dim=-1)
    t_now = tgrad.gather(-1, owner)
    t_prev = torch.cat([t_now[..., :1, :], tgrad[..., :-1, :].gather(-1, owner[..., 1:, :])], -2)
    return (t_now + t_prev) / 2 + phi - phi.gather(-1, owner)


def _follow_owners(delta: Tensor, owner: Tensor) -> Tensor:
    """``psi(k, n) = psi(owner(k, n), n - 1) + delta(k, n)`` with ``psi(., -1) = 0``, all frames.

    Pointer doubling over the frame dim ``-2`` of ``(items, frames, n_freqs)`` tensors: after the
    step of stride ``s``, ``val[n]`` holds the sum of ``delta`` over the ``2 s`` frames
    ``n, n - 1, ...`` of the owner chain starting at ``(k, n)`` (or down to frame 0) and ``ptr[n]``
    the bin that chain reaches in frame ``n - 2 s``. Frames ``n < s`` already sum their whole chain
    and are kept. Both gathers read the values of the previous step. Frame ``n``'s result depends
    only on frames ``0 .. n`` (same arithmetic whatever the number of frames).
    """
    val, ptr = delta.clone(), owner.clone()
    num_frames = delta.shape[-2]
    stride = 1
    while stride < num_frames:
        hop_to = ptr[..., stride:, :]
        reached = val[..., :-stride, :].gather(-1, hop_to)  # copies: read before either write
        next_ptr = ptr[..., :-stride, :].gather(-1, hop_to)
        val[..., stride:, :] += reached
        ptr[..., stride:, :] = next_ptr
        stride *= 2
    return val


def _wrap(angle: Tensor) -> Tensor:
    """Angles wrapped to ``[-pi, pi)``."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
