"""The torch.compile-fused Griffin-Lim kernels give the same results as the eager ones."""

from __future__ import annotations

import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import _kernels
from specinv_lightning.functional._engine import choose_engine


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("algorithm", ["fgla", "agla"])
def test_fused_equals_eager(speech: torch.Tensor, dtype: torch.dtype, algorithm: str) -> None:
    cfg = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)
    mel = MelSpectrogram(cfg)(speech[:16000].to(dtype)[None].repeat(2, 1))
    kwargs = dict(n_iter=6, algorithm=algorithm)
    with torch.inference_mode():
        eager = MelInverter(cfg, fused=False, **kwargs)(mel)
        fused = MelInverter(cfg, fused=True, **kwargs)(mel)
    if _kernels._COMPILE_FAILED:
        pytest.skip("torch.compile is unavailable here; the eager fallback was used")
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    scale = eager.abs().max()
    assert (fused - eager).abs().max() <= tol * scale


def test_automatic_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = MelConfig.from_preset("hifigan")
    mel = torch.zeros(1, 80, 4)
    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "0")
    assert choose_engine(cfg, mel, grad=False).fused is False
    assert choose_engine(cfg, mel, grad=False, fused=True).fused is True  # explicit wins
    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "1")
    assert choose_engine(cfg, mel, grad=False).fused is _kernels.fusion_available(mel.device)
    assert choose_engine(cfg, mel, grad=True, fused=True).fused is False  # autograd stays eager


def test_fusion_needs_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "1")
    monkeypatch.setenv("PATH", "")  # no C++ compiler to be found
    monkeypatch.delenv("CXX", raising=False)
    assert _kernels.fusion_available(torch.device("cpu")) is False
    assert _kernels.fusion_available(torch.device("meta")) is False


def test_fused_under_autograd_has_finite_gradients() -> None:
    # explicit fused=True with gradients uses the grad-safe eager kernels (no NaN where |t| = 0)
    mel = MelSpectrogram("hifigan")(0.1 * torch.randn(1, 22050)).requires_grad_()
    MelInverter("hifigan", n_iter=3, fused=True)(mel, length=22050).square().sum().backward()
    assert torch.isfinite(mel.grad).all()
    assert mel.grad.abs().sum() > 0
