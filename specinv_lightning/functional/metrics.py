"""Spectral quality metrics and STFT losses as pure tensor functions.

Every metric is computed **per item** over the last two dims ``(freq, frames)`` (an *item* is one
index of all leading dims) and then reduced with ``reduction="mean"|"sum"|"none"`` over the items;
``"none"`` returns the leading shape. ``lengths`` (one integer per item: the number of valid
frames) masks the padded frames of a batch out of every sum, so a padded batch scores exactly like
its items scored one by one. Lengths larger than the number of frames mean "all frames".

Note on spectral convergence: auraloss (``SpectralConvergenceLoss``) and the multi-resolution STFT
loss compute **one** ratio ``||Y - X||_F / ||Y||_F`` over the whole batch, which weights loud items
more. The metrics here are the **mean of per-item ratios**, so a batch scores like the average of its
utterances, independent of how they were batched. :func:`multi_resolution_stft_loss` keeps the
auraloss convention (it is a training loss and must match auraloss numerically).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig, as_config
from specinv_lightning.functional._checks import (
    check_finite,
    check_mel,
    check_same_shape,
    check_tensor,
    check_waveform,
)
from specinv_lightning.functional.compression import decompress_checked
from specinv_lightning.functional.filterbank import mel_filterbank
from specinv_lightning.functional.stft import istft, make_window, spectrogram_magnitude, stft

__all__ = [
    "REDUCTIONS",
    "frame_mask",
    "spectral_convergence",
    "log_spectral_distance",
    "mel_consistency",
    "spectral_inconsistency",
    "stft_magnitude",
    "stft_loss",
    "multi_resolution_stft_loss",
]

REDUCTIONS = ("mean", "sum", "none")
LSD_EPS = 1e-10
SC_MAX = 1e12  # spectral convergence against an all-zero (silent) target item


# ---------------------------------------------------------------------------------------- helpers
def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")


def _work(x: Tensor) -> Tensor:
    """The metrics compute in float64: no overflow for half-precision inputs or large values."""
    return x.to(torch.complex128 if x.is_complex() else torch.float64)


def _out_dtype(x: Tensor) -> torch.dtype:
    """float32 for float16/bfloat16/float32 inputs, float64 for float64."""
    return torch.float64 if x.dtype in (torch.float64, torch.complex128) else torch.float32


def _reduce(values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _check_pair(preds: object, target: object) -> tuple[Tensor, Tensor]:
    preds = check_tensor(preds, "preds", min_dim=2)
    target = check_tensor(target, "target", min_dim=2)
    check_same_shape(preds, target, "preds", "target")
    if preds.dtype != target.dtype:
        raise ValueError(
            f"preds and target: expected the same dtype, got {preds.dtype} and {target.dtype}"
        )
    if preds.device != target.device:
        raise ValueError(
            f"preds and target: expected the same device, got {preds.device} and {target.device}"
        )
    check_finite(preds, "preds")
    check_finite(target, "target")
    return preds, target


def frame_mask(
    lengths: Tensor | Sequence[int] | None,
    batch_shape: torch.Size | tuple[int, ...],
    num_frames: int,
    device: torch.device | str | None = None,
) -> Tensor | None:
    """Boolean mask ``(*batch_shape, 1, num_frames)`` of the valid frames, or ``None``.

    Args:
        lengths: Valid frames per item, shape ``batch_shape`` or ``(prod(batch_shape),)``;
            integers >= 1 (values above ``num_frames`` mean all frames).
        batch_shape: Leading shape of the scored tensors.
        num_frames: Number of frames (last dim).
        device: Device of the mask.
    """
    if lengths is None:
        return None
    if not isinstance(lengths, Tensor):
        lengths = torch.as_tensor(lengths)
    n_items = math.prod(batch_shape)
    if lengths.numel() != n_items:
        raise ValueError(
            f"lengths: expected one length per item ({n_items} items for leading shape"
            f" {tuple(batch_shape)}), got shape {tuple(lengths.shape)}"
        )
    if lengths.is_complex() or (
        lengths.is_floating_point() and not bool((lengths == lengths.round()).all())
    ):
        raise ValueError(f"lengths: expected integer frame counts, got {lengths}")
    lengths = lengths.reshape(-1).to(device=device, dtype=torch.long)
    if bool((lengths < 1).any()):
        raise ValueError(f"lengths: expected values >= 1 (valid frames per item), got {lengths}")
    lengths = lengths.clamp(max=num_frames)
    mask = torch.arange(num_frames, device=device) < lengths[:, None]
    return mask.reshape(*batch_shape, 1, num_frames)


def _sc_per_item(preds: Tensor, target: Tensor, mask: Tensor | None, db: bool) -> Tensor:
    diff = preds - target
    if mask is not None:
        m = mask.to(diff.real.dtype)
        diff = diff * m
        target = target * m
    num = torch.linalg.vector_norm(diff, dim=(-2, -1))
    den = torch.linalg.vector_norm(target, dim=(-2, -1))
    tiny = torch.finfo(num.dtype).tiny
    # an all-zero target bounds the ratio at SC_MAX (+240 dB) instead of dividing by zero
    ratio = num / torch.maximum(den, num / SC_MAX).clamp(min=tiny)
    if db:
        return 20.0 * torch.log10(ratio.clamp(min=tiny))
    return ratio


# ---------------------------------------------------------------------------------------- metrics
def spectral_convergence(
    preds: Tensor,
    target: Tensor,
    db: bool = False,
    reduction: str = "mean",
    lengths: Tensor | Sequence[int] | None = None,
) -> Tensor:
    r"""Spectral convergence, per item: :math:`\|P - T\|_F / \|T\|_F` over ``(freq, frames)``.

    With ``db=True`` each item's ratio is turned into :math:`20 \log_{10}(\cdot)` *before* the
    reduction (the mean of per-item dB values). Unlike auraloss, which computes one ratio over the
    whole batch, this is the mean of per-item ratios. An all-zero target item scores at most
    ``SC_MAX = 1e12`` (+240 dB), a finite "as wrong as it gets", instead of inf. The sums run in
    float64, so float16/bfloat16 inputs and large float32 values do not overflow.

    Args:
        preds: Real magnitudes or complex spectrograms ``(..., freq, frames)``.
        target: Same shape, dtype and device as ``preds``.
        db: Return ``20 log10`` of each item's ratio.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (leading shape) over the items.
        lengths: Optional valid frames per item (see :func:`frame_mask`).

    Returns:
        Scalar, or the per-item values of shape ``preds.shape[:-2]`` for ``reduction="none"``.

    Example:
        >>> import torch
        >>> target = torch.ones(2, 3, 4)
        >>> preds = torch.stack([torch.ones(3, 4), torch.zeros(3, 4)])
        >>> spectral_convergence(preds, target, reduction="none")
        tensor([0., 1.])
        >>> spectral_convergence(1.1 * target, target, db=True)
        tensor(-20.0000)
    """
    _check_reduction(reduction)
    preds, target = _check_pair(preds, target)
    mask = frame_mask(lengths, preds.shape[:-2], preds.shape[-1], preds.device)
    values = _sc_per_item(_work(preds), _work(target), mask, db)
    return _reduce(values, reduction).to(_out_dtype(preds))


def log_spectral_distance(
    preds: Tensor,
    target: Tensor,
    reduction: str = "mean",
    lengths: Tensor | Sequence[int] | None = None,
    eps: float = LSD_EPS,
) -> Tensor:
    r"""Log-spectral distance in dB, per item.

    For magnitudes :math:`P, T` (``|.|`` is taken for complex input), frequency bin :math:`f` and
    frame :math:`t`:

    .. math::

        D_{f,t} = 10 \log_{10} \frac{P_{f,t}^2 + \epsilon}{T_{f,t}^2 + \epsilon}, \qquad
        \mathrm{LSD}_t = \sqrt{\tfrac{1}{F} \textstyle\sum_f D_{f,t}^2}, \qquad
        \mathrm{LSD} = \tfrac{1}{N} \textstyle\sum_{t < N} \mathrm{LSD}_t

    i.e. the per-frame RMS over frequency of the dB difference, averaged over the ``N`` valid
    frames of the item (the definition used in the speech super-resolution literature, e.g.
    Kuleshov et al. 2017, NU-Wave, AudioSR). ``eps`` (default ``1e-10``, a -100 dB power floor)
    keeps silent bins finite; pass magnitudes, not powers.

    Args:
        preds: Real magnitudes (>= 0) or complex spectrograms ``(..., freq, frames)``.
        target: Same shape, (real) dtype and device as ``preds``; real and complex may be mixed.
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the items.
        lengths: Optional valid frames per item.
        eps: Power floor added to both ``P^2`` and ``T^2``.

    Example:
        >>> import torch
        >>> target = torch.ones(1, 5, 3)
        >>> log_spectral_distance(10 * target, target)  # every bin is 20 dB off
        tensor(20.)
    """
    _check_reduction(reduction)
    if isinstance(preds, Tensor) and preds.is_complex():
        preds = preds.abs()
    if isinstance(target, Tensor) and target.is_complex():
        target = target.abs()
    preds, target = _check_pair(preds, target)
    if not eps > 0:
        raise ValueError(f"eps: expected a value > 0, got {eps}")
    for name, x in (("preds", preds), ("target", target)):
        if bool((x < 0).any()):
            raise ValueError(f"{name}: expected magnitudes >= 0, got min {float(x.min()):.3g}")
    out_dtype = _out_dtype(preds)
    preds, target = _work(preds), _work(target)
    diff_db = 10.0 * (torch.log10(preds.square() + eps) - torch.log10(target.square() + eps))
    # vector_norm has a finite (zero) gradient at 0, unlike sqrt
    per_frame = torch.linalg.vector_norm(diff_db, dim=-2) / math.sqrt(diff_db.shape[-2])
    mask = frame_mask(lengths, preds.shape[:-2], preds.shape[-1], preds.device)
    if mask is None:
        per_item = per_frame.mean(dim=-1)
    else:
        m = mask.squeeze(-2).to(per_frame.dtype)
        per_item = (per_frame * m).sum(dim=-1) / m.sum(dim=-1)
    return _reduce(per_item, reduction).to(out_dtype)


def _waveform_linear_mel(
    waveform: Tensor, config: MelConfig, fb: Tensor | None, window: Tensor | None
) -> Tensor:
    dtype, device = waveform.dtype, waveform.device
    fb = mel_filterbank(config, dtype, device) if fb is None else fb.to(dtype=dtype, device=device)
    window = (
        make_window(config, dtype, device)
        if window is None
        else window.to(dtype=dtype, device=device)
    )
    mag = spectrogram_magnitude(stft(waveform, config, window=window), config.power, config.mag_eps)
    return torch.matmul(fb, mag)


def mel_consistency(
    waveform: Tensor,
    mel: Tensor,
    config: MelConfig | str | Mapping[str, Any],
    reduction: str = "mean",
    lengths: Tensor | Sequence[int] | None = None,
    fb: Tensor | None = None,
    window: Tensor | None = None,
) -> Tensor:
    r"""How well a waveform reproduces a reference mel: spectral convergence in dB, per item.

    ``mel`` is the reference as the model outputs it (compressed per ``config``); it is
    decompressed to the linear mel :math:`M`. The waveform's linear mel
    :math:`\hat M = F\,|STFT(x)|^p` is computed with the config's forward transform *without*
    compression, and the score is :math:`20 \log_{10}(\|\hat M - M\|_F / \|M\|_F)` per item
    (lower is better; -25 dB means the waveform's mel is within 5.6 % of the reference).

    Frame counts: the waveform yields ``config.num_frames(samples)`` frames; both are trimmed to
    the smaller count, and a difference of more than one frame raises ``ValueError`` (the
    waveform does not belong to this mel).

    Args:
        waveform: Real ``(..., samples)``.
        mel: Compressed reference mel ``(..., n_mels, frames)`` with the same leading shape.
        config: The transform (``MelConfig``, preset name or dict).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the items.
        lengths: Optional valid mel frames per item.
        fb: Optional cached :func:`mel_filterbank` (any dtype/device; cast to the waveform's).
        window: Optional cached :func:`make_window`.

    Example:
        >>> import torch
        >>> from specinv_lightning import MelConfig, MelSpectrogram
        >>> cfg = MelConfig.from_preset("hifigan")
        >>> x = torch.randn(2, 22050)
        >>> float(mel_consistency(x, MelSpectrogram(cfg)(x), cfg)) < -100  # its own mel
        True
    """
    _check_reduction(reduction)
    config = as_config(config)
    waveform = check_waveform(waveform, config.min_samples, "waveform")
    mel = check_mel(mel, config, "mel")
    if waveform.shape[:-1] != mel.shape[:-2]:
        raise ValueError(
            f"waveform and mel: expected the same leading shape, got waveform {tuple(waveform.shape)}"
            f" (..., samples) and mel {tuple(mel.shape)} (..., n_mels, frames)"
        )
    if waveform.dtype != mel.dtype or waveform.device != mel.device:
        raise ValueError(
            f"waveform and mel: expected the same dtype and device, got {waveform.dtype} on"
            f" {waveform.device} and {mel.dtype} on {mel.device}"
        )
    wave_frames = config.num_frames(waveform.shape[-1])
    mel_frames = mel.shape[-1]
    if abs(wave_frames - mel_frames) > 1:
        raise ValueError(
            f"waveform and mel: a waveform of {waveform.shape[-1]} samples gives {wave_frames} frames"
            f" with this config, but mel has {mel_frames} frames (at most one frame of difference"
            " is allowed)"
        )
    ref = decompress_checked(mel, config, "mel")  # rejects what the inverter rejects
    lin = _waveform_linear_mel(_work(waveform), config, fb, window)
    n = min(wave_frames, mel_frames)
    lin, ref = lin[..., :n], _work(ref[..., :n])
    mask = frame_mask(lengths, ref.shape[:-2], n, ref.device)
    values = _sc_per_item(lin, ref, mask, db=True)
    return _reduce(values, reduction).to(_out_dtype(mel))


def spectral_inconsistency(
    spec: Tensor,
    config: MelConfig | str | Mapping[str, Any],
    reduction: str = "mean",
    lengths: Tensor | Sequence[int] | None = None,
    window: Tensor | None = None,
) -> Tensor:
    r"""Distance of a complex spectrogram from the set of consistent STFTs, in dB per item.

    :math:`20 \log_{10}(\|STFT(iSTFT(X)) - X\|_F / \|X\|_F)`, where the projection uses the
    config's window, hop and FFT size as a *frame operator*: the least-squares overlap-add of all
    frames into one signal of ``n_fft + hop * (frames - 1)`` samples, re-framed without padding.
    The forward transform's padding (centre/manual reflect) is not enforced, so the STFT of any
    real signal scores about -inf (rounding-limited: below -120 dB in float32, -250 dB in
    float64), and Griffin-Lim lowers the value iteration by iteration. A random spectrogram scores
    a few dB below 0 (about -1 dB at 75 % overlap).

    Args:
        spec: Complex ``(..., n_fft // 2 + 1, frames)``.
        config: The STFT (``MelConfig``, preset name or dict).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` over the items.
        lengths: Optional valid frames per item.
        window: Optional cached :func:`make_window`.

    Example:
        >>> import torch
        >>> from specinv_lightning.functional import stft
        >>> cfg = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
        >>> spec = stft(torch.randn(2, 8000, dtype=torch.float64), cfg)
        >>> float(spectral_inconsistency(spec, cfg)) < -200
        True
        >>> float(spectral_inconsistency(torch.randn_like(spec), cfg)) > -6
        True
    """
    _check_reduction(reduction)
    config = as_config(config)
    spec = check_tensor(spec, "spec", min_dim=2)
    if not spec.is_complex():
        raise ValueError(f"spec: expected a complex spectrogram, got dtype {spec.dtype}")
    if spec.shape[-2] != config.n_freqs:
        raise ValueError(
            f"spec: expected shape (..., n_freqs={config.n_freqs}, frames), got {tuple(spec.shape)}"
        )
    check_finite(spec, "spec")
    out_dtype = _out_dtype(spec.real)
    spec = _work(spec)
    real = spec.real.dtype
    window = (
        make_window(config, real, spec.device) if window is None else window.to(real, spec.device)
    )
    num_frames = spec.shape[-1]
    frames_only = dataclasses.replace(config, center=False, manual_pad=0)
    full = config.n_fft + config.hop_length * (num_frames - 1)
    wave = istft(spec, frames_only, length=full, window=window)
    proj = stft(wave, frames_only, window=window)
    mask = frame_mask(lengths, spec.shape[:-2], num_frames, spec.device)
    return _reduce(_sc_per_item(proj, spec, mask, db=True), reduction).to(out_dtype)


# ---------------------------------------------------------------------------------------- losses
def stft_magnitude(
    waveform: Tensor, n_fft: int, hop_length: int, win_length: int, window: Tensor, eps: float
) -> Tensor:
    """``sqrt(clamp(|STFT(x)|^2, min=eps))`` of ``(N, samples)`` with a centred reflect STFT.

    Exactly auraloss' ``STFTLoss.stft`` (``torch.stft`` defaults: ``center=True``, reflect padding,
    window zero-padded to ``n_fft``).
    """
    spec = torch.stft(
        waveform,
        n_fft,
        hop_length,
        win_length,
        window,
        center=True,
        pad_mode="reflect",
        return_complex=True,
    )
    return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=eps))


def stft_loss(
    preds: Tensor,
    target: Tensor,
    n_fft: int,
    hop_length: int,
    win_length: int,
    window: Tensor,
    w_sc: float = 1.0,
    w_log_mag: float = 1.0,
    eps: float = 1e-8,
    filterbank: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Single-resolution STFT loss of ``(N, samples)`` waveforms, as auraloss ``STFTLoss``.

    ``sc = ||Y - X||_F / ||Y||_F`` over the whole batch (one ratio), ``log_mag = mean |log X - log Y|``
    with magnitudes from :func:`stft_magnitude` (multiplied by ``filterbank``, ``(bins, n_fft // 2
    + 1)``, when given: auraloss' ``scale="mel"``); returns ``(w_sc * sc + w_log_mag * log_mag, sc,
    log_mag)``. The denominator is never zero because magnitudes are floored at ``sqrt(eps)``.
    """
    x_mag = stft_magnitude(preds, n_fft, hop_length, win_length, window, eps)
    y_mag = stft_magnitude(target, n_fft, hop_length, win_length, window, eps)
    if filterbank is not None:
        fb = filterbank.to(dtype=x_mag.dtype, device=x_mag.device)
        x_mag, y_mag = fb @ x_mag, fb @ y_mag
    sc = torch.linalg.vector_norm(y_mag - x_mag) / torch.linalg.vector_norm(y_mag)
    log_mag = (torch.log(x_mag) - torch.log(y_mag)).abs().mean()
    return w_sc * sc + w_log_mag * log_mag, sc, log_mag


def multi_resolution_stft_loss(
    preds: Tensor,
    target: Tensor,
    fft_sizes: Sequence[int] = (1024, 2048, 512),
    hop_sizes: Sequence[int] = (120, 240, 50),
    win_lengths: Sequence[int] = (600, 1200, 240),
    windows: Sequence[Tensor] | None = None,
    w_sc: float = 1.0,
    w_log_mag: float = 1.0,
    eps: float = 1e-8,
    filterbanks: Sequence[Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Multi-resolution STFT loss (Yamamoto et al. 2019), numerically equal to auraloss'.

    The mean over resolutions of :func:`stft_loss` (auraloss divides the sum by the number of
    resolutions). ``preds`` and ``target`` are ``(N, samples)``, or any ``(..., samples)`` which is
    flattened to ``(N, samples)``. Returns ``(loss, mean sc, mean log_mag)``.

    Args:
        preds: Predicted waveform.
        target: Target waveform, same shape.
        fft_sizes: FFT size per resolution.
        hop_sizes: Hop per resolution.
        win_lengths: Window length per resolution (``<= fft size``).
        windows: Optional windows per resolution (default periodic Hann of ``win_length``).
        w_sc: Weight of the spectral-convergence term.
        w_log_mag: Weight of the log-magnitude L1 term.
        eps: Floor of the squared magnitude.
        filterbanks: Optional filterbank per resolution applied to both magnitudes (auraloss'
            ``scale="mel"``), see :func:`stft_loss`.

    Example:
        >>> import torch
        >>> x = torch.randn(2, 8000)
        >>> float(multi_resolution_stft_loss(x, x)[0])
        0.0
    """
    preds = preds.reshape(-1, preds.shape[-1])
    target = target.reshape(-1, target.shape[-1])
    total = sc_total = log_total = preds.new_zeros(())
    for i, (n_fft, hop, win) in enumerate(zip(fft_sizes, hop_sizes, win_lengths, strict=True)):
        if windows is None:
            window = torch.hann_window(win, dtype=preds.dtype, device=preds.device)
        else:
            window = windows[i].to(dtype=preds.dtype, device=preds.device)
        fb = None if filterbanks is None else filterbanks[i]
        loss, sc, log_mag = stft_loss(
            preds, target, n_fft, hop, win, window, w_sc, w_log_mag, eps, filterbank=fb
        )
        total = total + loss
        sc_total = sc_total + sc
        log_total = log_total + log_mag
    n = len(fft_sizes)
    return total / n, sc_total / n, log_total / n
