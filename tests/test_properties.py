"""Property-based input validation: for random shapes, dtypes and extreme values, the inverter, the
metrics and the loss either raise a ``ValueError`` naming the input or return finite values (and
finite gradients); never a silent inf/NaN."""

from __future__ import annotations

import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, WaveformReconstructionLoss
from specinv_lightning.functional import (
    log_spectral_distance,
    mel_consistency,
    spectral_convergence,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CFG = MelConfig(sample_rate=8000, n_fft=64, hop_length=16, n_mels=8, f_max=4000)
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
DTYPES = st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64])
LEVELS = st.sampled_from([0.0, 1e-30, 1e-5, 1.0, -5.0, -11.5, 30.0, 40.0, 95.0, 1e4, -1e4, 1e30])


@st.composite
def tensors(draw: st.DrawFn, shape: tuple[int, ...]) -> torch.Tensor:
    """``level + scale * noise`` in a random dtype, with one extreme value sometimes."""
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = draw(LEVELS) + draw(st.sampled_from([0.0, 1e-3, 1.0, 100.0])) * torch.randn(
        shape, generator=gen, dtype=torch.float64
    )
    if draw(st.booleans()):
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(LEVELS)
    dtype = draw(DTYPES)
    limit = torch.finfo(dtype).max
    return x.clamp(-limit, limit).to(dtype)  # finite in its own dtype


@st.composite
def mels(draw: st.DrawFn) -> torch.Tensor:
    batch = draw(st.integers(1, 3))
    bands = draw(st.sampled_from([CFG.n_mels, CFG.n_mels - 1]))
    frames = draw(st.integers(1, 12))
    mel = draw(tensors((batch, bands, frames)))
    if draw(st.booleans()):  # a realistic log-mel with one extreme frame
        mel = (-5.0 + torch.randn(mel.shape, generator=torch.Generator().manual_seed(1))).to(
            mel.dtype
        )
        mel[0, :, draw(st.integers(0, frames - 1))] = draw(LEVELS)
    return mel


def _finite_or_value_error(fn, *args) -> torch.Tensor | None:  # noqa: ANN001
    try:
        out = fn(*args)
    except ValueError as err:
        assert str(err).split(":")[0], err  # names the argument
        return None
    assert torch.isfinite(out).all(), out
    return out


@SETTINGS
@given(mels())
def test_inverter(mel: torch.Tensor) -> None:
    inverter = MelInverter(CFG, n_iter=2)
    with torch.no_grad():
        _finite_or_value_error(inverter, mel)
    grad_mel = mel.detach().float().requires_grad_()
    out = _finite_or_value_error(inverter, grad_mel)
    if out is not None:  # a scale-free objective: a log-mel of 95 is a 1e41-loud waveform
        (out / out.detach().abs().amax().clamp(min=1e-30)).square().sum().backward()
        assert torch.isfinite(grad_mel.grad).all()


@SETTINGS
@given(st.data())
def test_spectral_metrics(data: st.DataObject) -> None:
    shape = (
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 6)),
        data.draw(st.integers(1, 9)),
    )
    preds, target = data.draw(tensors(shape)), data.draw(tensors(shape))
    target = target.to(preds.dtype)
    _finite_or_value_error(spectral_convergence, preds, target)
    _finite_or_value_error(spectral_convergence, preds.abs(), target.abs())
    _finite_or_value_error(log_spectral_distance, preds.abs(), target.abs())


@SETTINGS
@given(mels(), st.data())
def test_mel_consistency_agrees_with_the_inverter(mel: torch.Tensor, data: st.DataObject) -> None:
    wave = data.draw(tensors((mel.shape[0], max(1, CFG.num_samples(mel.shape[-1])))))
    wave = wave.to(mel.dtype)
    try:
        with torch.no_grad():
            MelInverter(CFG, n_iter=0)(mel)
        inverter_ok = True
    except ValueError:
        inverter_ok = False
    score = _finite_or_value_error(mel_consistency, wave, mel, CFG)
    if score is not None:  # what the metric accepts, the inverter accepts
        assert inverter_ok or wave.shape[-1] < CFG.min_samples


@SETTINGS
@given(mels(), st.data())
def test_loss(mel: torch.Tensor, data: st.DataObject) -> None:
    frames = mel.shape[-1]
    wave = data.draw(tensors((mel.shape[0], max(1, CFG.num_samples(frames)))))
    loss_fn = WaveformReconstructionLoss(CFG, n_iter=2, checkpoint=False)
    pred = mel.detach().float().requires_grad_()
    loss = _finite_or_value_error(loss_fn, pred, wave.float())
    if loss is not None:
        loss.backward()
        assert torch.isfinite(pred.grad).all()
