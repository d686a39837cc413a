"""The engine: one recurrence per algorithm, run by every path (autograd, in-place, fused, chunked)
with the same result, and the in-place operators equal to their out-of-place definitions.

Every path test enumerates :data:`ALGORITHMS`, so a newly registered algorithm is checked on every
path without being named; ``test_registered_toy_algorithm_runs_on_every_path`` shows it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import (
    ALGORITHMS,
    Algorithm,
    LoopWeights,
    _engine,
    filterbank_pinv,
    griffin_lim,
    istft,
    mel_consistency,
    mel_filterbank,
    project_onto_mel,
    register_algorithm,
    rescale_onto_mel,
    stft,
)
from specinv_lightning.functional._engine import choose_engine
from specinv_lightning.functional._frames import istft_frames, make_plan, stft_frames
from specinv_lightning.functional._inplace import (
    active_bins,
    filterbank_blocks,
    project_consistent_,
    project_onto_mel_,
    rescale_onto_mel_,
    supports_inplace_projection,
)
from specinv_lightning.functional._kernels import fusion_available
from specinv_lightning.functional.stft import make_window

BASE = dict(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
CONFIGS = {
    "center_reflect": MelConfig(**BASE),
    "center_constant": MelConfig(**BASE, pad_mode="constant"),
    "center_replicate": MelConfig(**BASE, pad_mode="replicate"),
    "center_circular": MelConfig(**BASE, pad_mode="circular"),
    "hifigan_pad": MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None),
    "uncentred": MelConfig(**BASE, center=False),
    "hop_not_dividing": MelConfig(
        sample_rate=16000, n_fft=512, win_length=400, hop_length=160, n_mels=40
    ),  # fmt: skip
    "normalized": MelConfig(**BASE, normalized=True),
}
PATHS = ("autograd", "inplace", "fused", "chunked")


def _spec(cfg: MelConfig, speech: torch.Tensor, batch: int = 2) -> torch.Tensor:
    """A frame-major complex spectrogram that is *not* consistent (random phases)."""
    x = speech[4000 : 4000 + 9000].double()
    x = torch.stack([x * (k + 1) for k in range(batch)])
    mag = stft(x, cfg).abs().transpose(-1, -2).contiguous()
    phase = torch.rand(mag.shape, generator=torch.Generator().manual_seed(1), dtype=mag.dtype)
    return torch.polar(mag, 6.283 * phase)


def _problem(cfg: MelConfig, speech: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An inconsistent magnitude (3 items) and a linear mel that is not its own."""
    x = torch.stack([speech[2000:11000], speech[20000:29000], speech[30000:39000]]).double()
    spec = stft(x, cfg).abs()
    magnitude = spec * torch.linspace(0.5, 1.5, cfg.n_freqs, dtype=torch.float64)[:, None]
    mel = mel_filterbank(cfg, torch.float64) @ spec**cfg.power
    return magnitude, mel


def _run_path(
    path: str, magnitude: torch.Tensor, cfg: MelConfig, monkeypatch: pytest.MonkeyPatch, **kwargs
) -> torch.Tensor:
    """``griffin_lim`` forced onto one engine path."""
    generator = torch.Generator().manual_seed(3)
    if path == "autograd":
        out = griffin_lim(magnitude.clone().requires_grad_(), cfg, generator=generator, **kwargs)
        assert out.requires_grad
        return out.detach()
    if path == "fused" and not fusion_available(magnitude.device):
        pytest.skip("torch.compile is unavailable here")
    with monkeypatch.context() as patch:
        if path == "chunked":
            patch.setattr(_engine, "CPU_CHUNK_BYTES", 1)  # one item per chunk
        engine = choose_engine(cfg, magnitude, grad=False, fused=path == "fused")
        assert engine.inplace and engine.fused == (path == "fused")
        assert (engine.chunk == 1) == (path == "chunked")
        with torch.no_grad():
            return griffin_lim(magnitude, cfg, generator=generator, fused=path == "fused", **kwargs)


def _reference(
    magnitude: torch.Tensor,
    cfg: MelConfig,
    weights: LoopWeights,
    n_iter: int,
    mel: torch.Tensor | None,
) -> torch.Tensor:
    """The recurrence of :class:`LoopWeights`, written plainly with the public stft/istft."""
    phase = torch.rand(magnitude.shape[-1], magnitude.shape[-2], dtype=torch.float32,
                       generator=torch.Generator().manual_seed(3))  # fmt: skip
    c = torch.polar(magnitude, phase.double().t() * 2 * torch.pi)
    fb = mel_filterbank(cfg, torch.float64)
    pinv = filterbank_pinv(fb)

    # P_A with the engine's floor on |c|^2: -140 dB below each item's peak magnitude
    eps = (1e-7 * magnitude.amax(dim=(-2, -1), keepdim=True)).square()

    def apply(c: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return target * c / (c.abs().square() + eps).sqrt()

    target, t, t_prev, d = magnitude, None, None, None
    for _ in range(n_iter):
        proj = stft(istft(apply(c, target), cfg), cfg)
        t, t_prev = (proj if t is None else d + weights.relax * (proj - d)), t
        if t_prev is None:
            c, d = t, t
        else:
            c = t + weights.extrapolate * (t - t_prev)
            d = t + weights.damp * (t - t_prev)
        if mel is not None:
            target = project_onto_mel(t.abs(), mel, fb, pinv)
    return istft(apply(c, target), cfg)


@pytest.fixture
def toy_algorithm() -> Iterator[str]:
    """A relaxed, damped variant registered for one test (and removed after it)."""
    name = "toy-relaxed"
    register_algorithm(
        name,
        Algorithm(lambda m, b, g: LoopWeights(relax=0.7, extrapolate=0.5 * m, damp=0.3), "toy"),
    )
    yield name
    del ALGORITHMS[name]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_project_consistent_equals_istft_then_stft(name: str, speech: torch.Tensor) -> None:
    cfg = CONFIGS[name]
    spec = _spec(cfg, speech)
    batch, frames, _ = spec.shape
    assert supports_inplace_projection(cfg, frames)
    plan = make_plan(cfg, frames, make_window(cfg, torch.float64))
    expected = stft_frames(istft_frames(spec, cfg, plan, cfg.num_samples(frames)), cfg,
                           plan.analysis)  # fmt: skip
    segments = -(-cfg.n_fft // cfg.hop_length)
    out = torch.empty_like(spec)
    signal = torch.full((batch, (frames + segments - 1) * cfg.hop_length), float("nan"),
                        dtype=torch.float64)  # fmt: skip
    got = project_consistent_(spec, cfg, plan, out, signal)
    assert got.data_ptr() == out.data_ptr()
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10 * float(expected.abs().max()))


def test_engine_choice() -> None:
    cfg = CONFIGS["center_reflect"]
    mel = torch.zeros(16, 40, 200)
    assert choose_engine(cfg, mel, grad=True) == (True, False, False, 16)
    engine = choose_engine(cfg, mel, grad=False, fused=False)
    assert engine.inplace and not engine.grad and not engine.fused
    assert 1 <= engine.chunk < 16 and 16 % engine.chunk == 0  # balanced CPU chunks
    odd = MelConfig(sample_rate=16000, n_fft=511, win_length=400, hop_length=128, n_mels=40)
    both = MelConfig(**BASE, manual_pad=64)  # centred and manually padded
    assert not choose_engine(odd, mel, grad=False).inplace
    assert not choose_engine(both, mel, grad=False, fused=True).fused  # fusion is in-place only


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
@pytest.mark.parametrize("name", ["center_reflect", "hifigan_pad", "hop_not_dividing"])
@pytest.mark.parametrize("with_mel", [False, True])
def test_every_path_runs_the_same_recurrence(
    algorithm: str, name: str, with_mel: bool, speech: torch.Tensor, monkeypatch
) -> None:
    cfg = CONFIGS[name]
    magnitude, mel = _problem(cfg, speech)
    kwargs = dict(n_iter=5, algorithm=algorithm, mel=mel if with_mel else None)
    expected = _run_path("autograd", magnitude, cfg, monkeypatch, **kwargs)
    scale = float(expected.abs().max())
    for path in PATHS[1:]:
        if path == "fused" and not fusion_available(magnitude.device):
            continue
        got = _run_path(path, magnitude, cfg, monkeypatch, **kwargs)
        tol = 1e-7 if path == "fused" else 1e-9  # fused: other rounding of the same arithmetic
        torch.testing.assert_close(got, expected, rtol=0, atol=tol * scale, msg=path)


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_registry_matches_its_plain_definition(algorithm: str, speech: torch.Tensor) -> None:
    cfg = CONFIGS["center_reflect"]
    magnitude, mel = _problem(cfg, speech)
    weights = ALGORITHMS[algorithm].weights(0.99, 1.1, 1.2)
    for constraint in (None, mel):
        expected = _reference(magnitude, cfg, weights, 4, constraint)
        got = griffin_lim(magnitude, cfg, n_iter=4, algorithm=algorithm, mel=constraint,
                          generator=torch.Generator().manual_seed(3))  # fmt: skip
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-8 * float(expected.abs().max()))


def test_registered_toy_algorithm_runs_on_every_path(
    toy_algorithm: str, speech: torch.Tensor, monkeypatch
) -> None:
    cfg = CONFIGS["hifigan_pad"]
    magnitude, mel = _problem(cfg, speech)
    expected = _reference(magnitude, cfg, ALGORITHMS[toy_algorithm].weights(0.99, 1.1, 1.2), 5, mel)
    scale = float(expected.abs().max())
    for path in PATHS:
        if path == "fused" and not fusion_available(magnitude.device):
            continue
        got = _run_path(
            path, magnitude, cfg, monkeypatch, n_iter=5, algorithm=toy_algorithm, mel=mel
        )
        tol = 1e-6 if path == "fused" else 1e-8
        torch.testing.assert_close(got, expected, rtol=0, atol=tol * scale, msg=path)
    # and through MelInverter, by name, with gradients
    mel_in = MelSpectrogram(cfg).double()(speech[:9000][None].double()).requires_grad_()
    MelInverter(cfg, n_iter=3, algorithm=toy_algorithm)(mel_in).square().sum().backward()
    assert torch.isfinite(mel_in.grad).all() and mel_in.grad.abs().sum() > 0


def test_register_algorithm_rejects_bad_entries() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_algorithm("fgla", ALGORITHMS["fgla"])
    with pytest.raises(ValueError, match="algorithm: expected an Algorithm"):
        register_algorithm("x", lambda m, b, g: LoopWeights())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="algorithm: expected one of"):
        griffin_lim(torch.ones(257, 10), CONFIGS["center_reflect"], algorithm="nope")


def test_fallback_config_still_runs_without_grad(speech: torch.Tensor) -> None:
    cfg = MelConfig(**BASE, manual_pad=64)  # not handled in place: the autograd loop runs
    assert cfg.num_frames(cfg.num_samples(40)) == 40
    x = speech[2000:11000][None].double()
    magnitude = stft(x, cfg).abs()
    with torch.no_grad():
        fast = griffin_lim(magnitude, cfg, n_iter=3, init="zeros")
    slow = griffin_lim(magnitude.requires_grad_(), cfg, n_iter=3, init="zeros")
    torch.testing.assert_close(fast, slow.detach())


@pytest.mark.parametrize("preset", ["torchaudio", "librosa", "hifigan"])  # power 2, 2 and 1 mels
def test_inverter_without_grad_equals_with_grad(preset: str, speech: torch.Tensor) -> None:
    cfg = MelConfig.from_preset(preset, sample_rate=16000, f_max=None)
    mel = MelSpectrogram(cfg).double()(torch.stack([speech[:12000], speech[12000:24000]]).double())
    inv = MelInverter(cfg, n_iter=6, fused=False)
    with torch.no_grad():
        fast = inv(mel)
    plain = inv(mel)  # no grad needed: the engine takes the no-autograd path by itself
    slow = inv(mel.clone().requires_grad_())
    assert not plain.requires_grad and slow.requires_grad
    assert torch.equal(fast, plain)
    torch.testing.assert_close(fast, slow.detach(), rtol=0, atol=1e-9 * float(fast.abs().max()))


def test_project_onto_mel_in_place(speech: torch.Tensor) -> None:
    cfg = CONFIGS["hifigan_pad"]
    fb = mel_filterbank(cfg, dtype=torch.float64)
    pinv = filterbank_pinv(fb)
    x = torch.stack([speech[:9000], speech[9000:18000]]).double()
    spectrum = stft(x, cfg).abs()
    mel = fb @ (spectrum * 1.3)
    expected = project_onto_mel(spectrum, mel, fb, pinv, active_bins(fb))
    spectrum = spectrum.contiguous()  # the usual (..., n_freqs, frames) layout
    frame_major = torch.empty_like(spectrum.transpose(-1, -2)).transpose(-1, -2).copy_(spectrum)
    out = project_onto_mel_(frame_major, mel, fb, pinv, active_bins(fb))
    assert out.data_ptr() == frame_major.data_ptr()
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    # any other layout (here: the usual one) is updated through a copy, with the same values
    usual = spectrum.clone()
    torch.testing.assert_close(project_onto_mel_(usual, mel, fb, pinv), expected)
    torch.testing.assert_close(usual, expected)


@pytest.mark.parametrize("init", ["random", "zeros", "tensor"])
def test_cpu_chunking_equals_one_shot(init: str, speech: torch.Tensor, monkeypatch) -> None:
    cfg = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)
    clips = torch.stack([speech[k * 6000 : k * 6000 + 8000] for k in range(6)]).double()
    mel = MelSpectrogram(cfg).double()(clips).reshape(2, 3, cfg.n_mels, -1)  # leading dims
    phase = None
    if init == "tensor":
        phase = torch.rand(2, 3, cfg.n_freqs, mel.shape[-1], dtype=torch.float64) * 6.283
    inverter = MelInverter(cfg, n_iter=4, init="zeros" if init == "zeros" else "random")
    with torch.no_grad():
        monkeypatch.setattr(_engine, "CPU_CHUNK_BYTES", 2**40)
        expected = inverter(mel, init=phase)
        monkeypatch.setattr(_engine, "CPU_CHUNK_BYTES", 1)  # one item per chunk
        assert choose_engine(cfg, mel, grad=False).chunk == 1
        got = inverter(mel, init=phase)
    assert got.shape == expected.shape == (2, 3, cfg.num_samples(mel.shape[-1]))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10 * float(expected.abs().max()))
    with pytest.raises(ValueError, match="init"), torch.no_grad():
        inverter(mel, init=torch.zeros(3, 2, cfg.n_freqs, mel.shape[-1], dtype=torch.float64))


def test_item_result_does_not_depend_on_its_batch(speech: torch.Tensor) -> None:
    # the random initial phase is shared by all items: an item inverts the same alone or batched
    cfg = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)
    mel = MelSpectrogram(cfg).double()(torch.stack([speech[:8000], speech[9000:17000]]).double())
    inverter = MelInverter(cfg, n_iter=4)
    with torch.no_grad():
        batched = inverter(mel)
        alone = inverter(mel[1:])
    torch.testing.assert_close(batched[1:], alone, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "preset", ["hifigan", "torchaudio", "librosa"]
)  # torchaudio: empty filters
def test_banded_projection_equals_dense(preset: str, speech: torch.Tensor) -> None:
    cfg = MelConfig.from_preset(preset, sample_rate=16000, f_max=None)
    fb = mel_filterbank(cfg, dtype=torch.float64)
    pinv = filterbank_pinv(fb)
    banded = filterbank_blocks(fb)
    assert len(banded.bins) > 1
    assert sum(b - a for a, b in banded.bins) == active_bins(fb)[1] - active_bins(fb)[0]
    x = torch.stack([speech[:9000], speech[9000:18000]]).double()
    spectrum = stft(x, cfg).abs() ** cfg.power
    mel = fb @ (spectrum * torch.linspace(0.2, 2.0, cfg.n_freqs, dtype=torch.float64)[:, None])
    expected = project_onto_mel(spectrum, mel, fb, pinv)
    frame_major = torch.empty_like(spectrum.transpose(-1, -2)).transpose(-1, -2).copy_(spectrum)
    got = project_onto_mel_(frame_major, mel, fb, pinv, active_bins(fb), banded)
    scale = float(expected.abs().max())
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize(
    "preset", ["torchaudio", "librosa"]
)  # power-2 mels; torchaudio: empty filters
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_rescale_onto_mel_in_place(preset: str, dtype: torch.dtype, speech: torch.Tensor) -> None:
    cfg = MelConfig.from_preset(preset, sample_rate=16000, f_max=6000.0)
    fb = mel_filterbank(cfg, dtype=dtype)
    x = torch.stack([speech[:9000], speech[9000:18000] * 1e-3]).to(dtype)
    spectrum = stft(x, cfg).abs() ** 2
    mel = fb @ (spectrum * torch.linspace(0.2, 2.0, cfg.n_freqs, dtype=dtype)[:, None])
    expected = rescale_onto_mel(spectrum, mel, fb)
    frame_major = torch.empty_like(spectrum.transpose(-1, -2)).transpose(-1, -2).copy_(spectrum)
    got = rescale_onto_mel_(frame_major, mel, filterbank_blocks(fb))
    assert got.data_ptr() == frame_major.data_ptr()
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    for item in range(2):  # items 60 dB apart: each to its own scale
        scale = float(expected[item].abs().max())
        torch.testing.assert_close(got[item], expected[item], rtol=0, atol=tol * scale)
    usual = spectrum.clone()  # any other layout goes through a copy
    torch.testing.assert_close(rescale_onto_mel_(usual, mel, filterbank_blocks(fb)), expected)


@pytest.mark.parametrize(("preset", "init", "gain"), [("styletts2", "random", 5.0),
                                                      ("styletts2", "pghi", 3.5),
                                                      ("librosa", "pghi", 5.0)])  # fmt: skip
def test_power_mels_gain_from_the_multiplicative_step(
    preset: str, init: str, gain: float, speech: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the purpose: on power-2 mels the additive step stalls; 3 rescaling sweeps do not
    # (measured on this clip: styletts2 random -21.4 -> -34.1 dB, pghi -36.1 -> -41.0 dB;
    # librosa pghi -30.3 -> -38.3 dB)
    cfg = MelConfig.from_preset(preset, sample_rate=16000)
    mel = MelSpectrogram(cfg)(speech[None])
    inverter = MelInverter(cfg, n_iter=32, init=init, seed=0)
    scores = {}
    for sweeps in (0, _engine.RESCALE_SWEEPS):
        monkeypatch.setattr(_engine, "RESCALE_SWEEPS", sweeps)
        with torch.no_grad():
            scores[sweeps] = float(mel_consistency(inverter(mel), mel, cfg))
    assert scores[0] - scores[3] > gain, scores
