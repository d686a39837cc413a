"""Linear mel -> linear spectrogram: pseudo-inverse, non-negative least squares, normalised transpose.

All functions work in the config's *power* domain (``|X| ** power``): they take a linear mel
``M = F S`` with ``F`` the ``(n_mels, n_freqs)`` filterbank and return ``S >= 0`` of shape
``(..., n_freqs, frames)``. They are differentiable with respect to ``M``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "filterbank_pinv",
    "filterbank_lipschitz",
    "pinv_spectrum",
    "transpose_spectrum",
    "nnls_spectrum",
    "project_onto_mel",
    "project_onto_mel_",
    "active_bins",
    "filterbank_blocks",
    "BandedFilterbank",
]


def filterbank_pinv(fb: Tensor) -> Tensor:
    """Moore-Penrose pseudo-inverse ``(n_freqs, n_mels)`` of a filterbank, computed in float64.

    Rank-deficient filterbanks (empty filters when ``n_mels`` is large for ``n_fft``) are handled
    by the SVD cut-off of :func:`torch.linalg.pinv`.
    """
    return torch.linalg.pinv(fb.double()).to(fb.dtype)


def filterbank_lipschitz(fb: Tensor) -> float:
    """Largest eigenvalue of ``F^T F`` (step-size bound for projected gradient methods)."""
    return float(torch.linalg.matrix_norm(fb.double(), ord=2) ** 2)


def pinv_spectrum(mel: Tensor, fb_pinv: Tensor) -> Tensor:
    """``clamp(P M, 0)``: the minimum-norm least-squares spectrum, made non-negative."""
    return torch.matmul(fb_pinv, mel).clamp(min=0.0)


def transpose_spectrum(mel: Tensor, fb: Tensor) -> Tensor:
    """``F^T M / (F^T F 1)``: the filterbank transpose normalised so that a flat spectrum is exact."""
    norm = fb.t().matmul(fb.sum(dim=1, keepdim=True))  # (n_freqs, 1) = F^T F 1
    out = torch.matmul(fb.t(), mel)
    return torch.where(
        norm > 0, out / norm.clamp(min=torch.finfo(fb.dtype).tiny), torch.zeros_like(out)
    )


def active_bins(fb: Tensor) -> tuple[int, int]:
    """``(first, last + 1)`` of the frequency bins any filter touches.

    Bins outside (above ``f_max``, below ``f_min``) have zero columns in ``F`` and zero rows in its
    pseudo-inverse, so mel products can skip them exactly.
    """
    used = torch.nonzero(fb.abs().sum(dim=0) > 0).flatten()
    if used.numel() == 0:
        return 0, fb.shape[1]
    return int(used[0]), int(used[-1]) + 1


def project_onto_mel(
    spectrum: Tensor,
    mel: Tensor,
    fb: Tensor,
    fb_pinv: Tensor,
    bins: tuple[int, int] | None = None,
) -> Tensor:
    """``clamp(S + P (M - F S), 0)``: move ``S`` onto ``{S : F S = M}`` (least change), keep it >= 0.

    Args:
        spectrum: ``S >= 0``, ``(..., n_freqs, frames)``.
        mel: ``M``, ``(..., n_mels, frames)``.
        fb: ``F``, ``(n_mels, n_freqs)``.
        fb_pinv: ``P``, ``(n_freqs, n_mels)``.
        bins: Optional :func:`active_bins` of ``fb``; bins outside pass through unchanged (exact,
            since ``F`` and ``P`` vanish there), which saves GEMM work.
    """
    n_freqs, n_mels = spectrum.shape[-2], fb.shape[0]
    lo, hi = (0, n_freqs) if bins is None else bins
    lo -= lo % 16  # keep the GEMM operands' rows aligned
    # frame-major GEMMs: (..., T, F) @ (F, M); a transposed view of a frame-major spectrum is free
    spec_t = spectrum.transpose(-1, -2)
    if mel.shape[:-2] != spectrum.shape[:-2]:  # broadcasting: plain (slower) path
        residual_t = mel.transpose(-1, -2) - torch.matmul(spec_t, fb.t())
        return (spec_t + torch.matmul(residual_t, fb_pinv.t())).clamp(min=0.0).transpose(-1, -2)
    lead = spec_t.shape[:-1]
    flat = spec_t.reshape(-1, n_freqs)
    active = flat[:, lo:hi]
    mel_flat = mel.transpose(-1, -2).reshape(-1, n_mels)
    residual = torch.addmm(mel_flat, active, fb[:, lo:hi].t(), alpha=-1.0)  # M - F S
    updated = torch.addmm(active, residual, fb_pinv[lo:hi].t()).clamp(min=0.0)  # S + P r
    if (lo, hi) != (0, n_freqs):
        updated = torch.cat([flat[:, :lo], updated, flat[:, hi:]], dim=-1)
    return updated.reshape(*lead, n_freqs).transpose(-1, -2)


class BandedFilterbank(NamedTuple):
    """A mel filterbank split into frequency blocks, for products that skip its zeros.

    Each filter covers a contiguous band of bins, so ``F`` is banded: block ``k`` spans bins
    ``bins[k]`` and only the filters ``mels[k]`` touch it. ``gram_pinv = pinv(F F^T)`` gives the
    pseudo-inverse as ``F^T gram_pinv`` (``pinv(F) = F^T pinv(F F^T)`` for any ``F``), so ``P r``
    costs a small ``(n_mels, n_mels)`` product and a banded one instead of a dense
    ``(n_freqs, n_mels)`` one. Built by :func:`filterbank_blocks`.

    Example:
        >>> from specinv_lightning import MelConfig
        >>> from specinv_lightning.functional import mel_filterbank
        >>> fb = mel_filterbank(MelConfig.from_preset("hifigan"), dtype=torch.float64)
        >>> banded = filterbank_blocks(fb)
        >>> len(banded.bins), banded.gram_pinv.shape
        (6, torch.Size([80, 80]))
        >>> bool(torch.allclose(fb.t() @ banded.gram_pinv, filterbank_pinv(fb)))
        True
    """

    fb: Tensor
    gram_pinv: Tensor
    bins: tuple[tuple[int, int], ...]
    mels: tuple[tuple[int, int], ...]

    def to(self, dtype: torch.dtype) -> BandedFilterbank:
        """The same operator in another dtype (the block layout is unchanged)."""
        return self._replace(fb=self.fb.to(dtype), gram_pinv=self.gram_pinv.to(dtype))


def filterbank_blocks(fb: Tensor, block_bins: int = 64) -> BandedFilterbank:
    """:class:`BandedFilterbank` of ``fb`` with blocks of about ``block_bins`` active bins.

    ``gram_pinv`` is computed in float64 (rank-deficient filterbanks are handled by the SVD
    cut-off, as in :func:`filterbank_pinv`).
    """
    lo, hi = active_bins(fb)
    count = max(1, round((hi - lo) / block_bins))
    edges = torch.linspace(lo, hi, count + 1, dtype=torch.float64).round().long().tolist()
    touched = fb != 0
    bins, mels = [], []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        rows = torch.nonzero(touched[:, a:b].any(dim=1)).flatten()
        if b > a and rows.numel():
            bins.append((a, b))
            mels.append((int(rows[0]), int(rows[-1]) + 1))
    fb64 = fb.double()
    gram_pinv = torch.linalg.pinv(fb64 @ fb64.t()).to(fb.dtype)
    return BandedFilterbank(fb, gram_pinv, tuple(bins), tuple(mels))


def project_onto_mel_(
    spectrum: Tensor,
    mel: Tensor,
    fb: Tensor,
    fb_pinv: Tensor,
    bins: tuple[int, int] | None = None,
    banded: BandedFilterbank | None = None,
) -> Tensor:
    """In-place :func:`project_onto_mel` (no autograd): overwrites ``spectrum`` and returns it.

    Works without temporaries the size of the spectrum when ``spectrum`` is frame-major (its
    ``transpose(-1, -2)`` is contiguous, as in phase retrieval) and ``mel`` has its batch shape;
    otherwise it computes :func:`project_onto_mel` and copies the result in. With ``banded``
    (:func:`filterbank_blocks` of ``fb``, same dtype) the products skip the filterbank's zeros.
    """
    spec_t = spectrum.transpose(-1, -2)
    if mel.shape[:-2] != spectrum.shape[:-2] or not spec_t.is_contiguous():
        return spectrum.copy_(project_onto_mel(spectrum, mel, fb, fb_pinv, bins))
    n_freqs, n_mels = spectrum.shape[-2], fb.shape[0]
    flat = spec_t.reshape(-1, n_freqs)
    mel_flat = mel.transpose(-1, -2).reshape(-1, n_mels)
    if banded is not None:
        residual = mel_flat.clone()
        for (a, b), (m0, m1) in zip(banded.bins, banded.mels, strict=True):  # M - F S
            residual[:, m0:m1].addmm_(flat[:, a:b], banded.fb[m0:m1, a:b].t(), alpha=-1.0)
        coeffs = residual @ banded.gram_pinv  # P r = F^T pinv(F F^T) r (gram_pinv is symmetric)
        for (a, b), (m0, m1) in zip(banded.bins, banded.mels, strict=True):
            flat[:, a:b].addmm_(coeffs[:, m0:m1], banded.fb[m0:m1, a:b]).clamp_(min=0.0)
        return spectrum
    lo, hi = (0, n_freqs) if bins is None else bins
    lo -= lo % 16
    active = flat[:, lo:hi]
    residual = torch.addmm(mel_flat, active, fb[:, lo:hi].t(), alpha=-1.0)  # M - F S
    active.addmm_(residual, fb_pinv[lo:hi].t()).clamp_(min=0.0)  # S + P r, >= 0
    return spectrum


def nnls_spectrum(
    mel: Tensor,
    fb: Tensor,
    fb_pinv: Tensor | None = None,
    max_iter: int = 300,
    tol: float = 1e-4,
    lipschitz: float | None = None,
    check_every: int = 10,
) -> Tensor:
    """Non-negative least squares ``argmin_{S >= 0} ||F S - M||_F`` by FISTA on the device.

    Warm-started from :func:`pinv_spectrum`, batched over every leading dim and frame. Stops when
    the relative mel residual ``||F S - M|| / ||M||`` of every item improves by less than ``tol``
    between two checks (every ``check_every`` iterations), or after ``max_iter`` iterations.
    Unrolled, so it is differentiable with respect to ``mel``.

    Args:
        mel: Linear mel ``(..., n_mels, frames)``, values >= 0.
        fb: Filterbank ``(n_mels, n_freqs)``.
        fb_pinv: Cached :func:`filterbank_pinv` (computed if missing).
        max_iter: Iteration cap.
        tol: Stop when the relative residual improves by less than this between checks.
        lipschitz: Cached :func:`filterbank_lipschitz` (computed if missing).
        check_every: Iterations between convergence checks (each check synchronises the device).
    """
    if fb_pinv is None:
        fb_pinv = filterbank_pinv(fb)
    if lipschitz is None:
        lipschitz = filterbank_lipschitz(fb)
    step = 1.0 / lipschitz
    fbt = fb.t()
    x = pinv_spectrum(mel, fb_pinv)
    y = x
    t = 1.0
    mel_norm = torch.linalg.vector_norm(mel, dim=(-2, -1)).clamp(min=torch.finfo(mel.dtype).tiny)
    prev = None
    for k in range(1, max_iter + 1):
        grad = torch.matmul(fbt, torch.matmul(fb, y) - mel)
        x_new = (y - step * grad).clamp(min=0.0)
        t_new = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
        y = x_new + ((t - 1.0) / t_new) * (x_new - x)
        x, t = x_new, t_new
        if k % check_every == 0 or k == max_iter:
            with torch.no_grad():
                res = torch.linalg.vector_norm(torch.matmul(fb, x) - mel, dim=(-2, -1)) / mel_norm
                if prev is not None and bool(((prev - res) <= tol).all()):
                    break
                prev = res
    return x
