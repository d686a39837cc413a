"""The no-autograd fast path (preallocated buffers, in-place updates) computes what the autograd
path computes, for every padding scheme it handles, and hands the rest to the autograd path."""

from __future__ import annotations

import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import (
    active_bins,
    filterbank_blocks,
    filterbank_pinv,
    griffin_lim,
    mel_filterbank,
    project_onto_mel,
    project_onto_mel_,
    stft,
)
from specinv_lightning.functional.stft import (
    istft_frames,
    make_plan,
    make_window,
    project_consistent_,
    stft_frames,
    supports_inplace_projection,
)

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


def _spec(cfg: MelConfig, speech: torch.Tensor, batch: int = 2) -> torch.Tensor:
    """A frame-major complex spectrogram that is *not* consistent (random phases)."""
    x = speech[4000 : 4000 + 9000].double()
    x = torch.stack([x * (k + 1) for k in range(batch)])
    mag = stft(x, cfg).abs().transpose(-1, -2).contiguous()
    phase = torch.rand(mag.shape, generator=torch.Generator().manual_seed(1), dtype=mag.dtype)
    return torch.polar(mag, 6.283 * phase)


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


def test_unsupported_layouts_are_reported() -> None:
    both = MelConfig(**BASE, manual_pad=64)  # centred and manually padded
    odd = MelConfig(sample_rate=16000, n_fft=511, win_length=400, hop_length=128, n_mels=40)
    assert not supports_inplace_projection(both, 20)
    assert not supports_inplace_projection(odd, 20)
    assert supports_inplace_projection(CONFIGS["center_reflect"], 20)


@pytest.mark.parametrize("algorithm", ["gla", "fgla", "agla"])
@pytest.mark.parametrize("name", ["center_reflect", "hifigan_pad", "hop_not_dividing"])
@pytest.mark.parametrize("with_update", [False, True])
def test_no_grad_loop_equals_autograd_loop(
    algorithm: str, name: str, with_update: bool, speech: torch.Tensor
) -> None:
    cfg = CONFIGS[name]
    x = torch.stack([speech[2000:11000], speech[20000:29000]]).double()
    magnitude = (
        stft(x, cfg).abs() * torch.linspace(0.5, 1.5, cfg.n_freqs, dtype=torch.float64)[:, None]
    )  # an inconsistent target
    seen: list[bool] = []

    def update(m: torch.Tensor) -> torch.Tensor:
        seen.append(True)
        return 0.5 * (m + magnitude)

    kwargs = dict(n_iter=5, algorithm=algorithm, magnitude_update=update if with_update else None)
    with torch.no_grad():
        fast = griffin_lim(magnitude, cfg, generator=torch.Generator().manual_seed(3), **kwargs)
    slow = griffin_lim(magnitude.clone().requires_grad_(), cfg,
                       generator=torch.Generator().manual_seed(3), **kwargs)  # fmt: skip
    assert slow.requires_grad
    assert seen == [True] * (10 if with_update else 0)  # once per iteration, both paths
    torch.testing.assert_close(
        fast, slow.detach(), rtol=0, atol=1e-9 * float(slow.detach().abs().max())
    )


def test_fallback_config_still_runs_without_grad(speech: torch.Tensor) -> None:
    cfg = MelConfig(**BASE, manual_pad=64)  # not handled in place: the autograd loop runs
    assert cfg.num_frames(cfg.num_samples(40)) == 40
    x = speech[2000:11000][None].double()
    magnitude = stft(x, cfg).abs()
    with torch.no_grad():
        fast = griffin_lim(magnitude, cfg, n_iter=3, init="zeros")
    slow = griffin_lim(magnitude.requires_grad_(), cfg, n_iter=3, init="zeros")
    torch.testing.assert_close(fast, slow.detach())


@pytest.mark.parametrize("preset", ["torchaudio", "hifigan"])  # power 2 and power 1 mels
def test_inverter_without_grad_equals_with_grad(preset: str, speech: torch.Tensor) -> None:
    cfg = MelConfig.from_preset(preset, sample_rate=16000, f_max=None)
    mel = MelSpectrogram(cfg).double()(torch.stack([speech[:12000], speech[12000:24000]]).double())
    inv = MelInverter(cfg, n_iter=6, fused=False)
    with torch.no_grad():
        fast = inv(mel)
    plain = inv(mel)  # no grad needed: MelInverter takes the no-autograd path by itself
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
def test_cpu_chunking_equals_one_shot(init: str, speech: torch.Tensor) -> None:
    cfg = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)
    clips = torch.stack([speech[k * 6000 : k * 6000 + 8000] for k in range(6)]).double()
    mel = MelSpectrogram(cfg).double()(clips).reshape(2, 3, cfg.n_mels, -1)  # leading dims
    phase = None
    if init == "tensor":
        phase = torch.rand(2, 3, cfg.n_freqs, mel.shape[-1], dtype=torch.float64) * 6.283
    one_shot = MelInverter(cfg, n_iter=4, init="zeros" if init == "zeros" else "random")
    chunked = MelInverter(cfg, n_iter=4, init="zeros" if init == "zeros" else "random")
    one_shot._CPU_CHUNK_BYTES = 2**40
    chunked._CPU_CHUNK_BYTES = 1  # one item per chunk
    assert chunked._cpu_chunk(mel) == 1
    with torch.no_grad():
        expected = one_shot(mel, init=phase)
        got = chunked(mel, init=phase)
    assert got.shape == expected.shape == (2, 3, cfg.num_samples(mel.shape[-1]))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10 * float(expected.abs().max()))
    with pytest.raises(ValueError, match="init"), torch.no_grad():
        chunked(mel, init=torch.zeros(3, 2, cfg.n_freqs, mel.shape[-1], dtype=torch.float64))


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
