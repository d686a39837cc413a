"""Phase retrieval: Griffin-Lim (GLA), Fast Griffin-Lim (FGLA) and Accelerated Griffin-Lim (AGLA).

All variants are unrolled and differentiable with respect to the magnitude. An optional
``magnitude_update`` re-targets the magnitude at every iteration from the current consistent
estimate; :class:`~specinv_lightning.MelInverter` uses it for mel-consistent phase retrieval.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_finite, check_tensor
from specinv_lightning.functional.stft import istft, make_window, stft, window_envelope

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


def _unit(c: Tensor, eps: Tensor) -> Tensor:
    # c / |c| with a relative floor: finite values and gradients where |c| -> 0
    return c * torch.rsqrt(c.real.square() + c.imag.square() + eps)


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
            of the next iteration (mel-consistent phase retrieval).
        detach_phase: Stop gradients through the phase path (gradients then flow only through the
            magnitude applied at each step).
        window: Optional precomputed :func:`~specinv_lightning.functional.make_window`.

    Returns:
        Waveform ``(..., samples)``.

    Example:
        >>> cfg = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
        >>> x = torch.randn(2, 8000)
        >>> mag = stft(x, cfg).abs()
        >>> griffin_lim(mag, cfg, n_iter=4).shape
        torch.Size([2, 8064])
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

    num_frames = magnitude.shape[-1]
    if window is None:
        window = make_window(config, magnitude.dtype, magnitude.device)
    envelope = window_envelope(config, num_frames, window)
    natural = config.num_samples(num_frames)
    out_len = natural if length is None else length

    def p_c(spec: Tensor) -> tuple[Tensor, Tensor]:
        wave = istft(spec, config, length=natural, window=window, envelope=envelope)
        return wave, stft(wave, config, window=window)

    # relative floor for |c|: -140 dB below each item's peak, plus the dtype's tiny
    peak = magnitude.detach().amax(dim=(-2, -1), keepdim=True)
    eps = (1e-7 * peak).square() + torch.finfo(magnitude.dtype).tiny

    target = magnitude
    c = magnitude * initial_phase(magnitude, init, generator)
    if n_iter == 0:
        return istft(c, config, length=out_len, window=window, envelope=envelope)
    t_prev: Tensor | None = None
    d: Tensor | None = None
    applied = c
    for _ in range(n_iter):
        unit = _unit(c, eps)
        if detach_phase:
            unit = unit.detach()
        applied = target * unit
        proj = stft(
            istft(applied, config, length=natural, window=window, envelope=envelope),
            config,
            window=window,
        )
        t = (1.0 - gamma) * d + gamma * proj if algorithm == "agla" and d is not None else proj
        if t_prev is None or momentum == 0.0:
            c = t
            d = t
        else:
            diff = t - t_prev
            c = t + momentum * diff
            d = t + beta * diff
        t_prev = t
        if magnitude_update is not None:
            target = magnitude_update(t.abs())
    # the waveform of the last iteration (its STFT is t_n), at the requested length
    return istft(applied, config, length=out_len, window=window, envelope=envelope)
