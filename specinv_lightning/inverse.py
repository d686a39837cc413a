"""``MelInverter``: (compressed) mel -> linear magnitude -> waveform, differentiable end to end."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_mel
from specinv_lightning.functional._kernels import fusion_available
from specinv_lightning.functional.compression import decompress
from specinv_lightning.functional.filterbank import mel_filterbank
from specinv_lightning.functional.magnitude import (
    BandedFilterbank,
    active_bins,
    filterbank_blocks,
    filterbank_lipschitz,
    filterbank_pinv,
    nnls_spectrum,
    pinv_spectrum,
    project_onto_mel,
    project_onto_mel_,
    transpose_spectrum,
)
from specinv_lightning.functional.phase import ALGORITHMS, griffin_lim
from specinv_lightning.functional.stft import make_window
from specinv_lightning.mel import as_config

__all__ = ["MelInverter", "MAGNITUDE_METHODS"]

MAGNITUDE_METHODS = ("pinv", "nnls", "transpose")
_POWER_FLOOR = 1e-12  # keeps d sqrt(x)/dx finite for power mels


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
        init: ``"random"`` or ``"zeros"`` initial phase (a tensor can be passed to ``forward``).
        seed: Seed of the random initial phase (``None``: unseeded).
        nnls_max_iter: Iteration cap of the NNLS solver.
        nnls_tol: Relative-residual improvement below which NNLS stops.
        detach_phase: Stop gradients through the phase path.
        checkpoint: Gradient checkpointing of each unrolled iteration (memory vs. recompute).
        fused: Fuse the elementwise chains of each iteration with ``torch.compile`` (eager
            fallback where unavailable; ``SPECINV_LIGHTNING_COMPILE=0`` disables it). ``None``
            (default) fuses when no gradient is needed (``no_grad``/``inference_mode``) and runs
            eager under autograd. The first fused call in a process compiles (seconds).

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
        config: MelConfig | str | dict,
        n_iter: int = 32,
        mel_consistent: bool = True,
        magnitude: str = "pinv",
        algorithm: str = "fgla",
        momentum: float = 0.99,
        beta: float = 1.1,
        gamma: float = 1.2,
        init: str = "random",
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
            raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
        if not 0.0 <= momentum < 2.0:
            raise ValueError(f"momentum: expected a value in [0, 2), got {momentum}")
        if init not in ("random", "zeros"):
            raise ValueError(f"init: expected 'random' or 'zeros', got {init!r}")
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
        self.min_frames = self.config.min_frames
        self.bins = active_bins(fb)
        banded = filterbank_blocks(fb)
        self.register_buffer("fb_gram_pinv", banded.gram_pinv, persistent=False)
        self._blocks = (banded.bins, banded.mels)

    def _operators(self, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        return self.fb.to(dtype), self.fb_pinv.to(dtype), self.window.to(dtype)

    def _validate(self, mel: Tensor) -> Tensor:
        mel = check_mel(
            mel, self.config.n_mels, "mel", nonnegative=self.config.compression == "none"
        )
        if mel.shape[-1] < self.min_frames:
            raise ValueError(
                f"mel: expected at least {self.min_frames} frames (one window of n_fft="
                f"{self.config.n_fft} samples at hop_length={self.config.hop_length}), got shape"
                f" {tuple(mel.shape)}"
            )
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
        lin = decompress(mel, self.config)
        if self.config.compression != "none" and not bool(torch.isfinite(lin).all()):
            raise ValueError(
                f"mel: values up to {float(mel.max()):.4g} overflow {mel.dtype} when decompressed"
                f" ({self.config.compression}, multiplier {self.config.log_multiplier}); expected a"
                " compressed mel in the range the config produces"
            )
        return lin

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

    def _root(self, spectrum: Tensor) -> Tensor:
        if self.config.power == 2.0:
            return spectrum.clamp(min=_POWER_FLOOR).sqrt()
        return spectrum

    def magnitude_from_mel(self, mel: Tensor) -> Tensor:
        """Linear STFT magnitude ``(..., n_freqs, frames)`` estimated from a (compressed) mel."""
        return self._root(self.linear_spectrum(mel))

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
        if (
            torch.is_grad_enabled()
            and not mel.requires_grad
            and not (init is not None and init.requires_grad)
        ):
            # nothing to differentiate (the module has no parameters): take the no-autograd path,
            # which reuses its buffers across iterations
            with torch.no_grad():
                return self.forward(mel, length, init, generator)
        if not torch.is_grad_enabled() and mel.device.type == "cpu":
            items = mel.reshape(-1, *mel.shape[-2:])
            chunk = self._cpu_chunk(mel)
            if items.shape[0] > chunk:
                count = -(-items.shape[0] // chunk)
                chunk = -(-items.shape[0] // count)  # balanced: 16 items by at most 5 -> 4 x 4
                return self._invert_in_chunks(mel, items, chunk, length, init, generator)
        return self._invert(mel, length, init, generator)

    # Working set of one item in the no-autograd loop, in elements per frame: the iSTFT frames
    # (n_fft) and four spectrogram-sized buffers (t_n, t_(n-1), c: complex; |t|: real).
    _CPU_CHUNK_BYTES = 24 * 2**20

    def _cpu_chunk(self, mel: Tensor) -> int:
        """Items per chunk so that one chunk's working set stays in a typical CPU's L3 cache."""
        per_frame = self.config.n_fft + 7 * self.config.n_freqs
        per_item = mel.shape[-1] * per_frame * mel.element_size()
        return max(1, self._CPU_CHUNK_BYTES // per_item)

    def _invert_in_chunks(
        self,
        mel: Tensor,
        items: Tensor,
        chunk: int,
        length: int | None,
        init: Tensor | None,
        generator: torch.Generator | None,
    ) -> Tensor:
        """No-autograd CPU inversion a few items at a time (each chunk's buffers stay in cache).

        The random initial phases are drawn for the whole batch first, so the result equals the
        one-shot inversion's.
        """
        shape = (*mel.shape[:-2], self.config.n_freqs, mel.shape[-1])
        if init is None and self.init == "random":
            if generator is None and self.seed is not None:
                generator = torch.Generator(device=mel.device).manual_seed(self.seed)
            device = generator.device if generator is not None else mel.device
            init = torch.rand(shape, generator=generator, dtype=mel.dtype, device=device)
            init = init.to(mel.device) * (2 * math.pi)
        if init is not None and tuple(init.shape) != shape:
            raise ValueError(f"init: expected shape {shape}, got {tuple(init.shape)}")
        flat_init = None if init is None else init.reshape(-1, *shape[-2:])
        waves = [
            self._invert(
                items[start : start + chunk],
                length,
                None if flat_init is None else flat_init[start : start + chunk],
                generator,
            )
            for start in range(0, items.shape[0], chunk)
        ]
        out = torch.cat(waves)
        return out.reshape(*mel.shape[:-2], out.shape[-1])

    def _invert(
        self,
        mel: Tensor,
        length: int | None,
        init: Tensor | None,
        generator: torch.Generator | None,
    ) -> Tensor:
        fb, fb_pinv, window = self._operators(mel.dtype)
        lin = self._decompress(mel)
        # Every step is homogeneous of degree 1 in the linear mel, so inverting lin / peak and
        # scaling back is exact; it keeps |STFT|^2 inside float32 range for any valid mel.
        peak = lin.detach().amax(dim=(-2, -1), keepdim=True).clamp(min=torch.finfo(lin.dtype).tiny)
        lin = lin / peak
        spectrum = self._spectrum(lin, fb, fb_pinv)
        update = None
        if self.mel_consistent:
            # frame-major copy of the mel: the projection's GEMMs then read it without a copy
            lin_fm = lin.detach().transpose(-1, -2).contiguous().transpose(-1, -2)
            banded = BandedFilterbank(fb, self.fb_gram_pinv.to(mel.dtype), *self._blocks)

            def update(consistent_mag: Tensor) -> Tensor:
                if torch.is_grad_enabled():
                    power = consistent_mag.square() if self.config.power == 2.0 else consistent_mag
                    return self._root(project_onto_mel(power, lin, fb, fb_pinv, self.bins))
                # no autograd: griffin_lim hands over a scratch buffer, updated in place
                if self.config.power == 2.0:
                    consistent_mag.square_()
                project_onto_mel_(consistent_mag, lin_fm, fb, fb_pinv, self.bins, banded)
                if self.config.power == 2.0:
                    consistent_mag.clamp_(min=_POWER_FLOOR).sqrt_()
                return consistent_mag

        if generator is None and init is None and self.init == "random" and self.seed is not None:
            generator = torch.Generator(device=mel.device).manual_seed(self.seed)
        wave = griffin_lim(
            self._root(spectrum),
            self.config,
            n_iter=self.n_iter,
            algorithm=self.algorithm,
            momentum=self.momentum,
            beta=self.beta,
            gamma=self.gamma,
            init=self.init if init is None else init,
            generator=generator,
            length=length,
            magnitude_update=update,
            detach_phase=self.detach_phase,
            checkpoint=self.checkpoint,
            fused=self._use_fused(mel),
            window=window,
        )
        return wave * self._root(peak.squeeze(-1))

    def _use_fused(self, mel: Tensor) -> bool:
        if self.fused is not None:
            return self.fused
        return fusion_available() and not (torch.is_grad_enabled() and mel.requires_grad)

    def extra_repr(self) -> str:
        return (
            f"n_iter={self.n_iter}, mel_consistent={self.mel_consistent}, magnitude={self.magnitude!r},"
            f" algorithm={self.algorithm!r}, n_mels={self.config.n_mels}, sample_rate={self.config.sample_rate}"
        )
