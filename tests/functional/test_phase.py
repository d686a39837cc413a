"""Griffin-Lim family: convergence on real speech, initialisations, length, errors, gradients."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from specinv_lightning import MelConfig
from specinv_lightning.functional import (
    filterbank_pinv,
    griffin_lim,
    initial_phase,
    mel_filterbank,
    pinv_spectrum,
    stft,
)

CFG = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
HIFIGAN_16K = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)


def _clip(speech: torch.Tensor, seconds: float = 0.75, dtype=torch.float32) -> torch.Tensor:
    return speech[8000 : 8000 + int(16000 * seconds)].to(dtype)


def _inconsistency_db(wave: torch.Tensor, magnitude: torch.Tensor, cfg: MelConfig) -> float:
    """Spectral convergence of |STFT(wave)| against the target magnitude, in dB."""
    est = stft(wave, cfg).abs()
    num = torch.linalg.vector_norm(est - magnitude)
    return float(20 * torch.log10(num / torch.linalg.vector_norm(magnitude)))


@pytest.mark.parametrize("algorithm", ["gla", "fgla", "agla"])
@pytest.mark.parametrize("cfg", [CFG, HIFIGAN_16K], ids=["center", "hifigan16k"])
def test_iterations_reduce_inconsistency(algorithm: str, cfg: MelConfig, speech) -> None:
    x = _clip(speech)
    x = x[: cfg.num_samples(cfg.num_frames(x.shape[-1]) - 1)]
    mag = stft(x, cfg).abs()
    scores = []
    for n_iter in (0, 8, 32):  # 0 = the random initial phase
        gen = torch.Generator().manual_seed(0)
        wave = griffin_lim(mag, cfg, n_iter=n_iter, algorithm=algorithm, generator=gen)
        assert wave.shape == (cfg.num_samples(mag.shape[-1]),)
        assert torch.isfinite(wave).all()
        scores.append(_inconsistency_db(wave, mag, cfg))
    assert scores[0] > scores[1] > scores[2], scores
    assert scores[2] < scores[0] - 6.0, scores
    # momentum pays off: at 32 iterations FGLA and AGLA beat plain GLA
    if algorithm != "gla":
        gen = torch.Generator().manual_seed(0)
        gla = _inconsistency_db(
            griffin_lim(mag, cfg, n_iter=32, algorithm="gla", generator=gen), mag, cfg
        )
        assert scores[2] < gla - 1.0, (scores[2], gla)


def test_momentum_zero_is_gla(speech) -> None:
    mag = stft(_clip(speech, 0.25), CFG).abs()
    kw = dict(n_iter=5, init="zeros")
    torch.testing.assert_close(
        griffin_lim(mag, CFG, algorithm="fgla", momentum=0.0, **kw),
        griffin_lim(mag, CFG, algorithm="gla", **kw),
    )


def test_random_init_reproducible(speech) -> None:
    mag = stft(_clip(speech, 0.25), CFG).abs()

    def run(seed: int) -> torch.Tensor:
        return griffin_lim(mag, CFG, n_iter=3, generator=torch.Generator().manual_seed(seed))

    a, b, c = run(1), run(1), run(2)
    assert torch.equal(a, b)
    assert float((a - c).abs().max()) > 1e-3
    angles = initial_phase(mag, "random", torch.Generator().manual_seed(3))
    assert angles.shape == mag.shape[-2:] and angles.dtype == mag.dtype
    # uniform on the whole circle: all four quadrants, mean resultant ~ 0
    assert float(angles.min()) < 0.1 and float(angles.max()) > 6.1
    assert float(torch.polar(torch.ones_like(angles), angles).mean().abs()) < 0.05
    # drawn frame by frame: a longer magnitude starts with the same phases
    longer = initial_phase(torch.cat([mag, mag], -1), "random", torch.Generator().manual_seed(3))
    assert torch.equal(longer[:, : mag.shape[-1]], angles)
    # the same phases in float64 (drawn in float32, then cast)
    doubled = initial_phase(mag.double(), "random", torch.Generator().manual_seed(3))
    torch.testing.assert_close(doubled, angles.double())


def test_zeros_init(speech) -> None:
    mag = stft(_clip(speech, 0.25), CFG).abs()
    phases = initial_phase(mag, "zeros")
    assert phases.shape == mag.shape[-2:] and not phases.any()
    spec = torch.polar(mag, torch.rand_like(mag))
    torch.testing.assert_close(initial_phase(mag, spec), torch.angle(spec))  # complex: its phase
    a = griffin_lim(mag, CFG, n_iter=3, init="zeros")
    torch.testing.assert_close(a, griffin_lim(mag, CFG, n_iter=3, init=torch.zeros_like(mag)))
    torch.testing.assert_close(a, griffin_lim(mag, CFG, n_iter=3, init="zeros"))


@pytest.mark.parametrize("cfg", [CFG, HIFIGAN_16K], ids=["center", "hifigan16k"])
@pytest.mark.parametrize("algorithm", ["gla", "fgla", "agla"])
def test_true_phase_init_reconstructs(cfg: MelConfig, algorithm: str, speech) -> None:
    x = _clip(speech, 0.5, torch.float64)
    x = x[: cfg.num_samples(cfg.num_frames(x.shape[-1]) - 1)]
    spec = stft(x, cfg)
    for n_iter in (0, 8):
        wave = griffin_lim(spec.abs(), cfg, n_iter=n_iter, algorithm=algorithm, init=spec,
                           length=x.shape[-1])  # fmt: skip
        err = float(torch.linalg.vector_norm(wave - x) / torch.linalg.vector_norm(x))
        assert err <= 1e-6, (n_iter, err)
    # phases in radians work the same
    wave = griffin_lim(spec.abs(), cfg, n_iter=4, init=torch.angle(spec), length=x.shape[-1])
    assert float(torch.linalg.vector_norm(wave - x) / torch.linalg.vector_norm(x)) <= 1e-6


def test_length_argument(speech) -> None:
    x = _clip(speech, 0.25)
    mag = stft(x, CFG).abs()
    natural = CFG.num_samples(mag.shape[-1])
    full = griffin_lim(mag, CFG, n_iter=2, init="zeros")
    assert full.shape == (natural,)
    for length in (natural - 100, natural + 77, x.shape[-1]):
        out = griffin_lim(mag, CFG, n_iter=2, init="zeros", length=length)
        assert out.shape == (length,)
        common = min(length, natural)
        torch.testing.assert_close(out[:common], full[:common])


def test_batch_dims_and_dtypes(speech) -> None:
    x = _clip(speech, 0.25, torch.float64)
    mag = stft(torch.stack([x, 0.5 * x, x.flip(-1)]).reshape(3, 1, -1), CFG).abs()
    out = griffin_lim(mag, CFG, n_iter=3, init="zeros")
    assert out.shape == (3, 1, CFG.num_samples(mag.shape[-1])) and out.dtype == torch.float64
    # items are independent: half the magnitude, half the waveform (zero init is scale free)
    torch.testing.assert_close(out[1], 0.5 * out[0])
    torch.testing.assert_close(out[2], griffin_lim(mag[2], CFG, n_iter=3, init="zeros"))
    out32 = griffin_lim(mag.float(), CFG, n_iter=3, init="zeros")
    assert out32.dtype == torch.float32
    torch.testing.assert_close(out32.double(), out, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(magnitude=torch.ones(100, 10)), "n_freqs"),
        (dict(magnitude=torch.ones(257)), "magnitude"),
        (dict(magnitude=torch.full((257, 10), math.nan)), "NaN"),
        (
            dict(
                magnitude=torch.ones(257, 10).masked_fill(
                    torch.eye(257, 10, dtype=torch.bool), math.inf
                )
            ),
            "magnitude",
        ),  # fmt: skip
        (dict(magnitude=torch.ones(257, 10, dtype=torch.complex64)), "real"),
        (dict(magnitude=torch.ones(257, 10, dtype=torch.int64)), "magnitude"),
        (dict(magnitude=torch.ones(257, 10), algorithm="rtisi"), "algorithm"),
        (dict(magnitude=torch.ones(257, 10), n_iter=-1), "n_iter"),
        (dict(magnitude=torch.ones(257, 10), init="ones"), "init"),
        (dict(magnitude=torch.ones(257, 10), init=torch.zeros(257, 9)), "init"),
    ],
)
def test_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        griffin_lim(config=CFG, **{"n_iter": 2, **kwargs})


@pytest.mark.parametrize("algorithm", ["gla", "fgla", "agla"])
@pytest.mark.parametrize("detach_phase", [False, True])
def test_gradients_finite_with_silence(algorithm: str, detach_phase: bool, speech) -> None:
    x = _clip(speech, 0.25, torch.float64).clone()
    x[1000:3000] = 0.0  # exact digital silence: |STFT| = 0 in whole frames
    mag = stft(x, CFG).abs()
    assert float(mag.min()) == 0.0
    mag = mag.requires_grad_(True)
    out = griffin_lim(mag, CFG, n_iter=4, algorithm=algorithm, init="zeros",
                      detach_phase=detach_phase)  # fmt: skip
    (out.square().sum() + out.sum()).backward()
    assert torch.isfinite(mag.grad).all()
    assert float(mag.grad.abs().sum()) > 0


def test_mel_constraint_is_used(speech) -> None:
    # magnitude from the mel by pinv (not consistent): the mel-consistent variant stays closer to
    # the mel, and a different mel changes the result
    x = _clip(speech, 0.25, torch.float64)
    fb = mel_filterbank(CFG, torch.float64)
    mel = fb @ stft(x, CFG).abs()
    mag = pinv_spectrum(mel, filterbank_pinv(fb))
    plain = griffin_lim(mag, CFG, n_iter=8, init="zeros")
    consistent = griffin_lim(mag, CFG, n_iter=8, init="zeros", mel=mel)

    def mel_error(wave: torch.Tensor) -> float:
        return float((fb @ stft(wave, CFG).abs() - mel).norm() / mel.norm())

    assert mel_error(consistent) < 0.8 * mel_error(plain)
    halved = griffin_lim(mag, CFG, n_iter=8, init="zeros", mel=0.5 * mel)
    assert float((halved - consistent).abs().max()) > 1e-3
    with pytest.raises(ValueError, match="mel: expected shape"):
        griffin_lim(mag, CFG, n_iter=2, mel=mel[..., :-1])
    with pytest.raises(ValueError, match="mel: contains negative"):
        griffin_lim(mag, CFG, n_iter=2, mel=-mel)


@pytest.mark.skipif("checkpoint" not in inspect.signature(griffin_lim).parameters,
                    reason="griffin_lim(checkpoint=...) not available")  # fmt: skip
def test_checkpoint_same_values_and_gradients(speech) -> None:
    x = _clip(speech, 0.25, torch.float64)
    grads = []
    outs = []
    for checkpoint in (False, True):
        mag = stft(x, CFG).abs().requires_grad_(True)
        out = griffin_lim(mag, CFG, n_iter=4, init="zeros", checkpoint=checkpoint)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append(mag.grad)
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(speech) -> None:
    mag = stft(_clip(speech, 0.25, torch.float64), CFG).abs()
    cpu = griffin_lim(mag, CFG, n_iter=4, init="zeros")
    gpu = griffin_lim(mag.cuda(), CFG, n_iter=4, init="zeros")
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-6, atol=1e-8)
    # a CPU generator drives a CUDA random init reproducibly
    a = griffin_lim(mag.cuda(), CFG, n_iter=2, generator=torch.Generator().manual_seed(0))
    b = griffin_lim(mag.cuda(), CFG, n_iter=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
