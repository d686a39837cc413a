"""``MelInverter``: (compressed) mel -> linear magnitude -> waveform, differentiable end to end."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from specinv_lightning.config import MelConfig, as_config
from specinv_lightning.functional._checks import check_mel
from specinv_lightning.functional._engine import (
    MelConstraint,
    MelOperators,
    choose_engine,
    needs_grad,
    retrieve,
    root,
)
from specinv_lightning.functional._inplace import filterbank_blocks
from specinv_lightning.functional.compression import decompress_checked
from specinv_lightning.functional.filterbank import mel_filterbank
from specinv_lightning.functional.initial import INITS, Init
from specinv_lightning.functional.magnitude import (
    filterbank_lipschitz,
    filterbank_pinv,
    nnls_spectrum,
    pinv_spectrum,
    transpose_spectrum,
)
from specinv_lightning.functional.peaks import PeakModel, peak_model
from specinv_lightning.functional.phase import ALGORITHMS, loop_weights
from specinv_lightning.functional.stft import make_window

__all__ = ["MelInverter", "MAGNITUDE_METHODS"]

Magnitude = Literal["pinv", "nnls", "transpose"]
MAGNITUDE_METHODS = ("pinv", "nnls", "transpose")
_LINEAR_FLOOR = 1e-30  # linear mel floor: 300 dB below full scale, zero gradient below


class MelInverter(nn.Module):
    """Invert a mel spectrogram ``(..., n_mels, frames)`` to a waveform ``(..., samples)``.

    Undoes the config's compression and power, maps the linear mel to a linear magnitude
    (``magnitude="pinv"`` cached pseudo-inverse, ``"nnls"`` FISTA non-negative least squares, or
    ``"transpose"``), then retrieves the phase with unrolled Griffin-Lim (``algorithm="fgla"``
    default, ``"agla"``, ``"gla"``). With ``mel_consistent=True`` (default) each iteration
    re-projects the consistent magnitude ``|t|`` onto the input-mel constraint,
    ``A <- clamp(|t|^p + P (M - F |t|^p), 0)^(1/p)``, so the output's mel stays close to the input
    mel instead of to a fixed pinv magnitude. Everything is differentiable with respect to ``mel``;
    caches (filterbank, pseudo-inverse, window) are float64 buffers built in ``__init__``.

    Args:
        config: The forward transform (``MelConfig``, preset name or dict).
        n_iter: Phase-retrieval iterations.
        mel_consistent: Re-project onto the mel constraint every iteration.
        magnitude: ``"pinv"``, ``"nnls"`` or ``"transpose"``.
        algorithm: ``"fgla"``, ``"agla"`` or ``"gla"``.
        momentum: FGLA/AGLA ``alpha``.
        beta: AGLA ``beta``.
        gamma: AGLA ``gamma``.
        init: Initial phase: ``"pghi"`` (default: phase-gradient integration, deterministic and
            per item, from the better of the magnitude estimate and the mel's peak spectrum
            after two iterations of this inverter's loop; Griffin-Lim then starts far closer to
            a consistent spectrogram), ``"pghi-fast"``
            (from the magnitude estimate only: cheaper, weaker on harmonic sounds),
            ``"random"`` or ``"zeros"`` (see
            :func:`~specinv_lightning.functional.initial_phase`; a tensor can be passed to
            ``forward``).
        seed: Seed of the random initial phase (``None``: unseeded).
        nnls_max_iter: Iteration cap of the NNLS solver.
        nnls_tol: Relative-residual improvement below which NNLS stops.
        detach_phase: Stop gradients through the phase path.
        checkpoint: Gradient checkpointing of each unrolled iteration (memory vs. recompute).
        fused: Without autograd, fuse the elementwise chains of each iteration with
            ``torch.compile`` (``None``, the default: wherever compiling is available here;
            ``SPECINV_LIGHTNING_COMPILE=0`` disables it; a failed compilation warns once and
            falls back to eager kernels). Under autograd the eager kernels always run. The first
            fused call in a process compiles (seconds).

    Which loop runs is decided in one place (``functional/_engine.py: choose_engine``, called by
    :meth:`forward`): the unrolled autograd loop when ``mel`` (or ``init``) needs a gradient;
    otherwise the same iterations in preallocated buffers, on CPU a few items at a time.

    Example:
        >>> import torch
        >>> from specinv_lightning import MelInverter, MelSpectrogram
        >>> mel = MelSpectrogram("hifigan")(torch.randn(2, 22050))
        >>> wave = MelInverter("hifigan", n_iter=4)(mel, length=22050)
        >>> tuple(wave.shape)
        (2, 22050)
    """

    fb: Tensor
    fb_pinv: Tensor
    window: Tensor

    def __init__(
        self,
        config: MelConfig | str | Mapping[str, Any],
        n_iter: int = 32,
        mel_consistent: bool = True,
        magnitude: Magnitude = "pinv",
        algorithm: str = "fgla",
        momentum: float = 0.99,
        beta: float = 1.1,
        gamma: float = 1.2,
        init: Init = "pghi",
        seed: int | None = 0,
        nnls_max_iter: int = 300,
        nnls_tol: float = 1e-4,
        detach_phase: bool = False,
        checkpoint: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__()
        self.config = as_config(config)
        if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
            raise ValueError(f"n_iter: expected an integer >= 0, got {n_iter!r}")
        if magnitude not in MAGNITUDE_METHODS:
            raise ValueError(f"magnitude: expected one of {MAGNITUDE_METHODS}, got {magnitude!r}")
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm: expected one of {sorted(ALGORITHMS)}, got {algorithm!r}")
        if not 0.0 <= momentum < 2.0:
            raise ValueError(f"momentum: expected a value in [0, 2), got {momentum}")
        if init not in INITS:
            raise ValueError(f"init: expected one of {INITS}, got {init!r}")
        if nnls_max_iter < 1 or nnls_tol < 0:
            raise ValueError(
                f"nnls_max_iter/nnls_tol: expected >= 1 and >= 0, got {nnls_max_iter}, {nnls_tol}"
            )
        self.n_iter = n_iter
        self.mel_consistent = mel_consistent
        self.magnitude = magnitude
        self.algorithm = algorithm
        self.momentum = momentum
        self.beta = beta
        self.gamma = gamma
        self.init = init
        self.seed = seed
        self.nnls_max_iter = nnls_max_iter
        self.nnls_tol = nnls_tol
        self.detach_phase = detach_phase
        self.checkpoint = checkpoint
        self.fused = fused
        fb = mel_filterbank(self.config, torch.float64)
        self.register_buffer("fb", fb, persistent=False)
        self.register_buffer("fb_pinv", filterbank_pinv(fb), persistent=False)
        self.register_buffer("window", make_window(self.config, torch.float64), persistent=False)
        self.lipschitz = filterbank_lipschitz(fb)
        self._blocks = filterbank_blocks(fb)  # band layout of the mel projection
        # init="pghi"'s peak model (float64, built on first use) and its cast for the last call
        self._peaks: PeakModel | None = None
        self._peaks_cast: tuple[tuple[torch.dtype, torch.device], PeakModel] | None = None
        self.register_buffer("fb_gram_pinv", self._blocks.gram_pinv, persistent=False)

    def _operators(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        return self.fb.to(dtype), self.fb_pinv.to(dtype), self.window.to(dtype)

    def _validate(self, mel: Tensor) -> Tensor:
        mel = check_mel(mel, self.config, "mel")
        if mel.device != self.fb.device:
            raise ValueError(
                f"mel: expected a tensor on {self.fb.device} (the inverter's device; move one of"
                f" them with .to()), got {mel.device}"
            )
        if mel.dtype not in (torch.float32, torch.float64):
            if mel.dtype in (torch.float16, torch.bfloat16):
                mel = mel.float()
            else:
                raise ValueError(f"mel: expected float32 or float64, got {mel.dtype}")
        return mel

    def linear_spectrum(self, mel: Tensor) -> Tensor:
        """Linear spectrum ``|X|^power`` ``(..., n_freqs, frames)`` estimated from a (compressed) mel."""
        mel = self._validate(mel)
        return self._spectrum(self._decompress(mel), *self._operators(mel.dtype)[:2])

    def _decompress(self, mel: Tensor) -> Tensor:
        return decompress_checked(mel, self.config, "mel")

    def _spectrum(self, lin: Tensor, fb: Tensor, fb_pinv: Tensor) -> Tensor:
        if self.magnitude == "pinv":
            return pinv_spectrum(lin, fb_pinv)
        if self.magnitude == "transpose":
            return transpose_spectrum(lin, fb)
        return nnls_spectrum(
            lin,
            fb,
            fb_pinv,
            max_iter=self.nnls_max_iter,
            tol=self.nnls_tol,
            lipschitz=self.lipschitz,
        )

    def magnitude_from_mel(self, mel: Tensor) -> Tensor:
        """Linear STFT magnitude ``(..., n_freqs, frames)`` estimated from a (compressed) mel."""
        return root(self.linear_spectrum(mel), self.config.power)

    def forward(
        self,
        mel: Tensor,
        length: int | None = None,
        init: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Waveform ``(..., samples)`` from a mel ``(..., n_mels, frames)``.

        Args:
            mel: Mel as the model outputs it (compressed per the config).
            length: Output length in samples (default :meth:`MelConfig.num_samples`).
            init: Optional initial phase (radians) or complex spectrogram ``(..., n_freqs, frames)``,
                e.g. the target's STFT for teacher forcing.
            generator: Random generator for the initial phase (default: seeded with ``seed``).
        """
        mel = self._validate(mel)
        if length is not None and (isinstance(length, bool) or int(length) < 1):
            raise ValueError(f"length: expected a positive number of samples, got {length!r}")
        # The one decision of how this inversion runs (autograd only if a gradient is needed;
        # else in-place buffers, fused kernels where they compile, CPU chunks sized for cache).
        engine = choose_engine(self.config, mel, grad=needs_grad(mel, init), fused=self.fused)
        with engine.autograd():
            return self._invert(mel, engine, length, init, generator)

    def _invert(
        self,
        mel: Tensor,
        engine: Any,
        length: int | None,
        init: Tensor | None,
        generator: torch.Generator | None,
    ) -> Tensor:
        fb, fb_pinv, window = self._operators(mel.dtype)
        power = self.config.power
        # a mel far below any waveform's (decompressed to exact zeros) would make the backward
        # pass of the normalised loop divide 0 by 0: floor the linear mel far below real levels
        lin = self._decompress(mel).clamp(min=_LINEAR_FLOOR)
        # Every step is homogeneous of degree 1 in the linear mel, so inverting lin / peak and
        # scaling back is exact; it keeps |STFT|^2 inside float32 range for any valid mel.
        peak = lin.detach().amax(dim=(-2, -1), keepdim=True).clamp(min=torch.finfo(lin.dtype).tiny)
        lin = lin / peak
        magnitude = root(self._spectrum(lin, fb, fb_pinv), power)
        constraint = None
        if self.mel_consistent:
            ops = MelOperators.cast(
                self.fb, self.fb_pinv, self.fb_gram_pinv, self._blocks, power, mel.dtype
            )
            constraint = MelConstraint(lin.reshape(-1, *lin.shape[-2:]), ops)
        if generator is None and init is None and self.init == "random" and self.seed is not None:
            generator = torch.Generator(device=mel.device).manual_seed(self.seed)
        wave = retrieve(
            magnitude,
            self.config,
            engine,
            n_iter=self.n_iter,
            weights=loop_weights(self.algorithm, self.momentum, self.beta, self.gamma),
            init=self.init if init is None else init,
            generator=generator,
            length=length,
            constraint=constraint,
            detach_phase=self.detach_phase,
            checkpoint=self.checkpoint,
            window=window,
            peaks=self._peaks_in(lin) if init is None else None,
            mel=lin,
        )
        return wave * root(peak.squeeze(-1), power)

    def _peaks_in(self, lin: Tensor) -> PeakModel | None:
        """The peak model for ``init="pghi"`` in ``lin``'s dtype and device (cached per pair)."""
        if self.init != "pghi":
            return None
        if self._peaks is None:
            self._peaks = peak_model(self.config, self.fb.double(), self.window.double())
        key = (lin.dtype, lin.device)
        if self._peaks_cast is None or self._peaks_cast[0] != key:
            self._peaks_cast = (key, self._peaks.to(lin.dtype, lin.device))
        return self._peaks_cast[1]

    def extra_repr(self) -> str:
        return (
            f"n_iter={self.n_iter}, mel_consistent={self.mel_consistent}, magnitude={self.magnitude!r},"
            f" algorithm={self.algorithm!r}, n_mels={self.config.n_mels}, sample_rate={self.config.sample_rate}"
        )


def inverter_for(
    owner: type,
    inverter: object,
    config: MelConfig | str | Mapping[str, Any] | None,
    shorthand: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> MelInverter:
    """The inverter of ``owner`` (the loss, the callback): the ready ``inverter`` it was given,
    checked, or one built from ``config``, its ``shorthand`` arguments (``n_iter``, ...), the
    user's ``extra`` inverter arguments and the owner's ``defaults`` for them.

    Raises ``ValueError`` when ``inverter`` is not a :class:`MelInverter`, when a shorthand
    argument of ``owner.__init__`` differs from its default or extra arguments are given beside
    a ready inverter (it would silently override them), when ``config`` is given and differs from
    the inverter's, when neither is given, or when ``extra`` holds an unknown argument.
    """
    if inverter is None:
        if config is None:
            raise ValueError("config: expected a MelConfig, preset name or mapping, got None")
        try:
            return MelInverter(
                as_config(config), **shorthand, **{**(defaults or {}), **(extra or {})}
            )
        except TypeError as err:
            raise ValueError(f"inverter_kwargs: {err}") from err
    if not isinstance(inverter, MelInverter):
        raise ValueError(f"inverter: expected a MelInverter, got {type(inverter).__name__}")
    params = inspect.signature(owner.__init__).parameters
    conflicts = sorted(k for k, v in shorthand.items() if k in params and v != params[k].default)
    conflicts += sorted(extra or {})
    if conflicts:
        raise ValueError(
            f"inverter: a ready MelInverter sets the inversion; do not also pass {conflicts}"
        )
    if config is not None and as_config(config) != inverter.config:
        raise ValueError("config: differs from inverter.config; pass one of them")
    return inverter
