"""The phase-retrieval engine (private): which loop runs, decided once, and the two loops.

:func:`choose_engine` is the one place that decides how an inversion runs:

- ``grad``: the autograd loop (unrolled, differentiable, optional checkpointing), or without
  autograd the same iterations under ``torch.no_grad``;
- ``inplace``: without autograd, the iterations run in preallocated buffers with in-place
  operators (``_inplace``), for every padding scheme those handle;
- ``fused``: the in-place loop's elementwise chains run as ``torch.compile``-fused kernels;
- ``chunk``: on CPU without autograd, items are processed a few at a time so that each chunk's
  buffers stay in cache.

:func:`retrieve` runs the loop the :class:`Engine` names. Both loops run the same recurrence,
described by :class:`LoopWeights` (the algorithms of ``phase.ALGORITHMS`` are sets of weights), with
an optional :class:`MelConstraint` (mel-consistent phase retrieval).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch
import torch.utils.checkpoint
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._frames import StftPlan, istft_frames, make_plan, stft_frames
from specinv_lightning.functional._inplace import (
    BandedFilterbank,
    active_bins,
    filterbank_blocks,
    project_consistent_,
    project_onto_mel_,
    rescale_onto_mel_,
    supports_inplace_projection,
)
from specinv_lightning.functional._kernels import (
    apply_magnitude,
    extrapolate,
    fusion_available,
    inplace_kernels,
)
from specinv_lightning.functional.initial import initial_phase
from specinv_lightning.functional.magnitude import (
    filterbank_pinv,
    project_onto_mel,
    rescale_onto_mel,
)
from specinv_lightning.functional.magnitude import root as magnitude_root
from specinv_lightning.functional.peaks import PeakModel
from specinv_lightning.functional.stft import make_window

# multiplicative mel steps per iteration for power-2 mels (MelConstraint; 0: the additive step)
RESCALE_SWEEPS = 3
POWER_FLOOR = 1e-12  # keeps d sqrt(x)/dx finite for power spectra
# init="pghi" judges its three candidate phases after this many iterations of the loop itself: a
# single projection prefers the peak phase on chords where it stalls (partials under ~2.5 bins
# apart) and the magnitude's phase, or random, ends ahead
PGHI_PROBE = 2
# Working set of one item in the no-autograd loop, in elements per frame: the iSTFT frames
# (n_fft) and about seven spectrogram-sized real buffers (t_n, t_(n-1), c: complex; |t|: real).
CPU_CHUNK_BYTES = 24 * 2**20


class LoopWeights(NamedTuple):
    """The recurrence both loops run, with ``P_A(c) = A c / |c|`` and ``P_C = STFT(iSTFT(.))``:

    - ``t_n = lerp(d_(n-1), P_C(P_A(c_(n-1))), relax)`` (``relax = 1``: ``t_n = P_C(P_A(c_(n-1)))``);
    - ``c_n = t_n + extrapolate (t_n - t_(n-1))``;
    - ``d_n = t_n + damp (t_n - t_(n-1))`` (read only when ``relax != 1``).

    The first iteration has no ``t_0``: ``t_1 = P_C(P_A(c_0))`` and ``c_1 = d_1 = t_1``. After
    ``N`` iterations the waveform is the iSTFT of ``P_A(c_N)``.
    """

    relax: float = 1.0
    extrapolate: float = 0.0
    damp: float = 0.0


class Engine(NamedTuple):
    """How one inversion runs; built by :func:`choose_engine` (see the module docstring)."""

    grad: bool
    inplace: bool
    fused: bool
    chunk: int

    def autograd(self) -> contextlib.AbstractContextManager:
        """The grad mode the engine runs in (``no_grad`` unless it differentiates)."""
        return contextlib.nullcontext() if self.grad else torch.no_grad()


def needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd is on and any of ``tensors`` requires a gradient."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def choose_engine(
    config: MelConfig,
    magnitude: Tensor,
    grad: bool,
    fused: bool | None = None,
    device: torch.device | None = None,
) -> Engine:
    """The one decision of how an inversion of ``magnitude``-shaped input runs.

    Args:
        config: The transform.
        magnitude: The (mel or) magnitude to invert, ``(..., bins, frames)``: its item count,
            frame count, dtype and device decide the loop.
        grad: Differentiate (the autograd loop); else no autograd.
        fused: ``True``/``False`` force fusion on/off in the in-place loop; ``None`` fuses where
            :func:`~specinv_lightning.functional._kernels.fusion_available` says it can.
        device: Where it runs (default ``magnitude``'s device).
    """
    device = magnitude.device if device is None else device
    num_frames = magnitude.shape[-1]
    items = max(1, magnitude.shape[:-2].numel())
    if grad:
        return Engine(grad=True, inplace=False, fused=False, chunk=items)
    inplace = supports_inplace_projection(config, num_frames)
    use_fused = inplace and (fusion_available(device) if fused is None else fused)
    chunk = items
    if device.type == "cpu":
        per_item = num_frames * (config.n_fft + 7 * config.n_freqs) * magnitude.element_size()
        chunk = max(1, CPU_CHUNK_BYTES // per_item)
        if items > chunk:  # balanced: 16 items by at most 5 -> 4 chunks of 4
            count = -(-items // chunk)
            chunk = -(-items // count)
    return Engine(grad=False, inplace=inplace, fused=use_fused, chunk=min(chunk, items))


def root(spectrum: Tensor, power: float) -> Tensor:
    """``|X|`` from ``|X|^power`` (power 1 or 2), with a floor that keeps gradients finite."""
    return magnitude_root(spectrum, power, POWER_FLOOR)


class MelOperators(NamedTuple):
    """A filterbank ``F`` with what mel projections need: ``P = pinv(F)``, its active bins and
    its banded form, all in one dtype, and the config's ``power``."""

    fb: Tensor
    fb_pinv: Tensor
    bins: tuple[int, int]
    banded: BandedFilterbank
    power: float

    @classmethod
    def build(cls, fb: Tensor, power: float, dtype: torch.dtype | None = None) -> MelOperators:
        """From a (float64) filterbank; the operators are computed in float64, then cast."""
        fb64 = fb.double()
        banded = filterbank_blocks(fb64)
        return cls.cast(
            fb64, filterbank_pinv(fb64), banded.gram_pinv, banded, power, dtype or fb.dtype
        )

    @classmethod
    def cast(
        cls,
        fb: Tensor,
        fb_pinv: Tensor,
        gram_pinv: Tensor,
        blocks: BandedFilterbank,
        power: float,
        dtype: torch.dtype,
    ) -> MelOperators:
        """Cached float64 operators in ``dtype`` (``blocks`` gives the band layout)."""
        fb_d = fb.to(dtype)
        banded = BandedFilterbank(fb_d, gram_pinv.to(dtype), blocks.bins, blocks.mels)
        return cls(fb_d, fb_pinv.to(dtype), active_bins(fb), banded, power)


@dataclass(frozen=True)
class MelConstraint:
    """Mel-consistent target magnitude for ``mel`` ``M`` in the ``power`` domain.

    Power 1: ``|t| -> clamp(|t| + P (M - F |t|), 0)`` (:func:`project_onto_mel`). Power 2:
    ``|t|^2`` is rescaled by :data:`RESCALE_SWEEPS` multiplicative steps
    (:func:`rescale_onto_mel`), then the root is taken: on power spectra the additive step clips
    much of its correction away and the loop stalls (``benchmarks/power_mels.py`` measures both).
    ``mel`` is ``(items, n_mels, frames)``; under autograd the gradient flows through it.
    """

    mel: Tensor
    ops: MelOperators

    @property
    def rescales(self) -> bool:
        """Whether the step is multiplicative (power-2 mels, :data:`RESCALE_SWEEPS` > 0)."""
        return self.ops.power == 2.0 and RESCALE_SWEEPS > 0

    def __call__(self, mag: Tensor) -> Tensor:
        """The target for frame-major ``|t|`` ``(items, frames, n_freqs)`` (autograd-safe)."""
        ops, p = self.ops, self.ops.power
        spectrum = (mag.square() if p == 2.0 else mag).transpose(-1, -2)
        if self.rescales:
            out = rescale_onto_mel(spectrum, self.mel, ops.fb, RESCALE_SWEEPS)
        else:
            out = project_onto_mel(spectrum, self.mel, ops.fb, ops.fb_pinv, ops.bins)
        return root(out, p).transpose(-1, -2)

    def update_(self, mag: Tensor) -> Tensor:
        """In-place :meth:`__call__` on a frame-major scratch buffer (no autograd)."""
        ops, p = self.ops, self.ops.power
        spectrum = mag.square_().transpose(-1, -2) if p == 2.0 else mag.transpose(-1, -2)
        if self.rescales:
            rescale_onto_mel_(spectrum, self.mel, ops.banded, RESCALE_SWEEPS)
        else:
            project_onto_mel_(spectrum, self.mel, ops.fb, ops.fb_pinv, ops.bins, ops.banded)
        return mag.clamp_(min=POWER_FLOOR).sqrt_() if p == 2.0 else mag

    def frame_major(self) -> MelConstraint:
        """The same constraint with a frame-major copy of the mel (the in-place GEMMs read it
        without copying)."""
        mel = self.mel.detach().transpose(-1, -2).contiguous().transpose(-1, -2)
        return replace(self, mel=mel)

    def items(self, start: int, stop: int) -> MelConstraint:
        """The constraint of items ``start:stop``."""
        return replace(self, mel=self.mel[start:stop])


class _Loop(NamedTuple):
    """What one run of either loop needs besides its tensors."""

    config: MelConfig
    plan: StftPlan
    weights: LoopWeights
    n_iter: int
    natural: int  # samples of the consistent signal (config.num_samples of the frame count)


def retrieve(
    magnitude: Tensor,
    config: MelConfig,
    engine: Engine,
    *,
    n_iter: int,
    weights: LoopWeights,
    init: str | Tensor = "random",
    generator: torch.Generator | None = None,
    length: int | None = None,
    constraint: MelConstraint | None = None,
    detach_phase: bool = False,
    checkpoint: bool = False,
    window: Tensor | None = None,
    peaks: PeakModel | None = None,
    mel: Tensor | None = None,
) -> Tensor:
    """Phase retrieval of a validated ``magnitude`` ``(..., n_freqs, frames)`` as ``engine`` says.

    The initial phase is drawn for the whole batch before chunking, so chunked and one-shot runs
    give the same result. ``constraint`` has one mel item per magnitude item. ``peaks`` and the
    linear ``mel`` ``(..., n_mels, frames)`` inform ``init="pghi"`` (:func:`initial_phase`).
    Returns the waveform
    ``(..., length)`` (default ``config.num_samples(frames)``).
    """
    batch_shape, (n_freqs, num_frames) = magnitude.shape[:-2], magnitude.shape[-2:]
    if window is None:
        window = make_window(config, magnitude.dtype, magnitude.device)
    plan = make_plan(config, num_frames, window)
    natural = config.num_samples(num_frames)
    loop = _Loop(config, plan, weights, n_iter, natural)
    out_len = natural if length is None else length
    mags = magnitude.reshape(-1, n_freqs, num_frames)
    probe = None
    if n_iter > 0 and isinstance(init, str) and init == "pghi":
        short = loop._replace(n_iter=min(n_iter, PGHI_PROBE))
        probe = functools.partial(
            _probe, mags=mags, constraint=constraint, loop=short, engine=engine
        )
    phase = initial_phase(magnitude, init, generator, config, mel=mel, peaks=peaks, probe=probe)
    if phase.dim() > 2:
        phase = phase.reshape(mags.shape)
    with engine.autograd():
        waves = [
            istft_frames(_run(mags[a:b], p, c, loop, engine, detach_phase, checkpoint),
                         config, plan, out_len)
            for a, b, p, c in _chunks(engine.chunk, mags.shape[0], phase, constraint)
        ]  # fmt: skip
    wave = waves[0] if len(waves) == 1 else torch.cat(waves)
    return wave.reshape(*batch_shape, out_len)


def _probe(
    phases: Tensor, mags: Tensor, constraint: MelConstraint | None, loop: _Loop, engine: Engine
) -> Tensor:
    """``P_A(c_N)`` ``(candidates, ..., n_freqs, frames)`` after ``loop.n_iter`` iterations from
    each of the stacked phases (without autograd; items stay independent)."""
    count = phases.shape[0]
    phase = phases.reshape(-1, *mags.shape[-2:])
    stacked = mags.detach().repeat(count, 1, 1)
    both = (
        None
        if constraint is None
        else replace(constraint, mel=constraint.mel.detach().repeat(count, 1, 1))
    )
    with torch.no_grad():
        specs = [
            _run(stacked[a:b], p, c, loop, engine, detach_phase=True, checkpoint=False)
            for a, b, p, c in _chunks(engine.chunk, stacked.shape[0], phase, both)
        ]
    return torch.cat(specs).transpose(-1, -2).reshape(phases.shape)


def _chunks(
    size: int, items: int, phase: Tensor, constraint: MelConstraint | None
) -> Iterator[tuple[int, int, Tensor, MelConstraint | None]]:
    """``(start, stop, phase, constraint)`` of each chunk of ``size`` items."""
    for a in range(0, items, size):
        b = min(items, a + size)
        yield (
            a,
            b,
            phase[a:b] if phase.dim() > 2 else phase,
            None if constraint is None else constraint.items(a, b),
        )


def _run(
    mags: Tensor,
    phase: Tensor,
    constraint: MelConstraint | None,
    loop: _Loop,
    engine: Engine,
    detach_phase: bool,
    checkpoint: bool,
) -> Tensor:
    """Frame-major ``P_A(c_N)`` for magnitudes ``(items, n_freqs, frames)`` (the spectrogram the
    waveform is synthesised from)."""
    mag = mags.transpose(-1, -2).contiguous()  # frame-major (items, frames, n_freqs)
    angles = phase.transpose(-1, -2)
    c0 = torch.complex(mag * torch.cos(angles), mag * torch.sin(angles)).contiguous()
    if loop.n_iter == 0:
        return c0
    # relative floor for |c|^2: -140 dB below each item's peak, plus the dtype's tiny
    peak = mag.detach().amax(dim=(-2, -1), keepdim=True)
    eps = (1e-7 * peak).square() + torch.finfo(mag.dtype).tiny
    if engine.inplace:
        update = None if constraint is None else constraint.frame_major()
        return _inplace_loop(c0, mag, eps, loop, update, engine.fused)
    return _autograd_loop(c0, mag, eps, loop, constraint, detach_phase, checkpoint)


def _autograd_loop(
    c0: Tensor,
    mag: Tensor,
    eps: Tensor,
    loop: _Loop,
    constraint: MelConstraint | None,
    detach_phase: bool,
    checkpoint: bool,
) -> Tensor:
    """The iterations with autograd (unrolled; each optionally checkpointed)."""
    config, plan, w = loop.config, loop.plan, loop.weights
    relaxed = w.relax != 1.0

    def state(t1: Tensor | None, t0: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(c_n, target_n, d_n)`` from the last two consistent spectrograms ``t_n``, ``t_(n-1)``.

        Recomputing them instead of carrying them means a checkpointed iteration stores a single
        complex tensor (its ``t``), shared with the next iteration.
        """
        if t1 is None:
            return c0, mag, None
        c, d = t1, t1
        if t0 is not None:
            tr, pr = torch.view_as_real(t1), torch.view_as_real(t0)
            if w.extrapolate != 0.0:
                c = torch.view_as_complex(extrapolate(tr, pr, 1.0 + w.extrapolate))
            d = torch.view_as_complex(torch.lerp(pr, tr, 1.0 + w.damp)) if relaxed else None
        target = mag if constraint is None else constraint(t1.abs())
        return c, target, d

    def step(t1: Tensor | None, t0: Tensor | None) -> Tensor:
        c, target, d = state(t1, t0)
        cr = torch.view_as_real(c)
        applied = torch.view_as_complex(
            apply_magnitude(cr.detach() if detach_phase else cr, target, eps)
        )
        proj = stft_frames(istft_frames(applied, config, plan, loop.natural), config, plan.analysis)
        return torch.lerp(d, proj, w.relax) if relaxed and d is not None else proj

    use_checkpoint = checkpoint and torch.is_grad_enabled()
    t1: Tensor | None = None
    t0: Tensor | None = None
    for _ in range(loop.n_iter):
        if use_checkpoint:
            t = torch.utils.checkpoint.checkpoint(step, t1, t0, use_reentrant=False)
        else:
            t = step(t1, t0)
        t1, t0 = t, t1
    c, target, _ = state(t1, t0)
    return torch.view_as_complex(apply_magnitude(torch.view_as_real(c), target, eps))


def _inplace_loop(
    c0: Tensor,
    mag: Tensor,
    eps: Tensor,
    loop: _Loop,
    constraint: MelConstraint | None,
    fused: bool,
) -> Tensor:
    """The same iterations without autograd, in preallocated buffers (``c0`` is overwritten)."""
    config, plan, w = loop.config, loop.plan, loop.weights
    apply_, extrapolate_into = inplace_kernels(fused)
    relaxed = w.relax != 1.0
    items, num_frames, _ = c0.shape
    segments = -(-config.n_fft // config.hop_length)
    signal = mag.new_empty(items, (num_frames + segments - 1) * config.hop_length)
    t_bufs = [torch.empty_like(c0), torch.empty_like(c0)]
    proj = torch.empty_like(c0) if relaxed else None
    mag_t = torch.empty_like(mag)
    c, target = c0, mag
    t1: Tensor | None = None
    t0: Tensor | None = None
    for it in range(loop.n_iter + 1):
        if t1 is not None:
            # c_n = t_n + extrapolate (t_n - t_(n-1)) into c (no longer needed), |t_n| into mag_t
            tr = torch.view_as_real(t1)
            pr = tr if t0 is None or w.extrapolate == 0.0 else torch.view_as_real(t0)
            extrapolate_into(torch.view_as_real(c), mag_t, tr, pr, 1.0 + w.extrapolate)
            target = mag if constraint is None else constraint.update_(mag_t)
            if relaxed and t0 is not None:  # d_n = t_n + damp (t_n - t_(n-1)), into t0
                t0r = torch.view_as_real(t0)
                torch.lerp(t0r, tr, 1.0 + w.damp, out=t0r)
        apply_(torch.view_as_real(c), target, eps)  # P_A, in place
        if it == loop.n_iter:
            break
        # P_C: the new t goes into the buffer of t_(n-1) (or d_(n-1)), no longer needed after
        dest = t_bufs[it % 2]
        if proj is None:
            project_consistent_(c, config, plan, dest, signal)
        else:  # t = lerp(d, P_C(P_A(c)), relax); d_1 = t_1, and t_1 = P_C(P_A(c_0))
            project_consistent_(c, config, plan, proj, signal)
            if t1 is None:
                dest.copy_(proj)
            else:
                if t0 is None:
                    dest.copy_(t1)
                torch.lerp(dest, proj, w.relax, out=dest)
        t1, t0 = dest, t1
    return c
