"""Elementwise chains of the Griffin-Lim loop (private), eager and fused with ``torch.compile``.

They operate on real views (``torch.view_as_real``) of complex frame-major spectrograms: on CPU,
PyTorch's complex elementwise kernels are several times slower than real ones, and inductor fuses
real chains into one pass.

- :func:`apply_magnitude` and :func:`extrapolate` are the autograd loop's kernels (always eager:
  their forms keep gradients finite where ``|c| = 0``).
- :func:`inplace_kernels` gives the no-autograd loop's in-place kernels, compiled when the engine
  chose fusion (:func:`fusion_available` tells whether compiling can work here); a compilation
  that fails at run time warns once and the process goes on with the eager kernels.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

__all__ = [
    "apply_magnitude",
    "extrapolate",
    "apply_magnitude_",
    "extrapolate_into",
    "inplace_kernels",
    "fusion_available",
]


def apply_magnitude(cr: Tensor, target: Tensor, eps: Tensor) -> Tensor:
    """``target * c / |c|`` on the real view ``cr`` of ``c`` (``|c|^2`` floored by ``eps``)."""
    re, im = cr[..., 0], cr[..., 1]
    scale = target * torch.rsqrt(re * re + im * im + eps)
    return cr * scale.unsqueeze(-1)


def extrapolate(tr: Tensor, pr: Tensor, weight: float) -> Tensor:
    """``lerp(pr, tr, weight)`` on real views: ``t + (weight - 1) (t - t_prev)``."""
    return torch.lerp(pr, tr, weight)


def apply_magnitude_(cr: Tensor, target: Tensor, eps: Tensor) -> None:
    """In-place :func:`apply_magnitude` (no autograd): ``cr <- target * c / |c|``."""
    re, im = cr[..., 0], cr[..., 1]
    scale = torch.rsqrt(re * re + im * im + eps).mul_(target)
    cr.mul_(scale.unsqueeze(-1))


def extrapolate_into(c_out: Tensor, mag_out: Tensor, tr: Tensor, pr: Tensor, weight: float) -> None:
    """:func:`extrapolate` into ``c_out`` and ``|t|`` into ``mag_out`` (no autograd)."""
    torch.lerp(pr, tr, weight, out=c_out)
    torch.hypot(tr[..., 0], tr[..., 1], out=mag_out)


# The fusable variants write real and imaginary parts as separate outputs stacked at the end:
# inductor vectorises that layout far better than interleaved strided access (2-3x on CPU).


def _apply_magnitude_fusable_(cr: Tensor, target: Tensor, eps: Tensor) -> None:
    re, im = cr.unbind(-1)
    scale = target * torch.rsqrt(re * re + im * im + eps)
    cr.copy_(torch.stack((re * scale, im * scale), -1))


def _extrapolate_into_fusable(
    c_out: Tensor, mag_out: Tensor, tr: Tensor, pr: Tensor, weight: float
) -> None:
    re, im = tr.unbind(-1)
    pre, pim = pr.unbind(-1)
    c_out.copy_(torch.stack((pre + weight * (re - pre), pim + weight * (im - pim)), -1))
    mag_out.copy_(torch.sqrt(re * re + im * im))


_COMPILED: dict[str, Callable] = {}
_COMPILE_FAILED: list[str] = []  # the first failure's message, once compilation failed here


def fusion_available(device: torch.device) -> bool:
    """Whether fused kernels can be compiled for ``device`` in this process.

    False when ``SPECINV_LIGHTNING_COMPILE=0`` is set, after a compilation failed in this process,
    where TorchDynamo is unsupported (e.g. this Python version), on CPU without a C++ compiler
    (inductor's CPU backend needs one), on CUDA without Triton, and on other devices.
    """
    if _COMPILE_FAILED or os.environ.get("SPECINV_LIGHTNING_COMPILE", "1") == "0":
        return False
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return False
    if device.type == "cpu":
        names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
        return any(name and shutil.which(name) for name in names)
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        return has_triton()
    return False


def _compiled_or_eager(name: str, fusable: Callable, eager: Callable) -> Callable:
    """Run the compiled ``fusable`` kernel; after a compilation failure, warn once and use
    ``eager`` (same results) for the rest of the process."""
    compiled = torch.compile(fusable, dynamic=True)

    def run(*args):  # noqa: ANN202
        if not _COMPILE_FAILED:
            try:
                return compiled(*args)
            except Exception as err:  # compiler missing or unsupported op: stay correct, go eager
                _COMPILE_FAILED.append(f"{type(err).__name__}: {err}")
                warnings.warn(
                    f"specinv_lightning: torch.compile of {name} failed ({_COMPILE_FAILED[0]});"
                    " using eager kernels",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return eager(*args)

    return run


def inplace_kernels(fused: bool) -> tuple[Callable, Callable]:
    """``(apply_magnitude_, extrapolate_into)`` for the no-autograd loop, compiled when ``fused``."""
    if not fused:
        return apply_magnitude_, extrapolate_into
    if not _COMPILED:
        _COMPILED["apply_"] = _compiled_or_eager(
            "apply_magnitude_", _apply_magnitude_fusable_, apply_magnitude_
        )
        _COMPILED["extrapolate_into"] = _compiled_or_eager(
            "extrapolate_into", _extrapolate_into_fusable, extrapolate_into
        )
    return _COMPILED["apply_"], _COMPILED["extrapolate_into"]
