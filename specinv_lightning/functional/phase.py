"""Phase retrieval: Griffin-Lim (GLA), Fast Griffin-Lim (FGLA) and Accelerated Griffin-Lim (AGLA).

All variants are unrolled and differentiable with respect to the magnitude. An optional
``magnitude_update`` re-targets the magnitude at every iteration from the current consistent
estimate; :class:`~specinv_lightning.MelInverter` uses it for mel-consistent phase retrieval.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.utils.checkpoint
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_finite, check_tensor
from specinv_lightning.functional._kernels import inplace_kernels, kernels
from specinv_lightning.functional.stft import (
    StftPlan,
    istft_frames,
    make_plan,
    make_window,
    project_consistent_,
    stft_frames,
    supports_inplace_projection,
)

__all__ = ["griffin_lim", "initial_phase", "ALGORITHMS"]

ALGORITHMS = ("gla", "fgla", "agla")


def initial_phase(
    magnitude: Tensor,
    init: str | Tensor = "random",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Unit-modulus complex tensor shaped like ``magnitude`` to start phase retrieval from.

    Args:
        magnitude: Real ``(..., n_freqs, frames)``.
        init: ``"random"`` (phase uniform on the whole circle), ``"zeros"`` (phase 0), a real
            tensor of phases in radians, or a complex spectrogram whose phase is used.
        generator: Optional ``torch.Generator`` for a reproducible ``"random"`` init (may live on
            another device than ``magnitude``).
    """
    real = magnitude.dtype
    if isinstance(init, Tensor):
        if init.shape != magnitude.shape:
            raise ValueError(
                f"init: expected a phase/complex tensor of shape {tuple(magnitude.shape)},"
                f" got {tuple(init.shape)}"
            )
        init = init.to(magnitude.device)
        if init.is_complex():
            mag = init.abs()
            unit = init / mag.clamp(min=torch.finfo(mag.dtype).tiny)
            ones = torch.ones((), dtype=unit.dtype, device=unit.device)
            return torch.where(mag > 0, unit, ones).to(
                torch.complex128 if real == torch.float64 else torch.complex64
            )
        return torch.polar(torch.ones_like(magnitude), init.to(real))
    if init == "zeros":
        return torch.polar(torch.ones_like(magnitude), torch.zeros_like(magnitude))
    if init == "random":
        device = generator.device if generator is not None else magnitude.device
        angles = torch.rand(magnitude.shape, generator=generator, dtype=real, device=device)
        return torch.polar(torch.ones_like(magnitude), (2 * math.pi) * angles.to(magnitude.device))
    raise ValueError(f"init: expected 'random', 'zeros' or a tensor, got {init!r}")


def _initial_spectrum(
    mag: Tensor,
    magnitude: Tensor,
    init: str | Tensor,
    generator: torch.Generator | None,
    to_frames: Callable[[Tensor], Tensor],
) -> Tensor:
    """Frame-major ``mag * exp(i phase)`` for :func:`initial_phase`'s ``init`` (contiguous).

    For ``"random"`` and ``"zeros"`` it is built from real cos/sin (several times faster on CPU
    than complex ``polar`` and multiply), with the same phases as :func:`initial_phase`.
    """
    if isinstance(init, Tensor) and not init.is_complex() and init.shape == magnitude.shape:
        angles = to_frames(init.to(device=mag.device, dtype=mag.dtype))
        spec = torch.complex(mag * torch.cos(angles), mag * torch.sin(angles))
    elif isinstance(init, Tensor) or init not in ("random", "zeros"):
        spec = mag * to_frames(initial_phase(magnitude, init, generator))
    elif init == "zeros":
        spec = torch.complex(mag, torch.zeros_like(mag))
    else:
        device = generator.device if generator is not None else magnitude.device
        angles = torch.rand(magnitude.shape, generator=generator, dtype=mag.dtype, device=device)
        angles = to_frames(angles.to(magnitude.device)) * (2 * math.pi)
        spec = torch.complex(mag * torch.cos(angles), mag * torch.sin(angles))
    return spec.contiguous()


def griffin_lim(
    magnitude: Tensor,
    config: MelConfig,
    n_iter: int = 32,
    algorithm: str = "fgla",
    momentum: float = 0.99,
    beta: float = 1.1,
    gamma: float = 1.2,
    init: str | Tensor = "random",
    generator: torch.Generator | None = None,
    length: int | None = None,
    magnitude_update: Callable[[Tensor], Tensor] | None = None,
    detach_phase: bool = False,
    checkpoint: bool = False,
    fused: bool = False,
    window: Tensor | None = None,
) -> Tensor:
    """Estimate a waveform whose STFT magnitude matches ``magnitude``.

    With ``P_C(X) = STFT(iSTFT(X))`` and ``P_A(X) = A X / |X|``:

    - ``"gla"``: ``c_n = P_C(P_A(c_{n-1}))`` (Griffin & Lim 1984).
    - ``"fgla"``: ``t_n = P_C(P_A(c_{n-1}))``, ``c_n = t_n + momentum (t_n - t_{n-1})``
      (Perraudin et al. 2013); ``momentum=0`` is plain GLA.
    - ``"agla"``: ``t_n = (1 - gamma) d_{n-1} + gamma P_C(P_A(c_{n-1}))``,
      ``c_n = t_n + momentum (t_n - t_{n-1})``, ``d_n = t_n + beta (t_n - t_{n-1})``
      (Nenov et al. 2023).

    Args:
        magnitude: STFT magnitude ``(..., n_freqs, frames)``, values >= 0 (not the power).
        config: The STFT the magnitude belongs to.
        n_iter: Number of iterations (each costs one iSTFT and one STFT).
        algorithm: ``"gla"``, ``"fgla"`` or ``"agla"``.
        momentum: ``alpha`` of FGLA/AGLA.
        beta: ``beta`` of AGLA.
        gamma: ``gamma`` of AGLA.
        init: Initial phase, see :func:`initial_phase`.
        generator: Random generator for ``init="random"``.
        length: Output length in samples (default :meth:`MelConfig.num_samples`).
        magnitude_update: Optional ``f(|t_n|) -> A_n`` called after every iteration with the
            magnitude of the current consistent spectrogram; the returned magnitude is the target
            of the next iteration (mel-consistent phase retrieval). Without autograd the tensor
            passed is a scratch buffer that ``magnitude_update`` may overwrite and return.
        detach_phase: Stop gradients through the phase path (gradients then flow only through the
            magnitude applied at each step).
        checkpoint: Gradient checkpointing of every iteration: backward recomputes each
            iteration instead of storing its intermediates (memory per iteration drops to the
            few spectrograms carried between iterations).
        fused: Run the elementwise chains of each iteration through ``torch.compile``d kernels
            (one pass instead of several; falls back to eager where compilation is unavailable;
            ``SPECINV_LIGHTNING_COMPILE=0`` disables it). Results are equal to eager ones.
        window: Optional precomputed :func:`~specinv_lightning.functional.make_window`.

    Without autograd (``torch.no_grad``/``inference_mode``) the iterations run in preallocated
    buffers with in-place updates (same arithmetic, no per-iteration allocation), for every
    padding scheme :func:`~specinv_lightning.functional.stft.supports_inplace_projection` accepts.

    Returns:
        Waveform ``(..., samples)``.

    Example:
        >>> cfg = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
        >>> x = torch.randn(2, 8000)
        >>> from specinv_lightning.functional import stft
        >>> mag = stft(x, cfg).abs()
        >>> griffin_lim(mag, cfg, n_iter=4, length=8000).shape
        torch.Size([2, 8000])
    """
    magnitude = check_tensor(magnitude, "magnitude", min_dim=2)
    if magnitude.is_complex():
        raise ValueError("magnitude: expected a real tensor (|STFT|), got a complex one")
    if magnitude.shape[-2] != config.n_freqs:
        raise ValueError(
            f"magnitude: expected shape (..., n_freqs={config.n_freqs}, frames), got {tuple(magnitude.shape)}"
        )
    check_finite(magnitude, "magnitude")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {ALGORITHMS}, got {algorithm!r}")
    if n_iter < 0:
        raise ValueError(f"n_iter: expected >= 0, got {n_iter}")
    if algorithm == "gla":
        momentum = 0.0

    batch_shape = magnitude.shape[:-2]
    n_freqs, num_frames = magnitude.shape[-2:]
    if window is None:
        window = make_window(config, magnitude.dtype, magnitude.device)
    plan = make_plan(config, num_frames, window)
    natural = config.num_samples(num_frames)
    out_len = natural if length is None else length

    def to_frames(x: Tensor) -> Tensor:  # (..., F, T) -> (B, T, F), a view when x is one
        return x.reshape(-1, n_freqs, num_frames).transpose(-1, -2)

    def from_frames(x: Tensor) -> Tensor:  # (B, T, F) -> (..., F, T) view
        return x.transpose(-1, -2).reshape(*batch_shape, n_freqs, num_frames)

    def synthesize(spec: Tensor, n: int) -> Tensor:
        return istft_frames(spec, config, plan, n).reshape(*batch_shape, n)

    mag = to_frames(magnitude).contiguous()
    # relative floor for |c|^2: -140 dB below each item's peak, plus the dtype's tiny
    peak = mag.detach().amax(dim=(-2, -1), keepdim=True)
    eps = (1e-7 * peak).square() + torch.finfo(mag.dtype).tiny
    c0 = _initial_spectrum(mag, magnitude, init, generator, to_frames)
    if n_iter == 0:
        return synthesize(c0, out_len)
    use_agla = algorithm == "agla"
    if not torch.is_grad_enabled() and supports_inplace_projection(config, num_frames):
        # no autograd: the same iterations in preallocated buffers (no per-iteration allocation)
        final = _retrieve_in_place(
            c0, mag, eps, config, plan, n_iter, momentum, beta, gamma, use_agla, fused,
            None if magnitude_update is None
            else lambda m: to_frames(magnitude_update(from_frames(m))),
        )  # fmt: skip
        return synthesize(final, out_len)
    apply_kernel, extrapolate_kernel = kernels(fused)

    def state(t1: Tensor | None, t0: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(c_n, target_n, d_n)`` from the last two consistent spectrograms ``t_n``, ``t_{n-1}``.

        Recomputing them instead of carrying them means a checkpointed iteration stores a single
        complex tensor (its ``t``), shared with the next iteration.
        """
        if t1 is None:
            return c0, mag, None
        mag_t: Tensor | None = None
        if t0 is None or momentum == 0.0:
            c, d = t1, t1
        else:
            tr, pr = torch.view_as_real(t1), torch.view_as_real(t0)
            c_r, mag_t = extrapolate_kernel(tr, pr, 1.0 + momentum)  # t + a (t - t_prev), |t|
            c = torch.view_as_complex(c_r)
            d = torch.view_as_complex(torch.lerp(pr, tr, 1.0 + beta)) if use_agla else None
        target = mag
        if magnitude_update is not None:
            if mag_t is None:
                mag_t = t1.abs()
            target = to_frames(magnitude_update(from_frames(mag_t)))
        return c, target, d

    def step(t1: Tensor | None, t0: Tensor | None) -> Tensor:
        c, target, d = state(t1, t0)
        # P_A: target magnitude with the phase of c (real-view arithmetic: much faster on CPU)
        cr = torch.view_as_real(c)
        applied = torch.view_as_complex(
            apply_kernel(cr.detach() if detach_phase else cr, target, eps)
        )
        # P_C: STFT of the iSTFT
        proj = stft_frames(istft_frames(applied, config, plan, natural), config, plan.analysis)
        # AGLA: t = (1 - gamma) d + gamma proj
        return torch.lerp(d, proj, gamma) if use_agla and d is not None else proj

    use_checkpoint = checkpoint and torch.is_grad_enabled()
    t1: Tensor | None = None
    t0: Tensor | None = None
    for _ in range(n_iter):
        if use_checkpoint:
            t = torch.utils.checkpoint.checkpoint(step, t1, t0, use_reentrant=False)
        else:
            t = step(t1, t0)
        t1, t0 = t, t1
    # after n iterations: the iSTFT of P_A(c_n) (as torchaudio's GriffinLim), at the requested length
    c, target, _ = state(t1, t0)
    return synthesize(
        torch.view_as_complex(apply_kernel(torch.view_as_real(c), target, eps)), out_len
    )


def _retrieve_in_place(
    c0: Tensor,
    mag: Tensor,
    eps: Tensor,
    config: MelConfig,
    plan: StftPlan,
    n_iter: int,
    momentum: float,
    beta: float,
    gamma: float,
    use_agla: bool,
    fused: bool,
    update: Callable[[Tensor], Tensor] | None,
) -> Tensor:
    """The iterations of :func:`griffin_lim` without autograd, in preallocated buffers.

    Frame-major ``c0``/``mag`` ``(batch, frames, n_freqs)``; ``c0`` is overwritten. ``update``
    (frame-major) may overwrite the magnitude buffer it is given. Returns ``P_A(c_N)``, the
    spectrogram the waveform is synthesised from: the same arithmetic as the autograd loop.
    """
    apply_, extrapolate_into = inplace_kernels(fused)
    batch, num_frames, _ = c0.shape
    segments = -(-config.n_fft // config.hop_length)
    signal = mag.new_empty(batch, (num_frames + segments - 1) * config.hop_length)
    t_bufs = [torch.empty_like(c0), torch.empty_like(c0)]
    proj = torch.empty_like(c0) if use_agla else None
    mag_t = torch.empty_like(mag)
    c = c0
    target = mag
    t1: Tensor | None = None
    t0: Tensor | None = None
    for it in range(n_iter + 1):
        if t1 is not None:
            # c_n = t_n + momentum (t_n - t_(n-1)) into c (no longer needed), |t_n| into mag_t
            tr = torch.view_as_real(t1)
            pr = tr if t0 is None or momentum == 0.0 else torch.view_as_real(t0)
            extrapolate_into(torch.view_as_real(c), mag_t, tr, pr, 1.0 + momentum)
            target = mag if update is None else update(mag_t)
            if use_agla and t0 is not None:  # d_n = t_n + beta (t_n - t_(n-1)), into t0
                torch.lerp(pr, tr, 1.0 + beta, out=torch.view_as_real(t0))
        apply_(torch.view_as_real(c), target, eps)  # P_A, in place
        if it == n_iter:
            return c
        # P_C: the new t goes into the buffer of t_(n-1), which is no longer needed
        dest = t_bufs[it % 2]
        if proj is None:
            project_consistent_(c, config, plan, dest, signal)
        else:  # AGLA: t = lerp(d, P_C(P_A(c)), gamma), d = t_n before the second iteration
            project_consistent_(c, config, plan, proj, signal)
            if t1 is None:
                dest.copy_(proj)
            else:
                if t0 is None:
                    dest.copy_(t1)
                torch.lerp(dest, proj, gamma, out=dest)
        t1, t0 = dest, t1
    return c
