"""Phase retrieval: the Griffin-Lim family, unrolled and differentiable, and its algorithm registry.

Every algorithm is one entry of :data:`ALGORITHMS`: a function from ``(momentum, beta, gamma)``
to the weights of the recurrence the engine runs (:class:`LoopWeights`). The autograd, in-place,
fused and chunked paths all run that same recurrence, so an algorithm added with
:func:`register_algorithm` runs on every path with no other change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_magnitude, check_mel
from specinv_lightning.functional._engine import (
    LoopWeights,
    MelConstraint,
    MelOperators,
    choose_engine,
    needs_grad,
    retrieve,
)
from specinv_lightning.functional.filterbank import mel_filterbank
from specinv_lightning.functional.initial import initial_phase
from specinv_lightning.functional.peaks import peak_model
from specinv_lightning.functional.stft import make_window

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "LoopWeights",
    "griffin_lim",
    "initial_phase",
    "register_algorithm",
]


@dataclass(frozen=True)
class Algorithm:
    """A phase-retrieval algorithm: ``weights(momentum, beta, gamma) -> LoopWeights``.

    Args:
        weights: Maps the user-facing parameters to the recurrence of :class:`LoopWeights`.
        summary: One line for documentation.
    """

    weights: Callable[[float, float, float], LoopWeights]
    summary: str


ALGORITHMS: dict[str, Algorithm] = {
    "gla": Algorithm(
        lambda momentum, beta, gamma: LoopWeights(),
        "Griffin & Lim 1984: c_n = P_C(P_A(c_(n-1)))",
    ),
    "fgla": Algorithm(
        lambda momentum, beta, gamma: LoopWeights(extrapolate=momentum),
        "Fast Griffin-Lim (Perraudin et al. 2013): t_n = P_C(P_A(c_(n-1))),"
        " c_n = t_n + momentum (t_n - t_(n-1))",
    ),
    "agla": Algorithm(
        lambda momentum, beta, gamma: LoopWeights(relax=gamma, extrapolate=momentum, damp=beta),
        "Accelerated Griffin-Lim (Nenov et al. 2023): t_n = (1 - gamma) d_(n-1) + gamma"
        " P_C(P_A(c_(n-1))), c_n = t_n + momentum (t_n - t_(n-1)), d_n = t_n + beta (t_n - t_(n-1))",
    ),
}


def register_algorithm(name: str, algorithm: Algorithm) -> None:
    """Add ``algorithm`` to :data:`ALGORITHMS` under ``name`` (usable by ``griffin_lim`` and
    ``MelInverter(algorithm=name)`` on every engine path)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: expected a non-empty string, got {name!r}")
    if name in ALGORITHMS:
        raise ValueError(f"name: algorithm {name!r} is already registered")
    if not isinstance(algorithm, Algorithm):
        raise ValueError(f"algorithm: expected an Algorithm, got {type(algorithm).__name__}")
    ALGORITHMS[name] = algorithm


def loop_weights(algorithm: str, momentum: float, beta: float, gamma: float) -> LoopWeights:
    """The registered ``algorithm``'s weights, or ValueError naming the registry."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"algorithm: expected one of {sorted(ALGORITHMS)}, got {algorithm!r}")
    return ALGORITHMS[algorithm].weights(momentum, beta, gamma)


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
    mel: Tensor | None = None,
    detach_phase: bool = False,
    checkpoint: bool = False,
    fused: bool | None = None,
    window: Tensor | None = None,
) -> Tensor:
    """Estimate a waveform whose STFT magnitude matches ``magnitude``.

    With ``P_C(X) = STFT(iSTFT(X))`` and ``P_A(X) = A X / |X|`` (see :data:`ALGORITHMS`):

    - ``"gla"``: ``c_n = P_C(P_A(c_{n-1}))`` (Griffin & Lim 1984).
    - ``"fgla"``: ``t_n = P_C(P_A(c_{n-1}))``, ``c_n = t_n + momentum (t_n - t_{n-1})``
      (Perraudin et al. 2013); ``momentum=0`` is plain GLA.
    - ``"agla"``: ``t_n = (1 - gamma) d_{n-1} + gamma P_C(P_A(c_{n-1}))``,
      ``c_n = t_n + momentum (t_n - t_{n-1})``, ``d_n = t_n + beta (t_n - t_{n-1})``
      (Nenov et al. 2023).

    With ``mel`` (mel-consistent phase retrieval, :class:`~specinv_lightning.MelInverter`'s
    default), the target magnitude of every iteration is the current consistent magnitude
    ``|t_n|`` moved onto the mel constraint, ``A_n = clamp(|t_n|^p + P (M - F |t_n|^p), 0)^(1/p)``,
    instead of the fixed ``magnitude``.

    Which loop runs (autograd, in-place, fused, chunked) is decided by the engine: the autograd
    loop when a gradient is needed, else preallocated in-place buffers. Results are the same.

    Args:
        magnitude: STFT magnitude ``(..., n_freqs, frames)``, values >= 0 (not the power).
        config: The STFT the magnitude belongs to.
        n_iter: Number of iterations (each costs one iSTFT and one STFT).
        algorithm: A name in :data:`ALGORITHMS` (``"gla"``, ``"fgla"``, ``"agla"``, ...).
        momentum: ``alpha`` of FGLA/AGLA.
        beta: ``beta`` of AGLA.
        gamma: ``gamma`` of AGLA.
        init: Initial phase, see :func:`initial_phase` (with ``mel``, ``"pghi"`` also tries the
            mel's peak spectrum and keeps, per item, the phase that is more mel-consistent after
            two iterations of this loop).
        generator: Random generator for ``init="random"``.
        length: Output length in samples (default :meth:`MelConfig.num_samples`).
        mel: Optional linear (uncompressed) mel ``(..., n_mels, frames)`` in the config's
            ``power`` domain, one per magnitude item, to stay consistent with.
        detach_phase: Stop gradients through the phase path (gradients then flow only through the
            magnitude applied at each step).
        checkpoint: Gradient checkpointing of every iteration: backward recomputes each
            iteration instead of storing its intermediates.
        fused: Without autograd, run the elementwise chains through ``torch.compile``d kernels
            (``None``: where compilation is available; ``SPECINV_LIGHTNING_COMPILE=0`` disables
            it). Results are equal to eager ones.
        window: Optional precomputed :func:`~specinv_lightning.functional.make_window`.

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
    magnitude = check_magnitude(magnitude, config)
    weights = loop_weights(algorithm, momentum, beta, gamma)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"n_iter: expected an integer >= 0, got {n_iter!r}")
    constraint, peaks = None, None
    if mel is not None:
        mel = check_mel(mel, config, "mel", linear=True)
        if mel.shape[:-2] != magnitude.shape[:-2] or mel.shape[-1] != magnitude.shape[-1]:
            raise ValueError(
                f"mel: expected shape {(*magnitude.shape[:-2], config.n_mels, magnitude.shape[-1])}"
                f" (one mel per magnitude item), got {tuple(mel.shape)}"
            )
        fb = mel_filterbank(config, torch.float64, magnitude.device)
        ops = MelOperators.build(fb, config.power, magnitude.dtype)
        constraint = MelConstraint(mel.reshape(-1, *mel.shape[-2:]).to(magnitude.dtype), ops)
        if isinstance(init, str) and init == "pghi":
            analysis = make_window(config, torch.float64, fb.device) if window is None else window
            peaks = peak_model(config, fb, analysis).to(magnitude.dtype)
    grad = needs_grad(magnitude, mel, init if isinstance(init, Tensor) else None)
    engine = choose_engine(config, magnitude, grad=grad, fused=fused)
    return retrieve(
        magnitude,
        config,
        engine,
        n_iter=n_iter,
        weights=weights,
        init=init,
        generator=generator,
        length=length,
        constraint=constraint,
        detach_phase=detach_phase,
        checkpoint=checkpoint,
        window=window,
        peaks=peaks,
        mel=None if mel is None else mel.to(magnitude.dtype),
    )
