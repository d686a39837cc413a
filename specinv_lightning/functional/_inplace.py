"""The no-autograd engine's in-place operators (private): they write into preallocated buffers.

Each one computes exactly what a public, out-of-place function computes (the tests check it):
:func:`project_consistent_` is ``STFT(iSTFT(.))``, :func:`project_onto_mel_` is
:func:`~specinv_lightning.functional.project_onto_mel` and :func:`rescale_onto_mel_` is
:func:`~specinv_lightning.functional.rescale_onto_mel`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._frames import StftPlan
from specinv_lightning.functional.magnitude import (
    _rescale_floor,
    _rescale_weights,
    project_onto_mel,
    rescale_onto_mel,
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


def supports_inplace_projection(config: MelConfig, num_frames: int) -> bool:
    """Whether :func:`project_consistent_` handles this config's padding for ``num_frames`` frames.

    Centred STFTs (even ``n_fft``) with any ``pad_mode`` and uncentred ones with or without
    ``manual_pad``; not the combination of centring and ``manual_pad``, nor signals too short to pad.
    """
    if config.center and (config.manual_pad or config.n_fft % 2):
        return False
    pad = config.n_fft // 2 if config.center else config.manual_pad
    return pad == 0 or config.num_samples(num_frames) > pad


def _pad_in_place(signal: Tensor, pad: int, natural: int, mode: str) -> None:
    """Overwrite the ``pad`` samples on each side of ``signal[:, pad : pad + natural]`` as
    ``F.pad(..., mode=mode)`` would fill them."""
    if pad == 0:
        return
    end = pad + natural
    if mode == "reflect":
        signal[:, :pad] = signal[:, pad + 1 : 2 * pad + 1].flip(-1)
        signal[:, end:] = signal[:, natural - 1 : end - 1].flip(-1)
    elif mode == "constant":
        signal[:, :pad] = 0.0
        signal[:, end:] = 0.0
    elif mode == "replicate":
        signal[:, :pad] = signal[:, pad : pad + 1]
        signal[:, end:] = signal[:, end - 1 : end]
    else:  # circular
        signal[:, :pad] = signal[:, natural:end]
        signal[:, end:] = signal[:, pad : 2 * pad]


def project_consistent_(
    spec: Tensor,
    config: MelConfig,
    plan: StftPlan,
    out: Tensor,
    signal: Tensor,
) -> Tensor:
    """``out <- STFT(iSTFT(spec))`` (the projection onto consistent spectrograms) without allocating.

    The no-autograd fast path of phase retrieval: the same arithmetic as
    ``stft_frames(istft_frames(spec, ...), ...)``, written into preallocated buffers, with the
    synthesis window folded into the overlap-add and the padding of the forward transform filled
    in place. Requires :func:`supports_inplace_projection`.

    Args:
        spec: Frame-major complex ``(batch, frames, n_freqs)``.
        config: The transform.
        plan: :func:`make_plan` for this number of frames.
        out: Complex ``(batch, frames, n_freqs)`` receiving the result (not ``spec``).
        signal: Real scratch ``(batch, ceil(n_fft / hop) * hop + hop * (frames - 1))``.
    """
    batch, num_frames, _ = spec.shape
    n_fft, hop = config.n_fft, config.hop_length
    segments = -(-n_fft // hop)
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)  # (out= would cost an extra copy here)
    # overlap-add of the windowed frames: one strided multiply-add per frame segment
    rows = signal.view(batch, num_frames + segments - 1, hop)
    torch.mul(frames[:, :, :hop], plan.synthesis[:hop], out=rows[:, :num_frames])
    rows[:, num_frames:].zero_()
    for r in range(1, segments):
        lo, hi = r * hop, min(n_fft, (r + 1) * hop)
        rows[:, r : r + num_frames, : hi - lo].addcmul_(frames[:, :, lo:hi], plan.synthesis[lo:hi])
    total = n_fft + hop * (num_frames - 1)
    used = signal[:, :total]
    used.mul_(plan.inv_envelope)
    pad = n_fft // 2 if config.center else config.manual_pad
    mode = config.pad_mode if config.center else "reflect"
    _pad_in_place(used, pad, config.num_samples(num_frames), mode)
    torch.mul(used.unfold(-1, n_fft, hop), plan.analysis, out=frames)
    return torch.fft.rfft(frames, dim=-1, out=out)


class BandedFilterbank(NamedTuple):
    """A mel filterbank split into frequency blocks, for products that skip its zeros.

    Each filter covers a contiguous band of bins, so ``F`` is banded: block ``k`` spans bins
    ``bins[k]`` and only the filters ``mels[k]`` touch it. ``gram_pinv = pinv(F F^T)`` gives the
    pseudo-inverse as ``F^T gram_pinv`` (``pinv(F) = F^T pinv(F F^T)`` for any ``F``), so ``P r``
    costs a small ``(n_mels, n_mels)`` product and a banded one instead of a dense
    ``(n_freqs, n_mels)`` one. Built by :func:`filterbank_blocks`.

    Example:
        >>> from specinv_lightning import MelConfig
        >>> from specinv_lightning.functional import filterbank_pinv, mel_filterbank
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


def rescale_onto_mel_(
    spectrum: Tensor, mel: Tensor, banded: BandedFilterbank, sweeps: int = 3
) -> Tensor:
    """In-place :func:`rescale_onto_mel` (no autograd): overwrites ``spectrum`` and returns it.

    With a frame-major ``spectrum`` and ``mel`` of its batch shape, the products go block by
    block over ``banded`` and the only temporaries are mel-sized or block-sized; otherwise it
    computes :func:`rescale_onto_mel` and copies the result in.
    """
    spec_t = spectrum.transpose(-1, -2)
    if mel.shape[:-2] != spectrum.shape[:-2] or not spec_t.is_contiguous():
        return spectrum.copy_(rescale_onto_mel(spectrum, mel, banded.fb, sweeps))
    fb, (n_freqs, frames), n_mels = banded.fb, spectrum.shape[-2:], banded.fb.shape[0]
    inv_norm, keep = _rescale_weights(fb)
    flat = spec_t.reshape(-1, n_freqs)
    mel_flat = mel.transpose(-1, -2).reshape(-1, n_mels)
    peak = mel.amax(dim=(-2, -1)).flatten() if mel.numel() else mel.new_zeros(len(flat) // frames)
    floor = _rescale_floor(peak).repeat_interleave(frames).unsqueeze(-1)
    est = mel_flat.new_empty(mel_flat.shape)
    for _ in range(sweeps):
        est.zero_()
        for (a, b), (m0, m1) in zip(banded.bins, banded.mels, strict=True):  # F S
            est[:, m0:m1].addmm_(flat[:, a:b], fb[m0:m1, a:b].t())
        ratio = torch.where(est > 0, mel_flat / torch.maximum(est, floor), 1.0)
        for (a, b), (m0, m1) in zip(banded.bins, banded.mels, strict=True):
            flat[:, a:b].mul_(
                (ratio[:, m0:m1] @ fb[m0:m1, a:b]).mul_(inv_norm[a:b]).add_(keep[a:b])
            )
    return spectrum
