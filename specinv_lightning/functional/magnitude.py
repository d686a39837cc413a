"""Linear mel -> linear spectrogram: pseudo-inverse, non-negative least squares, normalised transpose.

All functions work in the config's *power* domain (``|X| ** power``): they take a linear mel
``M = F S`` with ``F`` the ``(n_mels, n_freqs)`` filterbank and return ``S >= 0`` of shape
``(..., n_freqs, frames)``. They are differentiable with respect to ``M``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "filterbank_pinv",
    "filterbank_lipschitz",
    "pinv_spectrum",
    "transpose_spectrum",
    "nnls_spectrum",
    "project_onto_mel",
    "rescale_onto_mel",
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
        bins: Optional ``(first, last + 1)`` of the bins any filter touches; bins outside pass
            through unchanged (exact, since ``F`` and ``P`` vanish there), which saves GEMM work.
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


def root(spectrum: Tensor, power: float, floor: float = 0.0) -> Tensor:
    """``|X|`` from ``|X|^power`` (power 1 or 2); for power 2 the values are clamped at ``floor``
    first (a positive floor keeps the gradient of the root finite)."""
    return spectrum.clamp(min=floor).sqrt() if power == 2.0 else spectrum


def _rescale_weights(fb: Tensor) -> tuple[Tensor, Tensor]:
    """``(1 / F^T 1, [F^T 1 == 0])`` per bin (0 where no filter covers it; those bins keep factor 1)."""
    norm = fb.sum(dim=0)
    inv_norm = torch.where(norm > 0, 1.0 / norm.clamp(min=torch.finfo(fb.dtype).tiny), 0.0)
    return inv_norm, (norm <= 0).to(fb.dtype)


def _rescale_floor(peak: Tensor) -> Tensor:
    """Floor of ``F S`` for an item whose loudest mel value is ``peak``: 120 dB under it, and high
    enough that ``1 / floor^2`` (in the gradient of ``M / F S``) stays finite."""
    return (peak * 1e-12).clamp(min=torch.finfo(peak.dtype).tiny ** 0.5)


def rescale_onto_mel(spectrum: Tensor, mel: Tensor, fb: Tensor, sweeps: int = 3) -> Tensor:
    """``S <- S * F^T (M / F S) / F^T 1``, ``sweeps`` times: multiplicative steps towards ``F S = M``.

    The Richardson-Lucy (KL-divergence NMF) update with ``F`` fixed: each bin is scaled by the
    filter-weighted mean ratio of the reference mel to the spectrum's own mel. It keeps
    ``S >= 0`` without clipping and keeps the shape of ``S`` inside each filter; bins that no
    filter touches, and bands whose mel is zero in ``S``, pass through unchanged. Phase retrieval
    of power-spectrum (``power=2``) mels takes this step (:class:`MelConstraint`): there the
    additive :func:`project_onto_mel` clips much of its correction away and stalls.

    Args:
        spectrum: ``S >= 0``, ``(..., n_freqs, frames)``.
        mel: ``M >= 0``, ``(..., n_mels, frames)``.
        fb: ``F``, ``(n_mels, n_freqs)``, non-negative.
        sweeps: Number of updates (each two products with ``F``).
    """
    inv_norm, keep = (w.unsqueeze(-1) for w in _rescale_weights(fb))
    floor = _rescale_floor(mel.detach().amax(dim=(-2, -1), keepdim=True))
    for _ in range(sweeps):
        est = torch.matmul(fb, spectrum)
        ratio = torch.where(est > 0, mel / torch.maximum(est, floor), torch.ones_like(est))
        spectrum = spectrum * (torch.matmul(fb.t(), ratio) * inv_norm + keep)
    return spectrum


def nnls_spectrum(
    mel: Tensor,
    fb: Tensor,
    fb_pinv: Tensor | None = None,
    max_iter: int = 300,
    tol: float | None = 1e-4,
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
        tol: Stop when the relative residual improves by less than this between checks (for
            every item of the batch, so the iterations an item gets depend on its batch);
            ``None``: always ``max_iter`` iterations (batch-independent results).
        lipschitz: Cached :func:`filterbank_lipschitz` (computed if missing).
        check_every: Iterations between convergence checks (each check synchronises the device).
    """
    if fb_pinv is None:
        fb_pinv = filterbank_pinv(fb)
    if lipschitz is None:
        lipschitz = filterbank_lipschitz(fb)
    stalled = _Stall(mel, fb, tol)
    x = pinv_spectrum(mel, fb_pinv)
    if torch.is_grad_enabled() and (mel.requires_grad or fb.requires_grad):
        return _fista(x, mel, fb, 1.0 / lipschitz, max_iter, check_every, stalled)
    with torch.no_grad():  # no gradient wanted: the same iterations in place, without allocations
        return _fista_(x, mel, fb, 1.0 / lipschitz, max_iter, check_every, stalled)


class _Stall:
    """True once the relative mel residual of every item improves by ``tol`` or less between
    two calls (each call synchronises the device)."""

    def __init__(self, mel: Tensor, fb: Tensor, tol: float | None) -> None:
        self.mel, self.fb, self.tol, self.prev = mel, fb, tol, None
        tiny = torch.finfo(mel.dtype).tiny
        self.norm = torch.linalg.vector_norm(mel.detach(), dim=(-2, -1)).clamp(min=tiny)

    def __call__(self, x: Tensor) -> bool:
        if self.tol is None:  # a fixed number of iterations
            return False
        with torch.no_grad():
            res = torch.linalg.vector_norm(torch.matmul(self.fb, x) - self.mel, dim=(-2, -1))
            res = res / self.norm
            done = self.prev is not None and bool(((self.prev - res) <= self.tol).all())
            self.prev = res
            return done


def _momentum(t: float) -> tuple[float, float]:
    """FISTA's next ``t`` and extrapolation weight ``(t - 1) / t_next``."""
    t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
    return t_next, (t - 1.0) / t_next


def _fista(
    x: Tensor, mel: Tensor, fb: Tensor, step: float, max_iter: int, every: int, stalled: _Stall
) -> Tensor:
    """Projected FISTA from ``x``, out of place (differentiable)."""
    fbt, y, t = fb.t(), x, 1.0
    for k in range(1, max_iter + 1):
        x_new = (y - step * torch.matmul(fbt, torch.matmul(fb, y) - mel)).clamp(min=0.0)
        t, weight = _momentum(t)
        y = x_new + weight * (x_new - x)
        x = x_new
        if (k % every == 0 or k == max_iter) and stalled(x):
            break
    return x


def _fista_(
    x: Tensor, mel: Tensor, fb: Tensor, step: float, max_iter: int, every: int, stalled: _Stall
) -> Tensor:
    """:func:`_fista` in preallocated buffers (no autograd), with products that skip ``F``'s zeros.

    ``F`` is banded (a filter touches a contiguous run of columns), so both products run on
    blocks: groups of rows against the columns they touch, and blocks of columns against the rows
    touching them.
    """
    rows_by_group, cols_by_block = _bands(fb)
    y, t = x.clone(), 1.0
    x_new = torch.empty_like(x)
    residual = torch.empty(torch.broadcast_shapes(mel.shape, (*x.shape[:-2], *mel.shape[-2:])),
                           dtype=x.dtype, device=x.device)  # fmt: skip
    for k in range(1, max_iter + 1):
        for (r0, r1, c0, c1), block in rows_by_group:  # F y - M
            torch.sub(torch.matmul(block, y[..., c0:c1, :]), mel[..., r0:r1, :],
                      out=residual[..., r0:r1, :])  # fmt: skip
        for (c0, c1, r0, r1), block in cols_by_block:  # y - step F^T (F y - M), clamped at 0
            grad = torch.matmul(block, residual[..., r0:r1, :])
            torch.add(y[..., c0:c1, :], grad, alpha=-step, out=x_new[..., c0:c1, :])
        x_new.clamp_(min=0.0)
        t, weight = _momentum(t)
        torch.lerp(x, x_new, 1.0 + weight, out=y)  # x_new + weight (x_new - x)
        x, x_new = x_new, x
        if (k % every == 0 or k == max_iter) and stalled(x):
            break
    return x


_Band = tuple[tuple[int, int, int, int], Tensor]


def _bands(fb: Tensor, rows: int = 8, cols: int = 64) -> tuple[list[_Band], list[_Band]]:
    """``F``'s nonzero pattern as ``((r0, r1, c0, c1), F[r0:r1, c0:c1])`` row groups and
    ``((c0, c1, r0, r1), F[r0:r1, c0:c1]^T)`` column blocks (empty ones left out)."""
    touched = (fb != 0).cpu()
    n_rows, n_cols = touched.shape
    groups, blocks = [], []
    for r0 in range(0, n_rows, rows):
        r1 = min(n_rows, r0 + rows)
        hit = touched[r0:r1].any(0).nonzero().flatten()
        if hit.numel():
            c0, c1 = int(hit[0]), int(hit[-1]) + 1
            groups.append(((r0, r1, c0, c1), fb[r0:r1, c0:c1].contiguous()))
        else:  # rows of empty filters: their residual is -M
            groups.append(((r0, r1, 0, 1), fb[r0:r1, 0:1].contiguous()))
    for c0 in range(0, n_cols, cols):
        c1 = min(n_cols, c0 + cols)
        hit = touched[:, c0:c1].any(1).nonzero().flatten()
        if hit.numel():
            r0, r1 = int(hit[0]), int(hit[-1]) + 1
            blocks.append(((c0, c1, r0, r1), fb[r0:r1, c0:c1].t().contiguous()))
        else:  # columns no filter sees: no gradient
            blocks.append(((c0, c1, 0, 1), fb[0:1, c0:c1].t().contiguous()))
    return groups, blocks
