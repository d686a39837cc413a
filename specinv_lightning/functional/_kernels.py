"""Elementwise chains of the Griffin-Lim loop, eager and (optionally) fused with ``torch.compile``.

They operate on real views (``torch.view_as_real``) of complex frame-major spectrograms: on CPU,
PyTorch's complex elementwise kernels are several times slower than real ones, and inductor fuses
real chains into one pass. Fusion is opt-in (``fused=True``) and falls back to the eager functions,
with a warning, wherever compilation is unavailable (no C++ compiler, unsupported platform).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "apply_magnitude",
    "extrapolate",
    "apply_magnitude_",
    "extrapolate_into",
    "kernels",
    "inplace_kernels",
    "fusion_available",
]


def apply_magnitude(cr: Tensor, target: Tensor, eps: Tensor) -> Tensor:
    """``target * c / |c|`` on the real view ``cr`` of ``c`` (``|c|^2`` floored by ``eps``)."""
    re, im = cr[..., 0], cr[..., 1]
    scale = target * torch.rsqrt(re * re + im * im + eps)
    return cr * scale.unsqueeze(-1)


def extrapolate(tr: Tensor, pr: Tensor, weight: float) -> tuple[Tensor, Tensor]:
    """``(lerp(pr, tr, weight), |t|)`` on real views: the momentum step and the magnitude of ``t``.

    ``|t|`` comes from the complex ``abs``, whose gradient is 0 (not NaN) where ``t = 0``.
    """
    return torch.lerp(pr, tr, weight), torch.view_as_complex(tr).abs()


def apply_magnitude_(cr: Tensor, target: Tensor, eps: Tensor) -> None:
    """In-place :func:`apply_magnitude` (no autograd): ``cr <- target * c / |c|``."""
    re, im = cr[..., 0], cr[..., 1]
    scale = torch.rsqrt(re * re + im * im + eps).mul_(target)
    cr.mul_(scale.unsqueeze(-1))


def extrapolate_into(c_out: Tensor, mag_out: Tensor, tr: Tensor, pr: Tensor, weight: float) -> None:
    """:func:`extrapolate` into preallocated real views (no autograd)."""
    torch.lerp(pr, tr, weight, out=c_out)
    torch.hypot(tr[..., 0], tr[..., 1], out=mag_out)


# The fusable variants write real and imaginary parts as separate outputs stacked at the end:
# inductor vectorises that layout far better than interleaved strided access (2-3x on CPU).


def _apply_magnitude_fusable(cr: Tensor, target: Tensor, eps: Tensor) -> Tensor:
    re, im = cr.unbind(-1)
    scale = target * torch.rsqrt(re * re + im * im + eps)
    return torch.stack((re * scale, im * scale), -1)


def _extrapolate_fusable(tr: Tensor, pr: Tensor, weight: float) -> tuple[Tensor, Tensor]:
    re, im = tr.unbind(-1)
    pre, pim = pr.unbind(-1)
    out = torch.stack((pre + weight * (re - pre), pim + weight * (im - pim)), -1)
    return out, torch.sqrt(re * re + im * im)


def _apply_magnitude_inplace_fusable(cr: Tensor, target: Tensor, eps: Tensor) -> None:
    cr.copy_(_apply_magnitude_fusable(cr, target, eps))


def _extrapolate_into_fusable(
    c_out: Tensor, mag_out: Tensor, tr: Tensor, pr: Tensor, weight: float
) -> None:
    c, mag = _extrapolate_fusable(tr, pr, weight)
    c_out.copy_(c)
    mag_out.copy_(mag)


_COMPILED: dict[str, Callable] = {}
_FAILED = False


def fusion_available() -> bool:
    """Whether fused kernels should be used by default.

    False after a compilation failed in this process, or when the environment variable
    ``SPECINV_LIGHTNING_COMPILE=0`` is set (explicit ``fused=True`` still compiles).
    """
    return not _FAILED and os.environ.get("SPECINV_LIGHTNING_COMPILE", "1") != "0"


def _fallback(name: str, fusable: Callable, eager: Callable) -> Callable:
    """Run the compiled ``fusable`` kernel; use the grad-safe ``eager`` one under autograd
    (the fusable forms, e.g. ``sqrt(re^2 + im^2)``, have infinite derivatives at 0) or once
    compilation has failed in this process."""
    compiled = torch.compile(fusable, dynamic=True)

    def run(*args):  # noqa: ANN202
        global _FAILED
        needs_grad = torch.is_grad_enabled() and any(
            isinstance(a, Tensor) and a.requires_grad for a in args
        )
        if not _FAILED and not needs_grad:
            try:
                return compiled(*args)
            except Exception as err:  # compiler missing or unsupported op: stay correct, go eager
                _FAILED = True
                warnings.warn(
                    f"specinv_lightning: torch.compile of {name} failed ({type(err).__name__}:"
                    f" {err}); using eager kernels",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return eager(*args)

    return run


def kernels(fused: bool) -> tuple[Callable, Callable]:
    """``(apply_magnitude, extrapolate)``, compiled when ``fused`` and fusion is available."""
    if not fused or _FAILED:
        return apply_magnitude, extrapolate
    if "apply" not in _COMPILED:
        _COMPILED["apply"] = _fallback("apply_magnitude", _apply_magnitude_fusable, apply_magnitude)
        _COMPILED["extrapolate"] = _fallback("extrapolate", _extrapolate_fusable, extrapolate)
    return _COMPILED["apply"], _COMPILED["extrapolate"]


def inplace_kernels(fused: bool) -> tuple[Callable, Callable]:
    """``(apply_magnitude_, extrapolate_into)`` for the no-autograd loop, compiled when ``fused``."""
    if not fused or _FAILED:
        return apply_magnitude_, extrapolate_into
    if "apply_" not in _COMPILED:
        _COMPILED["apply_"] = _fallback(
            "apply_magnitude_", _apply_magnitude_inplace_fusable, apply_magnitude_
        )
        _COMPILED["extrapolate_into"] = _fallback(
            "extrapolate_into", _extrapolate_into_fusable, extrapolate_into
        )
    return _COMPILED["apply_"], _COMPILED["extrapolate_into"]
