"""Training losses: a multi-resolution STFT loss, and waveform supervision through the inversion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import (
    check_finite,
    check_lengths,
    check_mel,
    check_tensor,
)
from specinv_lightning.functional.compression import clamp_to_floor, clamp_to_level, decompress
from specinv_lightning.functional.filterbank import mel_filterbank
from specinv_lightning.functional.metrics import (
    frame_mask,
    multi_resolution_stft_loss,
)
from specinv_lightning.functional.stft import stft
from specinv_lightning.inverse import MelInverter, inverter_for
from specinv_lightning.mel import MelSpectrogram

__all__ = ["MultiResolutionSTFTLoss", "WaveformReconstructionLoss"]

_STFT_WINDOWS = ("hann", "hamming", "blackman", "bartlett", "kaiser")
_INITS = ("random", "zeros", "pghi", "pghi-fast", "target")
_REFERENCES = ("inversion", "target")
_HEADROOM = 1e3  # 60 dB above the target's loudest mel value: the inversion's ceiling


class MultiResolutionSTFTLoss(nn.Module):
    r"""Multi-resolution STFT loss (Yamamoto et al. 2019), numerically equal to auraloss'.

    For each resolution :math:`r` with magnitudes :math:`X_r = \sqrt{\max(|STFT_r(x)|^2,
    \epsilon)}` (centred reflect-padded STFT, periodic window zero-padded to the FFT size):

    .. math::

        L = \frac{1}{R} \sum_r \Big( w_{sc} \frac{\|Y_r - X_r\|_F}{\|Y_r\|_F}
            + w_{log} \,\mathrm{mean}\,|\log X_r - \log Y_r| \Big)

    with one spectral-convergence ratio over the whole batch, exactly as
    ``auraloss.freq.MultiResolutionSTFTLoss`` with the same settings (default resolutions
    ``(1024, 120, 600)``, ``(2048, 240, 1200)``, ``(512, 50, 240)`` as ``(fft, hop, win)``).
    The math lives in :func:`~specinv_lightning.functional.multi_resolution_stft_loss`.

    Inputs: ``input`` and ``target`` of the same shape ``(B, T)`` or ``(B, 1, T)`` (any
    ``(..., T)`` is flattened to ``(N, T)``), with ``T`` larger than half the largest FFT size.

    Args:
        fft_sizes: FFT size per resolution.
        hop_sizes: Hop per resolution.
        win_lengths: Window length per resolution.
        window: ``"hann"`` (default), ``"hamming"``, ``"blackman"``, ``"bartlett"`` or
            ``"kaiser"`` (auraloss' ``"hann_window"`` spelling is accepted too).
        w_sc: Weight of spectral convergence.
        w_log_mag: Weight of the log-magnitude L1 distance.
        eps: Floor of the squared magnitude (keeps logs and gradients finite on silence).
        scale: ``None`` (linear-frequency magnitudes, the default) or ``"mel"``: both magnitudes
            are multiplied by a Slaney mel filterbank of ``n_bins`` bands from 0 Hz to
            ``sample_rate / 2`` (``librosa.filters.mel`` defaults) before both terms, as auraloss'
            ``scale="mel"``.
        n_bins: Mel bands with ``scale="mel"`` (every band must cover an FFT bin at each
            resolution).
        sample_rate: Sample rate in Hz, required with ``scale="mel"``.

    Example:
        >>> import torch
        >>> from specinv_lightning import MultiResolutionSTFTLoss
        >>> loss = MultiResolutionSTFTLoss()
        >>> x = torch.randn(2, 1, 16000)
        >>> float(loss(x, x))
        0.0
        >>> bool(loss(x + 0.1 * torch.randn_like(x), x) > 0)
        True
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (1024, 2048, 512),
        hop_sizes: Sequence[int] = (120, 240, 50),
        win_lengths: Sequence[int] = (600, 1200, 240),
        window: str = "hann",
        w_sc: float = 1.0,
        w_log_mag: float = 1.0,
        eps: float = 1e-8,
        scale: Literal["mel"] | None = None,
        n_bins: int | None = None,
        sample_rate: float | None = None,
    ) -> None:
        super().__init__()
        fft_sizes, hop_sizes, win_lengths = list(fft_sizes), list(hop_sizes), list(win_lengths)
        if not fft_sizes or not len(fft_sizes) == len(hop_sizes) == len(win_lengths):
            raise ValueError(
                "fft_sizes, hop_sizes, win_lengths: expected non-empty lists of the same length, got"
                f" {fft_sizes}, {hop_sizes}, {win_lengths}"
            )
        for n_fft, hop, win in zip(fft_sizes, hop_sizes, win_lengths, strict=True):
            if not (n_fft >= 2 and 1 <= win <= n_fft and hop >= 1):
                raise ValueError(
                    "fft_sizes/hop_sizes/win_lengths: expected n_fft >= 2, 1 <= win_length <= n_fft"
                    f" and hop >= 1, got ({n_fft}, {hop}, {win})"
                )
        name = window.removesuffix("_window")
        if name not in _STFT_WINDOWS:
            raise ValueError(f"window: expected one of {_STFT_WINDOWS}, got {window!r}")
        if not eps > 0:
            raise ValueError(f"eps: expected a value > 0, got {eps}")
        self.fft_sizes, self.hop_sizes, self.win_lengths = fft_sizes, hop_sizes, win_lengths
        self.window = name
        self.w_sc, self.w_log_mag, self.eps = float(w_sc), float(w_log_mag), float(eps)
        window_fn = getattr(torch, f"{name}_window")
        for i, win in enumerate(win_lengths):
            # computed like auraloss (default float32, periodic) so float32 parity is bit-exact
            self.register_buffer(
                f"window_{i}", window_fn(win, dtype=torch.float32), persistent=False
            )
        self.scale, self.n_bins, self.sample_rate = scale, n_bins, sample_rate
        if scale is not None:
            for i, fb in enumerate(_mel_scale_filterbanks(fft_sizes, scale, n_bins, sample_rate)):
                self.register_buffer(f"fb_{i}", fb, persistent=False)

    @property
    def min_samples(self) -> int:
        """Shortest accepted input (reflect padding of half the largest FFT size)."""
        return max(self.fft_sizes) // 2 + 1

    def forward(
        self, input: Tensor, target: Tensor, return_components: bool = False
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Loss between ``input`` and ``target`` waveforms.

        Args:
            input: Predicted waveform ``(B, T)`` or ``(B, 1, T)``.
            target: Target waveform, same shape.
            return_components: Also return ``{"sc": ..., "log_mag": ...}`` (means over
                resolutions, unweighted).
        """
        input = check_tensor(input, "input", min_dim=1)
        target = check_tensor(target, "target", min_dim=1)
        if input.shape != target.shape:
            raise ValueError(
                f"input and target: expected the same shape (B, T) or (B, 1, T), got"
                f" {tuple(input.shape)} and {tuple(target.shape)}"
            )
        if input.is_complex() or input.dtype != target.dtype or input.device != target.device:
            raise ValueError(
                f"input and target: expected real tensors of the same dtype and device, got"
                f" {input.dtype} on {input.device} and {target.dtype} on {target.device}"
            )
        if input.shape[-1] < self.min_samples:
            raise ValueError(
                f"input: expected at least {self.min_samples} samples (half the largest FFT size"
                f" {max(self.fft_sizes)} + 1), got shape {tuple(input.shape)}"
            )
        check_finite(input, "input")
        check_finite(target, "target")
        windows = [getattr(self, f"window_{i}") for i in range(len(self.fft_sizes))]
        loss, sc, log_mag = multi_resolution_stft_loss(
            input,
            target,
            self.fft_sizes,
            self.hop_sizes,
            self.win_lengths,
            windows=windows,
            w_sc=self.w_sc,
            w_log_mag=self.w_log_mag,
            eps=self.eps,
            filterbanks=None
            if self.scale is None
            else [getattr(self, f"fb_{i}") for i in range(len(self.fft_sizes))],
        )
        if return_components:
            return loss, {"sc": sc, "log_mag": log_mag}
        return loss

    def extra_repr(self) -> str:
        res = list(zip(self.fft_sizes, self.hop_sizes, self.win_lengths, strict=True))
        scale = "" if self.scale is None else f", scale={self.scale!r}, n_bins={self.n_bins}"
        return (
            f"resolutions(fft, hop, win)={res}, window={self.window!r}, w_sc={self.w_sc},"
            f" w_log_mag={self.w_log_mag}{scale}"
        )


def _mel_scale_filterbanks(
    fft_sizes: Sequence[int], scale: str | None, n_bins: int | None, sample_rate: float | None
) -> list[Tensor]:
    """One float32 ``(n_bins, n_fft // 2 + 1)`` Slaney mel filterbank (0 Hz to Nyquist) per FFT
    size, checked so that no band is empty (an empty band's log magnitude would be ``-inf``)."""
    if scale != "mel":
        raise ValueError(f"scale: expected None or 'mel', got {scale!r}")
    if sample_rate is None or not sample_rate > 0 or int(sample_rate) != sample_rate:
        raise ValueError(
            f"sample_rate: expected a whole number of Hz > 0 with scale='mel', got {sample_rate}"
        )
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins: expected an integer >= 1 with scale='mel', got {n_bins!r}")
    banks = []
    for n_fft in fft_sizes:
        cfg = MelConfig(
            sample_rate=int(sample_rate),
            n_fft=n_fft,
            n_mels=n_bins,
            f_min=0.0,
            f_max=sample_rate / 2,
            mel_scale="slaney",
            norm="slaney",
        )
        fb = mel_filterbank(cfg, dtype=torch.float32)
        if bool((fb.sum(dim=-1) == 0).any()):
            raise ValueError(
                f"n_bins: {n_bins} mel bands leave some bands empty at FFT size {n_fft} (they would"
                " give log(0)); use fewer bands or larger FFT sizes"
            )
        banks.append(fb)
    return banks


class WaveformReconstructionLoss(nn.Module):
    r"""Supervise the waveform a predicted mel implies, through the differentiable inversion.

    ``forward(mel_pred, target_wave)`` inverts the predicted (compressed) mel with
    :class:`~specinv_lightning.MelInverter` (unrolled Griffin-Lim, differentiable, output length =
    target length) and returns

    .. math::

        L = w_{stft}\, \mathrm{STFTLoss}(\mathrm{inv}(\hat m), r)
            + w_{mel}\, \mathrm{mean}\,|\hat m - \mathrm{mel}(y)|

    where :math:`\hat m` is ``mel_pred``, :math:`y` the target waveform, ``STFTLoss`` is
    ``stft_loss`` (default :class:`MultiResolutionSTFTLoss`), ``mel(y)`` the target's mel computed
    with the same config and compression (masked to the valid frames), and the reference :math:`r`
    is, with ``reference="inversion"`` (default), :math:`\mathrm{inv}(\mathrm{mel}(y))`: the
    target's own mel through the very same inversion (same initial-phase rule, iterations and
    kernels, no gradient), or with ``reference="target"`` the target waveform :math:`y` itself.

    Why the default reference: Griffin-Lim cannot reproduce the target's phase, so
    ``STFTLoss(inv(m), y)`` is not minimal at the true mel (its gradient there is not zero, and
    minimising it tunes the mel to the inverter's trajectory instead of making it invertible).
    Against :math:`\mathrm{inv}(\mathrm{mel}(y))` the waveform term is exactly zero, with a zero
    gradient, at the true mel, and measures how far the prediction's inversion lands from the best
    one a perfect prediction would get.

    Options that matter for training:

    - ``init="pghi-fast"`` (default): the initial phase is computed from the (predicted)
      magnitude, no seed, so there is no single random trajectory to overfit. ``"pghi"`` also
      tries the mel's peak spectrum (better on harmonic sounds, but it costs more than the
      loss's 4 iterations themselves). ``init="target"``: teacher
      forcing, phase retrieval starts from the target's STFT phase (for both ``inv`` calls).
      ``"random"`` (seeded) or ``"zeros"`` otherwise.
    - ``detach_phase=True`` (default): gradients flow only through the magnitudes; through the
      phase path they grow with the unrolled iterations under momentum and point nearly
      orthogonally to the true mel.
    - ``checkpoint=True``: gradient checkpointing of every unrolled iteration (backward recomputes
      each iteration), so activation memory grows only by the few spectrograms carried between
      iterations instead of all intermediates.

    Before the inversion the predicted mel is clamped at the compressed ``log_floor`` (exactly what
    the forward transform does to every real waveform's mel), so predictions below the floor are
    inverted as the floor; their gradient comes from the mel term. It is also clamped 60 dB above
    the target's loudest mel value: no useful prediction is louder, and a wildly loud frame (a
    log-mel of 40 is a 1e17-loud frame) would overflow the STFT loss. So every finite prediction
    gives a finite loss and finite gradients.

    Padded batches: ``lengths`` (valid samples per item) zeroes the samples at and beyond each
    length in both waveforms before the STFT loss (so padding contributes a zero difference), and
    masks the mel L1 to ``config.num_frames(length)`` frames.

    Args:
        config: The mel transform of the model (``MelConfig``, preset name or mapping).
        n_iter: Griffin-Lim iterations.
        mel_consistent: Mel-consistent phase retrieval (see ``MelInverter``).
        checkpoint: Gradient checkpointing of the unrolled iterations.
        stft_loss: Waveform loss ``f(pred (N, T), target (N, T)) -> scalar``; default
            :class:`MultiResolutionSTFTLoss()`.
        mel_weight: Weight of the mel L1 term (0 disables it).
        stft_weight: Weight of the waveform term (0 skips the inversion).
        init: ``"pghi-fast"`` (from the predicted magnitude, no seed), ``"pghi"`` (also from the
            mel's peak spectrum), ``"random"``, ``"zeros"`` or ``"target"`` (teacher forcing).
        detach_phase: Stop gradients through the phase path (default).
        reference: ``"inversion"`` (the target mel's own inversion, default) or ``"target"``
            (the target waveform).
        magnitude: Mel -> magnitude method of ``MelInverter`` (``"pinv"``, ``"nnls"``, ...).
        algorithm: ``"fgla"``, ``"agla"`` or ``"gla"``.
        momentum: FGLA momentum.
        seed: Seed of the random initial phase (``None``: fresh random phase each call).
        inverter: A ready :class:`~specinv_lightning.MelInverter` to use instead of building one
            from the shorthand arguments above (then ``config`` may be omitted, and passing a
            shorthand argument that differs from its default is an error). With
            ``init="target"`` the target's phase replaces the inverter's initial phase.
        **inverter_kwargs: Further :class:`~specinv_lightning.MelInverter` options (``beta``,
            ``gamma``, ``nnls_max_iter``, ...).

    Example:
        >>> import torch
        >>> from specinv_lightning import MelSpectrogram, WaveformReconstructionLoss
        >>> wave = torch.randn(2, 22050)
        >>> mel = MelSpectrogram("hifigan")(wave).requires_grad_()
        >>> loss_fn = WaveformReconstructionLoss("hifigan", n_iter=4)
        >>> loss, parts = loss_fn(mel, wave, return_components=True)
        >>> loss.backward()
        >>> sorted(parts), tuple(mel.grad.shape)
        (['mel', 'stft'], (2, 80, 86))
    """

    def __init__(
        self,
        config: MelConfig | str | Mapping[str, Any] | None = None,
        n_iter: int = 4,
        mel_consistent: bool = True,
        checkpoint: bool = True,
        stft_loss: nn.Module | None = None,
        mel_weight: float = 1.0,
        stft_weight: float = 1.0,
        init: Literal["random", "zeros", "pghi", "pghi-fast", "target"] = "pghi-fast",
        detach_phase: bool = True,
        reference: Literal["inversion", "target"] = "inversion",
        magnitude: Literal["pinv", "nnls", "transpose"] = "pinv",
        algorithm: str = "fgla",
        momentum: float = 0.99,
        seed: int | None = 0,
        inverter: MelInverter | None = None,
        **inverter_kwargs: Any,
    ) -> None:
        super().__init__()
        if init not in _INITS:
            raise ValueError(f"init: expected one of {_INITS}, got {init!r}")
        if reference not in _REFERENCES:
            raise ValueError(f"reference: expected one of {_REFERENCES}, got {reference!r}")
        shorthand = dict(
            n_iter=n_iter,
            mel_consistent=mel_consistent,
            checkpoint=checkpoint,
            detach_phase=detach_phase,
            magnitude=magnitude,
            algorithm=algorithm,
            momentum=momentum,
            seed=seed,
        )
        self.inverter = self._build_inverter(config, inverter, shorthand, init, inverter_kwargs)
        self.config = self.inverter.config
        if mel_weight < 0 or stft_weight < 0 or (mel_weight == 0 and stft_weight == 0):
            raise ValueError(
                "mel_weight, stft_weight: expected values >= 0, not both 0, got"
                f" {mel_weight}, {stft_weight}"
            )
        self.init = init
        self.reference = reference
        self.mel_weight = float(mel_weight)
        self.stft_weight = float(stft_weight)
        self.mel_transform = MelSpectrogram(self.config)
        self.stft_loss = MultiResolutionSTFTLoss() if stft_loss is None else stft_loss

    @classmethod
    def _build_inverter(
        cls,
        config: MelConfig | str | Mapping[str, Any] | None,
        inverter: MelInverter | None,
        shorthand: dict[str, Any],
        init: str,
        inverter_kwargs: dict[str, Any],
    ) -> MelInverter:
        """The given ``inverter`` (checked against ``config`` and the shorthand arguments), or
        one built from them (teacher forcing replaces the initial phase: build a random one)."""
        start = {"init": "random" if init == "target" else init} if inverter is None else {}
        return inverter_for(cls, inverter, config, shorthand, inverter_kwargs, start)

    def _validate(
        self, mel_pred: Tensor, target_wave: Tensor, lengths: Tensor | Sequence[int] | None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        mel_pred = check_mel(mel_pred, self.config, "mel_pred")
        if mel_pred.dtype in (torch.float16, torch.bfloat16):
            mel_pred = mel_pred.float()
        target_wave = check_tensor(target_wave, "target_wave", min_dim=1)
        if target_wave.is_complex():
            raise ValueError(f"target_wave: expected a real tensor, got dtype {target_wave.dtype}")
        if (
            target_wave.dim() == mel_pred.dim()
            and target_wave.dim() >= 2
            and target_wave.shape[-2] == 1
            and mel_pred.shape[-2] != 1
        ):
            target_wave = target_wave.squeeze(-2)  # (B, 1, T) -> (B, T)
        if target_wave.shape[:-1] != mel_pred.shape[:-2]:
            raise ValueError(
                f"mel_pred and target_wave: expected shapes (..., n_mels, frames) and (..., samples)"
                f" with the same leading dims, got {tuple(mel_pred.shape)} and"
                f" {tuple(target_wave.shape)}"
            )
        if target_wave.device != mel_pred.device:
            raise ValueError(
                f"target_wave: expected a tensor on {mel_pred.device} (mel_pred's device), got"
                f" {target_wave.device}"
            )
        check_finite(target_wave, "target_wave")
        target_wave = target_wave.to(mel_pred.dtype)
        num_samples = target_wave.shape[-1]
        if num_samples < self.config.min_samples:
            raise ValueError(
                f"target_wave: expected at least {self.config.min_samples} samples, got shape"
                f" {tuple(target_wave.shape)}"
            )
        expected = self.config.num_frames(num_samples)
        if abs(mel_pred.shape[-1] - expected) > 1:
            raise ValueError(
                f"mel_pred and target_wave: {num_samples} samples give {expected} frames with this"
                f" config (hop {self.config.hop_length}), but mel_pred has {mel_pred.shape[-1]}"
                " frames; they may differ by at most one frame"
            )
        sample_mask = None
        if lengths is not None:
            valid = check_lengths(lengths, target_wave.shape[:-1].numel()).to(target_wave.device)
            valid = valid.clamp(max=num_samples).reshape(target_wave.shape[:-1])
            sample_mask = torch.arange(num_samples, device=target_wave.device) < valid[..., None]
        return mel_pred, target_wave, sample_mask

    def forward(
        self,
        mel_pred: Tensor,
        target_wave: Tensor,
        lengths: Tensor | Sequence[int] | None = None,
        return_components: bool = False,
    ) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        """Loss of a predicted mel against the target waveform.

        Args:
            mel_pred: Predicted compressed mel ``(..., n_mels, frames)``.
            target_wave: Target waveform ``(..., samples)`` (or ``(B, 1, samples)``) with
                ``config.num_frames(samples)`` within one frame of ``frames``.
            lengths: Optional valid samples per item (padded batches).
            return_components: Also return ``{"stft": ..., "mel": ...}`` (unweighted, detached).

        Returns:
            Scalar loss, or ``(loss, components)``.
        """
        mel_pred, target_wave, sample_mask = self._validate(mel_pred, target_wave, lengths)
        if sample_mask is not None:
            target_wave = target_wave * sample_mask
        zero = mel_pred.new_zeros(())
        stft_term = mel_term = zero
        target_mel = None
        if self.mel_weight > 0 or self.stft_weight > 0:
            target_mel = self._target_mel(target_wave, mel_pred.shape[-1])
        if self.stft_weight > 0:
            stft_term = self._stft_term(mel_pred, target_wave, target_mel, sample_mask)
        if self.mel_weight > 0:
            assert target_mel is not None
            mel_term = self._mel_l1(mel_pred, target_mel, lengths)
        loss = self.stft_weight * stft_term + self.mel_weight * mel_term
        if return_components:
            return loss, {"stft": stft_term.detach(), "mel": mel_term.detach()}
        return loss

    def _stft_term(
        self,
        mel_pred: Tensor,
        target_wave: Tensor,
        target_mel: Tensor | None,
        sample_mask: Tensor | None,
    ) -> Tensor:
        """STFT loss of the inverted prediction against the reference waveform."""
        num_samples = target_wave.shape[-1]
        init: Any = None
        if self.init == "target":
            init = self._target_phase(target_wave, mel_pred.shape[-1])
        # below the floor no waveform's mel goes: invert the floor (the gradient there comes from
        # the mel term), which also keeps Griffin-Lim away from vanishing magnitudes; above the
        # target's loudest value + 60 dB no prediction is useful, and its waveform would overflow
        # the STFT loss (a log-mel of 40 is a 1e17-loud frame): invert that ceiling instead
        assert target_mel is not None
        peak = decompress(target_mel.detach(), self.config).amax(dim=(-2, -1), keepdim=True)
        ceiling = peak.clamp(min=torch.finfo(peak.dtype).tiny) * _HEADROOM**self.config.power
        mel_in = clamp_to_level(clamp_to_floor(mel_pred, self.config), self.config, ceiling)
        recon = self.inverter(mel_in, length=num_samples, init=init)
        reference = target_wave
        if self.reference == "inversion":
            assert target_mel is not None
            # the target's own mel through the very same computation (the autograd engine, so
            # that a prediction equal to the target's mel gives a bit-identical waveform): the
            # loss is zero, and stationary, exactly at the target's mel
            probe = clamp_to_floor(target_mel, self.config)
            if torch.is_grad_enabled() and mel_pred.requires_grad:
                probe = probe.detach().requires_grad_()
            reference = self.inverter(probe, length=num_samples, init=init).detach()
        if sample_mask is not None:
            recon = recon * sample_mask
            reference = reference * sample_mask
        flat = (-1, num_samples)
        return self.stft_loss(recon.reshape(flat), reference.reshape(flat))

    def _target_mel(self, target_wave: Tensor, num_frames: int) -> Tensor:
        """The target's mel with ``num_frames`` frames (one frame trimmed or repeated)."""
        with torch.no_grad():
            mel = self.mel_transform(target_wave)
        if mel.shape[-1] > num_frames:
            return mel[..., :num_frames]
        if mel.shape[-1] < num_frames:
            return torch.cat([mel, mel[..., -1:]], dim=-1)
        return mel

    def _target_phase(self, target_wave: Tensor, num_frames: int) -> Tensor:
        with torch.no_grad():
            spec = stft(target_wave, self.config, window=self.inverter.window.to(target_wave.dtype))
        if spec.shape[-1] > num_frames:
            return spec[..., :num_frames]
        if spec.shape[-1] < num_frames:  # one frame short: repeat the last frame's phase
            return torch.cat([spec, spec[..., -1:]], dim=-1)
        return spec

    def _mel_l1(
        self, mel_pred: Tensor, target_mel: Tensor, lengths: Tensor | Sequence[int] | None
    ) -> Tensor:
        diff = (mel_pred - target_mel).abs()
        if lengths is None:
            return diff.mean()
        n = diff.shape[-1]
        frames = self.config.valid_frames(check_lengths(lengths, diff.shape[:-2].numel()))
        mask = frame_mask(frames, diff.shape[:-2], n, diff.device)
        assert mask is not None
        m = mask.to(diff.dtype)
        return (diff * m).sum() / (m.sum() * diff.shape[-2])
