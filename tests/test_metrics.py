"""torchmetrics classes: accumulation, per-item means, lengths, states, device/dtype, errors, plot."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.utilities.data import dim_zero_sum

from specinv_lightning import (
    LogSpectralDistance,
    MelConfig,
    MelConsistency,
    MelSpectrogram,
    SpectralConvergence,
)
from specinv_lightning.functional import (
    log_spectral_distance,
    mel_consistency,
    spectral_convergence,
)

CFG = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)


def _pairs(seed: int = 0, n: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 6, 9, generator=gen) * torch.logspace(-1, 1, n)[:, None, None]
    preds = (target + 0.2 * torch.randn(target.shape, generator=gen)).abs()
    return preds, target


@pytest.mark.parametrize(
    ("metric_fn", "functional"),
    [
        (lambda: SpectralConvergence(), lambda p, t, **k: spectral_convergence(p, t, **k)),
        (
            lambda: SpectralConvergence(db=True),
            lambda p, t, **k: spectral_convergence(p, t, db=True, **k),
        ),
        (lambda: LogSpectralDistance(), lambda p, t, **k: log_spectral_distance(p, t, **k)),
    ],
)
def test_accumulation_equals_one_big_update(metric_fn, functional) -> None:
    preds, target = _pairs()
    lengths = torch.tensor([9, 3, 9, 1, 5, 9, 2])
    split = [metric_fn() for _ in range(2)]
    for i, j in ((0, 2), (2, 3), (3, 7)):  # uneven batches
        split[0].update(preds[i:j], target[i:j])
        split[1].update(preds[i:j], target[i:j], lengths=lengths[i:j])
    whole = metric_fn()
    whole.update(preds, target)
    torch.testing.assert_close(split[0].compute(), whole.compute())
    # compute() is the mean of per-item values over every item seen
    torch.testing.assert_close(whole.compute(), functional(preds, target))
    torch.testing.assert_close(split[1].compute(), functional(preds, target, lengths=lengths))
    assert int(whole.count) == 7
    torch.testing.assert_close(
        whole.total.float(), functional(preds, target, reduction="sum"), rtol=1e-5, atol=1e-5
    )
    # reset clears the states
    whole.reset()
    assert int(whole.count) == 0 and float(whole.total) == 0.0


def test_state_definitions() -> None:
    for metric in (SpectralConvergence(), LogSpectralDistance(), MelConsistency(CFG)):
        assert metric.full_state_update is False
        assert metric.higher_is_better is False
        assert metric.is_differentiable is True
        assert set(metric._defaults) == {"total", "count"}
        assert metric._reductions["total"] is not None and metric._reductions["count"] is not None
        assert metric._reductions["total"] is dim_zero_sum
        assert metric._reductions["count"] is dim_zero_sum


def test_forward_returns_batch_value_and_is_differentiable() -> None:
    preds, target = _pairs(1)
    metric = SpectralConvergence()
    p = preds.clone().requires_grad_()
    batch_value = metric(p[:3], target[:3])
    torch.testing.assert_close(batch_value, spectral_convergence(preds[:3], target[:3]))
    batch_value.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    metric(preds[3:], target[3:])
    torch.testing.assert_close(metric.compute(), spectral_convergence(preds, target))


def test_mel_consistency_metric(speech) -> None:
    cfg = MelConfig.from_preset("hifigan", sample_rate=16000)
    wave = speech[:24000].reshape(3, 8000)
    mel = MelSpectrogram(cfg)(wave)
    noisy = mel + 0.2 * torch.randn_like(mel)
    metric = MelConsistency(cfg)
    # the mel transform is a submodule: its buffers move with .to(device/dtype)
    assert "transform.fb" in dict(metric.named_buffers())
    with torch.inference_mode():
        metric.update(wave[:1], noisy[:1])
        metric.update(wave[1:], noisy[1:], lengths=torch.tensor([mel.shape[-1], 12]))
    expected = torch.cat(
        [
            mel_consistency(wave[:2], noisy[:2], cfg, reduction="none"),
            mel_consistency(wave[2:], noisy[2:], cfg, reduction="none", lengths=[12]),
        ]
    ).mean()
    torch.testing.assert_close(metric.compute(), expected)
    # float64 inputs work with the float64 buffers
    metric64 = MelConsistency("hifigan")
    wave64 = torch.randn(2, 22050, dtype=torch.float64)
    metric64.update(wave64, MelSpectrogram("hifigan")(wave64))
    assert float(metric64.compute()) < -100


def test_metric_bad_input() -> None:
    metric = SpectralConvergence()
    with pytest.raises(ValueError, match="same shape"):
        metric.update(torch.ones(2, 3, 4), torch.ones(2, 3, 5))
    with pytest.raises(ValueError, match="NaN/Inf"):
        metric.update(torch.full((2, 3, 4), float("inf")), torch.ones(2, 3, 4))
    with pytest.raises(ValueError, match="empty"):
        metric.update(torch.ones(0, 3, 4), torch.ones(0, 3, 4))
    with pytest.raises(ValueError, match="NaN/Inf"):
        LogSpectralDistance().update(torch.ones(2, 3, 4), torch.full((2, 3, 4), float("nan")))
    with pytest.raises(ValueError, match="n_mels"):
        MelConsistency(CFG).update(torch.randn(2, 4000), torch.zeros(2, 39, 32))
    with pytest.raises(ValueError, match="eps"):
        LogSpectralDistance(eps=0.0)
    with pytest.raises(ValueError, match="preset"):
        MelConsistency("no-such-preset")


def test_plot() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    preds, target = _pairs(2)
    metric = SpectralConvergence()
    values = []
    for i in range(3):
        values.append(metric(preds[i : i + 2], target[i : i + 2]))
    fig, ax = metric.plot(values)
    assert fig is not None and ax is not None
    fig, ax = metric.plot()
    assert ax.get_ylabel() == "SpectralConvergence"
