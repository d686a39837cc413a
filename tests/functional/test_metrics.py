"""Functional metrics: hand-computed values, per-item semantics, lengths masking, reductions, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import (
    decompress,
    griffin_lim,
    log_spectral_distance,
    mel_consistency,
    spectral_convergence,
    spectral_inconsistency,
    stft,
)

CFG = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40, compression="log")


def _sc_np(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.sqrt(((p - t) ** 2).sum()) / np.sqrt((t**2).sum()))


def test_spectral_convergence_hand_computed() -> None:
    target = torch.tensor([[[3.0, 4.0]], [[1.0, 0.0]]])  # two items, (freq=1, frames=2)
    preds = torch.tensor([[[3.0, 0.0]], [[0.0, 0.0]]])
    # item 0: ||(0, 4)|| / ||(3, 4)|| = 4 / 5; item 1: 1 / 1
    per_item = spectral_convergence(preds, target, reduction="none")
    torch.testing.assert_close(per_item, torch.tensor([0.8, 1.0]))
    torch.testing.assert_close(spectral_convergence(preds, target), torch.tensor(0.9))
    torch.testing.assert_close(
        spectral_convergence(preds, target, reduction="sum"), torch.tensor(1.8)
    )
    db = spectral_convergence(preds, target, db=True, reduction="none")
    torch.testing.assert_close(db, torch.tensor([20 * math.log10(0.8), 0.0]))
    # dB is averaged per item, not taken of the averaged ratio
    torch.testing.assert_close(
        spectral_convergence(preds, target, db=True), torch.tensor(10 * math.log10(0.8))
    )


def test_spectral_convergence_per_item_not_batch_ratio() -> None:
    gen = torch.Generator().manual_seed(0)
    target = (
        torch.rand(3, 2, 7, 11, generator=gen) * torch.tensor([1.0, 10.0, 0.1])[:, None, None, None]
    )
    preds = target + 0.1 * torch.rand(target.shape, generator=gen)
    per_item = spectral_convergence(preds, target, reduction="none")
    assert per_item.shape == (3, 2)
    expected = [
        _sc_np(preds[i, j].numpy(), target[i, j].numpy()) for i in range(3) for j in range(2)
    ]
    np.testing.assert_allclose(per_item.reshape(-1).numpy(), expected, rtol=1e-5)
    batch_ratio = _sc_np(preds.numpy(), target.numpy())  # what auraloss computes
    assert abs(float(spectral_convergence(preds, target)) - batch_ratio) > 1e-2


def test_spectral_convergence_complex_and_float64() -> None:
    gen = torch.Generator().manual_seed(1)
    t = torch.randn(2, 5, 6, dtype=torch.complex128, generator=gen)
    p = t + 0.5 * torch.randn(2, 5, 6, dtype=torch.complex128, generator=gen)
    out = spectral_convergence(p, t, reduction="none")
    assert out.dtype == torch.float64
    expected = [
        np.linalg.norm((p[i] - t[i]).numpy()) / np.linalg.norm(t[i].numpy()) for i in range(2)
    ]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12)


def test_lengths_mask_equals_scoring_truncated_items() -> None:
    gen = torch.Generator().manual_seed(2)
    target = torch.rand(3, 6, 10, generator=gen) + 0.1
    preds = target + torch.randn(3, 6, 10, generator=gen)
    # garbage in the padded frames must not matter
    lengths = torch.tensor([10, 4, 1])
    for i, n in enumerate(lengths.tolist()):
        preds[i, :, n:] = 1e3
    for fn, kw in (
        (spectral_convergence, {}),
        (spectral_convergence, {"db": True}),
        (log_spectral_distance, {}),
    ):
        masked = fn(preds.abs(), target, reduction="none", lengths=lengths, **kw)
        single = torch.stack(
            [
                fn(preds[i, :, :n].abs(), target[i, :, :n], **kw)
                for i, n in enumerate(lengths.tolist())
            ]
        )
        torch.testing.assert_close(masked, single)
        torch.testing.assert_close(fn(preds.abs(), target, lengths=lengths, **kw), single.mean())
    # lengths may have the leading shape, and values above the frame count mean "all frames"
    p4, t4 = preds.abs().reshape(1, 3, 6, 10), target.reshape(1, 3, 6, 10)
    torch.testing.assert_close(
        spectral_convergence(p4, t4, lengths=[[10, 4, 1]]),
        spectral_convergence(preds.abs(), target, lengths=[99, 4, 1]),
    )


def test_log_spectral_distance_hand_computed() -> None:
    target = torch.ones(1, 2, 3)
    preds = torch.tensor([[[10.0, 1.0, 1.0], [1.0, 1.0, 100.0]]])
    # per-bin dB differences: frame 0 -> (20, 0), frame 1 -> (0, 0), frame 2 -> (0, 40)
    # per-frame RMS over freq: sqrt(200), 0, sqrt(800); mean over frames
    expected = (math.sqrt(200) + 0 + math.sqrt(800)) / 3
    out = log_spectral_distance(preds, target, eps=1e-12)
    assert abs(float(out) - expected) < 1e-3
    # against a literal numpy implementation on random magnitudes
    gen = torch.Generator().manual_seed(3)
    p = torch.rand(4, 9, 5, generator=gen, dtype=torch.float64)
    t = torch.rand(4, 9, 5, generator=gen, dtype=torch.float64)
    eps = 1e-10
    d = 10 * np.log10((p.numpy() ** 2 + eps) / (t.numpy() ** 2 + eps))
    ref = np.sqrt((d**2).mean(axis=1)).mean(axis=1)
    np.testing.assert_allclose(
        log_spectral_distance(p, t, reduction="none").numpy(), ref, rtol=1e-10
    )
    # complex input is scored on its magnitude
    phase = torch.polar(torch.ones_like(p), torch.rand(p.shape, generator=gen, dtype=torch.float64))
    torch.testing.assert_close(log_spectral_distance(p * phase, t), log_spectral_distance(p, t))


def test_gradients_finite_at_perfect_match() -> None:
    t = torch.rand(2, 4, 5) + 0.1
    for fn in (spectral_convergence, log_spectral_distance):
        p = t.clone().requires_grad_()
        fn(p, t).backward()
        assert torch.isfinite(p.grad).all()


def test_mel_consistency(speech) -> None:
    cfg = MelConfig.from_preset("hifigan", sample_rate=16000)
    wave = speech[:16000].reshape(2, 8000)
    transform = MelSpectrogram(cfg)
    mel = transform(wave)
    # the waveform's own mel: essentially perfect (only the log floor differs)
    assert float(mel_consistency(wave, mel, cfg)) < -60
    # equals spectral convergence in dB of the linear mels, per item
    noisy = mel + 0.3 * torch.randn_like(mel)
    per_item = mel_consistency(wave, noisy, cfg, reduction="none")
    ref = spectral_convergence(
        transform.linear(wave), decompress(noisy, cfg), db=True, reduction="none"
    )
    torch.testing.assert_close(per_item, ref)
    assert per_item.shape == (2,)
    # one frame of difference is trimmed; more is an error
    torch.testing.assert_close(
        mel_consistency(wave, noisy[..., :-1], cfg, reduction="none"),
        spectral_convergence(
            transform.linear(wave)[..., :-1],
            decompress(noisy[..., :-1], cfg),
            db=True,
            reduction="none",
        ),
    )
    with pytest.raises(ValueError, match="at most one frame"):
        mel_consistency(wave, noisy[..., :-2], cfg)
    # an inverted waveform is consistent with its mel; a random one is not
    inverted = MelInverter(cfg, n_iter=8)(mel, length=8000)
    assert float(mel_consistency(inverted, mel, cfg)) < -12
    assert float(mel_consistency(torch.randn_like(wave) * 0.1, mel, cfg)) > -5
    # lengths are in mel frames
    lengths = torch.tensor([mel.shape[-1], 10])
    masked = mel_consistency(wave, noisy, cfg, reduction="none", lengths=lengths)
    ref1 = spectral_convergence(
        transform.linear(wave[1])[..., :10], decompress(noisy[1, :, :10], cfg), db=True
    )
    torch.testing.assert_close(masked[1], ref1)
    torch.testing.assert_close(masked[0], per_item[0])


def test_spectral_inconsistency() -> None:
    gen = torch.Generator().manual_seed(4)
    for preset in ("hifigan", "vocos"):
        cfg = MelConfig.from_preset(preset)
        wave = torch.randn(2, 3, 6000, generator=gen)
        spec = stft(wave, cfg)
        real = spectral_inconsistency(spec, cfg, reduction="none")
        assert real.shape == (2, 3)
        assert float(real.max()) < -100  # STFT of a real signal: consistent up to rounding
        noise = torch.randn(spec.shape, dtype=spec.dtype, generator=gen)
        assert -6 < float(spectral_inconsistency(noise, cfg)) < 0
    # a few Griffin-Lim iterations make a random-phase spectrogram more consistent
    mag = spec[0, 0].abs()
    phase = torch.polar(torch.ones_like(mag), 6.3 * torch.rand(mag.shape, generator=gen))
    before = spectral_inconsistency(mag * phase, cfg)
    after_wave = griffin_lim(mag, cfg, n_iter=8, init=torch.angle(phase), length=6000)
    rebuilt = stft(after_wave, cfg)
    after = spectral_inconsistency(mag * torch.sgn(rebuilt), cfg)
    assert float(after) < float(before) - 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preds": torch.ones(2, 3, 4), "target": torch.ones(2, 3, 5)}, "same shape"),
        ({"preds": torch.ones(3, 4), "target": torch.tensor(float("nan")).expand(3, 4)}, "NaN"),
        ({"preds": torch.ones(0, 3, 4), "target": torch.ones(0, 3, 4)}, "empty"),
        ({"preds": torch.ones(4), "target": torch.ones(4)}, "at least 2 dims"),
        (
            {"preds": torch.ones(2, 3, 4), "target": torch.ones(2, 3, 4), "reduction": "avg"},
            "reduction",
        ),
        (
            {"preds": torch.ones(2, 3, 4), "target": torch.ones(2, 3, 4), "lengths": [1, 2, 3]},
            "lengths",
        ),
        (
            {"preds": torch.ones(2, 3, 4), "target": torch.ones(2, 3, 4), "lengths": [0, 2]},
            "lengths",
        ),
        ({"preds": torch.ones(2, 3, 4), "target": torch.ones(2, 3, 4).double()}, "dtype"),
    ],
)
def test_bad_input(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        spectral_convergence(**kwargs)


def test_bad_input_other_metrics() -> None:
    with pytest.raises(ValueError, match="magnitudes >= 0"):
        log_spectral_distance(-torch.ones(1, 3, 4), torch.ones(1, 3, 4))
    with pytest.raises(ValueError, match="complex"):
        spectral_inconsistency(torch.ones(1, CFG.n_freqs, 4), CFG)
    with pytest.raises(ValueError, match="n_freqs"):
        spectral_inconsistency(torch.ones(1, 7, 4, dtype=torch.complex64), CFG)
    wave = torch.randn(2, 4000)
    mel = MelSpectrogram(CFG)(wave)
    with pytest.raises(ValueError, match="leading shape"):
        mel_consistency(wave[:1], mel, CFG)
    with pytest.raises(ValueError, match="n_mels"):
        mel_consistency(wave, mel[:, :-1], CFG)
    with pytest.raises(ValueError, match="NaN"):
        mel_consistency(wave * float("nan"), mel, CFG)
