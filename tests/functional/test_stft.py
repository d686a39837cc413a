"""STFT / iSTFT: exact reconstruction for every padding convention and window, shapes, magnitude."""

from __future__ import annotations

import pytest
import torch

from specinv_lightning import MelConfig
from specinv_lightning.functional import istft, make_window, spectrogram_magnitude, stft

BASE = dict(sample_rate=16000, n_mels=40)
CONFIGS = {
    "center": MelConfig(n_fft=512, hop_length=128, **BASE),
    "center_constant": MelConfig(n_fft=512, hop_length=128, pad_mode="constant", **BASE),
    "hifigan_pad": MelConfig(n_fft=512, hop_length=128, center=False, manual_pad=192, **BASE),
    "hifigan_16k": MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None),
    "short_window": MelConfig(n_fft=512, win_length=400, hop_length=160, **BASE),
    "normalized": MelConfig(n_fft=256, hop_length=64, normalized=True, **BASE),
    "odd_hop": MelConfig(n_fft=400, hop_length=100, **BASE),
    "hamming": MelConfig(n_fft=512, hop_length=128, window="hamming", **BASE),
    "blackman": MelConfig(n_fft=512, hop_length=128, window="blackman", **BASE),
    "rectangular": MelConfig(n_fft=256, hop_length=64, window="rectangular", **BASE),
    "uncentred_no_pad": MelConfig(n_fft=256, hop_length=64, center=False, **BASE),
}


def _signal(n: int, dtype=torch.float64, batch=(2, 3)) -> torch.Tensor:
    return torch.randn(*batch, n, dtype=dtype, generator=torch.Generator().manual_seed(n))


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_istft_inverts_stft(name: str, dtype: torch.dtype) -> None:
    cfg = CONFIGS[name]
    n = cfg.num_samples(40)
    x = _signal(n, dtype)
    spec = stft(x, cfg)
    assert spec.shape == (2, 3, cfg.n_freqs, 40)
    assert spec.dtype == (torch.complex64 if dtype == torch.float32 else torch.complex128)
    y = istft(spec, cfg)
    assert y.shape == x.shape and y.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    # everything, edges included: padding makes every sample covered by a window
    edge = 0 if (cfg.center or cfg.manual_pad) else cfg.n_fft
    interior = (y - x)[..., edge : n - edge]
    assert float(interior.abs().max()) <= tol
    if edge:
        # plain uncentred STFT: the first/last samples sit where the window envelope vanishes
        # (hann(0) = 0), so they cannot all be recovered, but what is covered is
        assert float((y - x)[..., cfg.hop_length : n - cfg.hop_length].abs().max()) <= 1e-2


@pytest.mark.parametrize("name", ["center", "hifigan_pad", "short_window"])
def test_istft_length_argument(name: str) -> None:
    cfg = CONFIGS[name]
    n = cfg.num_samples(30) + 37  # not a whole number of hops
    x = _signal(n)
    spec = stft(x, cfg)
    y = istft(spec, cfg, length=n)
    assert y.shape == x.shape
    covered = cfg.num_samples(spec.shape[-1])
    assert float((y - x)[..., : min(covered, n) - cfg.hop_length].abs().max()) <= 1e-10
    # shorter and longer than natural: cropped / zero-padded, same prefix
    assert istft(spec, cfg, length=100).shape == (2, 3, 100)
    long = istft(spec, cfg, length=n + 5000)
    assert long.shape == (2, 3, n + 5000)
    assert float(long[..., n + cfg.n_fft :].abs().max()) == 0.0


def test_stft_matches_torch_stft_centered() -> None:
    cfg = CONFIGS["short_window"]
    x = _signal(4000, batch=(3,))
    window = torch.hann_window(400, periodic=True, dtype=torch.float64)
    ref = torch.stft(x, 512, 160, 400, window, center=True, pad_mode="reflect",
                     return_complex=True)  # fmt: skip
    torch.testing.assert_close(stft(x, cfg), ref, rtol=1e-12, atol=1e-12)
    ref_inv = torch.istft(ref, 512, 160, 400, window, center=True, length=4000)
    torch.testing.assert_close(istft(ref, cfg, length=4000), ref_inv, rtol=1e-9, atol=1e-10)


def test_stft_hifigan_padding() -> None:
    cfg = CONFIGS["hifigan_16k"]
    x = _signal(4096, batch=(2,))
    padded = torch.nn.functional.pad(x.unsqueeze(1), (384, 384), mode="reflect").squeeze(1)
    window = torch.hann_window(1024, dtype=torch.float64)
    ref = torch.stft(padded, 1024, 256, 1024, window, center=False, return_complex=True)
    torch.testing.assert_close(stft(x, cfg), ref, rtol=1e-12, atol=1e-12)
    assert ref.shape[-1] == 4096 // 256


def test_normalized_scaling() -> None:
    plain = CONFIGS["center"]
    norm = MelConfig(n_fft=512, hop_length=128, normalized=True, **BASE)
    x = _signal(2048, batch=(1,))
    scale = make_window(plain, torch.float64).square().sum().sqrt()
    torch.testing.assert_close(stft(x, norm) * scale, stft(x, plain), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("window", ["hann", "hamming", "blackman", "rectangular"])
def test_make_window(window: str) -> None:
    cfg = MelConfig(n_fft=512, win_length=300, hop_length=100, window=window, **BASE)
    w = make_window(cfg, torch.float64)
    assert w.shape == (512,)
    left = (512 - 300) // 2
    assert float(w[:left].abs().max()) == 0.0 and float(w[left + 300 :].abs().max()) == 0.0
    core = w[left : left + 300]
    ref = {
        "hann": torch.hann_window(300, periodic=True, dtype=torch.float64),
        "hamming": torch.hamming_window(300, periodic=True, dtype=torch.float64),
        "blackman": torch.blackman_window(300, periodic=True, dtype=torch.float64),
        "rectangular": torch.ones(300, dtype=torch.float64),
    }[window]
    torch.testing.assert_close(core, ref, rtol=0, atol=1e-15)
    assert make_window(cfg, torch.float32).dtype == torch.float32


def test_leading_batch_dims_are_independent() -> None:
    cfg = CONFIGS["hifigan_pad"]
    x = _signal(cfg.num_samples(20), batch=(2, 2, 2))
    spec = stft(x, cfg)
    assert spec.shape == (2, 2, 2, cfg.n_freqs, 20)
    torch.testing.assert_close(spec[1, 0, 1], stft(x[1, 0, 1], cfg))
    torch.testing.assert_close(istft(spec, cfg)[0, 1], istft(spec[0, 1], cfg))
    assert stft(x[0, 0, 0], cfg).shape == (cfg.n_freqs, 20)  # 1-D input


def test_spectrogram_magnitude_values_and_gradients() -> None:
    spec = torch.tensor([[3 + 4j, 0j, 1 - 1j]], dtype=torch.complex128)
    torch.testing.assert_close(spectrogram_magnitude(spec, 1.0),
                               torch.tensor([[5.0, 0.0, 2**0.5]], dtype=torch.float64))  # fmt: skip
    torch.testing.assert_close(spectrogram_magnitude(spec, 2.0),
                               torch.tensor([[25.0, 0.0, 2.0]], dtype=torch.float64))  # fmt: skip
    with_eps = spectrogram_magnitude(spec, 1.0, eps=1e-9)
    torch.testing.assert_close(with_eps, torch.tensor([[25.0, 0.0, 2.0]], dtype=torch.float64)
                               .add(1e-9).sqrt())  # fmt: skip
    torch.testing.assert_close(spectrogram_magnitude(spec, 2.0, eps=1e-9),
                               torch.tensor([[25.0, 0.0, 2.0]], dtype=torch.float64) + 1e-9)  # fmt: skip
    # gradients are finite at exactly zero for every variant
    for power, eps in ((1.0, 0.0), (1.0, 1e-9), (2.0, 0.0)):
        z = spec.clone().requires_grad_(True)
        spectrogram_magnitude(z, power, eps).sum().backward()
        assert torch.isfinite(torch.view_as_real(z.grad)).all(), (power, eps)
