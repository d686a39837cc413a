"""The initial phase of phase retrieval: one function, chosen by name everywhere.

``MelInverter``, ``griffin_lim``, the loss, the callback and the CLI all start from
:func:`initial_phase`, so the same name gives the same phase wherever it is used.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional.pghi import pghi_phase

__all__ = ["INITS", "Init", "initial_phase"]

Init = Literal["pghi", "random", "zeros"]
INITS: tuple[str, ...] = get_args(Init)


def initial_phase(
    magnitude: Tensor,
    init: str | Tensor = "random",
    generator: torch.Generator | None = None,
    config: MelConfig | None = None,
) -> Tensor:
    """Phase in radians to start phase retrieval from, broadcastable to ``magnitude``.

    Args:
        magnitude: Real ``(..., n_freqs, frames)``.
        init: ``"pghi"``: computed from the magnitude itself (:func:`~specinv_lightning.functional.pghi.pghi_phase`,
            phase-gradient integration along spectral peaks; deterministic, per item, needs
            ``config``). ``"random"``: one phase ``(n_freqs, frames)``, uniform on the circle, shared by
            every item, drawn frame by frame (in float32, then cast) so that an item's phase
            depends neither on the batch it is in nor on the dtype, and a longer item starts
            with the same phases as a shorter one. ``"zeros"``: phase 0, ``(n_freqs, frames)``.
            A tensor shaped like ``magnitude``: real phases in radians, or a complex spectrogram
            whose phase is used (0 where it is 0), e.g. the target's STFT for teacher forcing.
        generator: Optional ``torch.Generator`` for ``"random"`` (it may live on another device
            than ``magnitude``).
        config: The STFT of ``magnitude`` (needed by ``"pghi"``).

    Returns:
        Real phases of ``magnitude``'s dtype and device: ``(n_freqs, frames)`` for ``"random"``
        and ``"zeros"``, else ``magnitude``'s shape.

    Raises:
        ValueError: Unknown ``init``, a tensor of the wrong shape, or ``"pghi"`` without ``config``.

    Example:
        >>> mag = torch.ones(2, 5, 3)
        >>> initial_phase(mag, "random", torch.Generator().manual_seed(0)).shape
        torch.Size([5, 3])
        >>> float(initial_phase(mag, "zeros").abs().max())
        0.0
    """
    n_freqs, num_frames = magnitude.shape[-2:]
    dtype, device = magnitude.dtype, magnitude.device
    if isinstance(init, Tensor):
        if init.shape != magnitude.shape:
            raise ValueError(
                f"init: expected a phase/complex tensor of shape {tuple(magnitude.shape)},"
                f" got {tuple(init.shape)}"
            )
        init = init.detach().to(device)
        return (torch.angle(init) if init.is_complex() else init).to(dtype)
    if init == "pghi":
        if config is None:
            raise ValueError("config: init='pghi' needs the STFT config of the magnitude")
        return pghi_phase(magnitude, config)
    if init == "zeros":
        return torch.zeros(n_freqs, num_frames, dtype=dtype, device=device)
    if init == "random":
        where = generator.device if generator is not None else device
        draws = torch.rand(num_frames, n_freqs, generator=generator, device=where)
        return (draws.to(device=device, dtype=dtype) * (2 * math.pi)).t()
    raise ValueError(f"init: expected one of {INITS} or a tensor, got {init!r}")
