"""Peak-path PGHI initial phase: phase derivatives, consistency, scan vs loop, padding, errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from specinv_lightning import MelConfig
from specinv_lightning.functional import griffin_lim, make_window, stft
from specinv_lightning.functional.pghi import GAUSSIAN_EQUIVALENT, _follow_owners, pghi_phase

CFG = MelConfig(sample_rate=16000, n_fft=512, hop_length=128, n_mels=40)
HIFIGAN = MelConfig.from_preset("hifigan")  # uncentred, manual_pad, 22.05 kHz
TINY = MelConfig(sample_rate=16000, n_fft=16, hop_length=4, n_mels=4)


def _wrap(angle: Tensor) -> Tensor:
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def _chirp(sr: int, seconds: float = 1.0) -> Tensor:
    """Linear chirp 200 -> 3000 Hz."""
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    return torch.sin(2 * math.pi * (200.0 * t + 2800.0 / (2 * seconds) * t**2)).float()


def _tone(sr: int, seconds: float = 1.0) -> Tensor:
    """Five harmonics of 220 Hz with a +-10 Hz, 5 Hz vibrato."""
    t = torch.arange(int(sr * seconds), dtype=torch.float64) / sr
    f0 = 220.0 + 10.0 * torch.sin(2 * math.pi * 5.0 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / sr
    return sum(torch.sin(h * phase) / h for h in range(1, 6)).float()


SIGNALS = {
    "chirp-center": (_chirp, CFG),
    "chirp-hifigan": (_chirp, HIFIGAN),
    "tone-center": (_tone, CFG),
    "tone-hifigan": (_tone, HIFIGAN),
}


def _derivative_errors(phase: Tensor, spec: Tensor, db: float = 10.0) -> tuple[float, float]:
    """Mean |wrapped error| of the time- and frequency-direction phase differences against the
    true STFT's, at bins within ``db`` of their frame's peak."""
    level = 20 * torch.log10(spec.abs() + 1e-12)
    mask = level >= level.amax(-2, keepdim=True) - db
    true = spec.angle()
    d_time = _wrap(phase.diff(dim=-1) - true.diff(dim=-1))
    d_freq = _wrap(phase.diff(dim=-2) - true.diff(dim=-2))
    time_err = d_time.abs()[mask[..., 1:] & mask[..., :-1]].mean()
    freq_err = d_freq.abs()[mask[..., 1:, :] & mask[..., :-1, :]].mean()
    return float(time_err), float(freq_err)


def _inconsistency_db(mag: Tensor, cfg: MelConfig, init: str | Tensor) -> float:
    """Spectral convergence (dB) of ``|STFT(iSTFT(mag e^{i init}))|`` against ``mag``."""
    wave = griffin_lim(mag, cfg, n_iter=0, init=init, generator=torch.Generator().manual_seed(0))
    est = stft(wave, cfg).abs()
    return float(20 * torch.log10((est - mag).norm() / mag.norm()))


# ------------------------------------------------------------------------- quality on real signals
def test_stft_phase_reference_is_frame_start() -> None:
    """The convention PGHI's output is converted to: a sinusoid's phase at bin k of frame n is its
    phase at the window centre minus ``2 pi k c / n_fft`` (``-pi k`` for a full-length window)."""
    sr, freq, phi0 = 16000, 1234.5, 0.7
    t = torch.arange(sr, dtype=torch.float64) / sr
    spec = stft(torch.cos(2 * math.pi * freq * t + phi0), CFG)
    omega = 2 * math.pi * freq / sr
    k0 = round(freq / sr * CFG.n_fft)
    frames = torch.arange(10, 50, dtype=torch.float64)
    start = frames * CFG.hop_length - CFG.n_fft // 2  # frame start in signal samples (centred)
    for k in (k0 - 1, k0, k0 + 1):
        expected = omega * (start + CFG.n_fft / 2) + phi0 - math.pi * k
        err = _wrap(spec[k, 10:50].angle() - expected).abs().max()
        assert err < 0.02, (k, float(err))


@pytest.mark.parametrize("name", list(SIGNALS))
def test_phase_derivatives_match_true_stft(name: str) -> None:
    make, cfg = SIGNALS[name]
    spec = stft(make(cfg.sample_rate), cfg)
    phase = pghi_phase(spec.abs(), cfg)
    time_err, freq_err = _derivative_errors(phase, spec)
    assert time_err < 0.3 and freq_err < 0.3, (time_err, freq_err)
    # the check can fail: random phase, and PGHI without the frame-start conversion
    rand = 2 * math.pi * torch.rand(phase.shape, generator=torch.Generator().manual_seed(0))
    assert min(_derivative_errors(rand, spec)) > 1.2
    bins = torch.arange(cfg.n_freqs)[:, None]
    unconverted = _derivative_errors(phase + math.pi * bins, spec)
    assert unconverted[1] > 2.5, unconverted


@pytest.mark.parametrize("name", [*SIGNALS, "speech-center", "speech-hifigan16k"])
def test_init_is_consistent(name: str, speech: Tensor, speech_sr: int) -> None:
    """The spectrogram ``mag * e^{i pghi}`` is far closer to consistent than random or zero phase."""
    if name.startswith("speech"):
        cfg = CFG
        if name == "speech-hifigan16k":
            cfg = MelConfig.from_preset("hifigan", sample_rate=speech_sr, f_max=None)
        x = speech
    else:
        make, cfg = SIGNALS[name]
        x = make(cfg.sample_rate)
    mag = stft(x, cfg).abs()
    pghi = _inconsistency_db(mag, cfg, pghi_phase(mag, cfg))
    random = _inconsistency_db(mag, cfg, "random")
    zeros = _inconsistency_db(mag, cfg, "zeros")
    assert pghi < -12.0 and pghi < min(random, zeros) - 8.0, (pghi, random, zeros)


def test_explicit_window_matches_config_window() -> None:
    mag = stft(_chirp(16000), CFG).abs()
    by_config = _inconsistency_db(mag, CFG, pghi_phase(mag, CFG))
    by_window = _inconsistency_db(mag, CFG, pghi_phase(mag, CFG, make_window(CFG)))
    assert abs(by_config - by_window) < 1.0, (by_config, by_window)


# ------------------------------------------------------------------------- exactness of the scan
def _reference_scan(delta: Tensor, owner: Tensor) -> Tensor:
    """``psi(k, n) = psi(owner(k, n), n - 1) + delta(k, n)``, one frame at a time."""
    psi = torch.zeros_like(delta)
    prev = torch.zeros_like(delta[..., 0, :])
    for n in range(delta.shape[-2]):
        prev = prev.gather(-1, owner[..., n, :]) + delta[..., n, :]
        psi[..., n, :] = prev
    return psi


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(1, 1, 5), (3, 2, 5), (2, 3, 3, 7), (4, 17, 9), (2, 64, 6)])
def test_scan_matches_frame_loop(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(sum(shape))
    delta = torch.randn(shape, generator=gen, dtype=dtype)
    owner = torch.randint(0, shape[-1], shape, generator=gen)
    torch.testing.assert_close(_follow_owners(delta, owner), _reference_scan(delta, owner))


def _reference_owner(logs: list[float], k: int) -> int:
    peaks = [j for j in range(1, len(logs) - 1) if logs[j - 1] < logs[j] > logs[j + 1]]
    right = [p for p in peaks if p >= k]
    left = [p for p in peaks if p <= k]
    if not peaks:
        return k
    if k + 1 < len(logs) and logs[k] < logs[k + 1]:
        return right[0] if right else left[-1]
    return left[-1] if left else right[0]


def _reference_item(mag: list[list[float]], cfg: MelConfig) -> list[list[float]]:
    """The whole method for one ``(n_freqs, frames)`` item in plain Python, frame by frame."""
    n_fft, hop, win = cfg.n_fft, cfg.hop_length, cfg.win_length
    gamma = GAUSSIAN_EQUIVALENT[cfg.window] * win**2
    n_freqs, num_frames = len(mag), len(mag[0])
    top = max(max(row) for row in mag)
    logs = [[math.log(v + 1e-10 * top) for v in row] for row in mag]

    def tgrad(k: int, n: int) -> float:
        diff = (logs[k + 1][n] - logs[k - 1][n]) / 2 if 0 < k < n_freqs - 1 else 0.0
        return hop * n_fft / gamma * diff + 2 * math.pi * hop * k / n_fft

    def fgrad(k: int, n: int) -> float:
        lo, hi = max(n - 1, 0), min(n + 1, num_frames - 1)
        diff = (logs[k][hi] - logs[k][lo]) / max(hi - lo, 1)
        return -gamma / (hop * n_fft) * diff

    psi_prev = [0.0] * n_freqs
    out = [[0.0] * num_frames for _ in range(n_freqs)]
    for n in range(num_frames):
        column = [logs[k][n] for k in range(n_freqs)]
        phi = [0.0]
        for k in range(1, n_freqs):
            phi.append(phi[-1] + (fgrad(k - 1, n) + fgrad(k, n)) / 2)
        psi = []
        for k in range(n_freqs):
            o = _reference_owner(column, k)
            advance = (tgrad(o, n) + tgrad(o, max(n - 1, 0))) / 2
            psi.append(psi_prev[o] + advance + phi[k] - phi[o])
        for k in range(n_freqs):
            out[k][n] = psi[k] - math.pi * k  # frame-start reference, full-length window
        psi_prev = psi
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("lead, frames", [((), 1), ((2,), 2), ((3,), 3), ((2, 3), 17), ((1,), 40)])
def test_matches_frame_by_frame_reference(
    lead: tuple[int, ...], frames: int, dtype: torch.dtype
) -> None:
    gen = torch.Generator().manual_seed(frames)
    mag = torch.rand(*lead, TINY.n_freqs, frames, generator=gen, dtype=torch.float64)
    mag = torch.where(mag < 0.25, 0.0, mag).to(dtype)  # zero plateaus exercise the owner rules
    phase = pghi_phase(mag, TINY)
    assert phase.shape == mag.shape and phase.dtype == dtype
    items = mag.double().reshape(-1, TINY.n_freqs, frames).tolist()
    ref = torch.tensor([_reference_item(item, TINY) for item in items], dtype=torch.float64)
    err = _wrap(phase.double().reshape(ref.shape) - ref).abs().max()
    assert err < (1e-9 if dtype == torch.float64 else 2e-3), float(err)


# ------------------------------------------------------------------------- padding and batching
@pytest.mark.parametrize("frames", [1, 2, 5, 9, 30])
def test_appended_frames_leave_earlier_frames_unchanged(frames: int, speech: Tensor) -> None:
    """Frames ``0 .. T - 2`` are bit-identical whatever is appended after frame ``T - 1``, as long
    as it does not exceed the item's maximum; frame ``T - 1`` may change."""
    mag = stft(speech[4000:16000], CFG).abs()[:, :frames]
    quiet = stft(speech[20000:32000], CFG).abs() * (mag.max() / stft(speech, CFG).abs().max())
    alone = pghi_phase(mag, CFG)
    for extra in (1, 3, 7, 40):
        for tail in (torch.zeros(CFG.n_freqs, extra), quiet[:, :extra]):
            padded = pghi_phase(torch.cat([mag, tail], dim=-1), CFG)
            assert torch.equal(padded[:, : frames - 1], alone[:, : frames - 1]), (extra, tail.max())


def test_batch_independence(speech: Tensor) -> None:
    n = 12000
    waves = torch.stack([_chirp(16000)[:n], _tone(16000)[:n], speech[8000 : 8000 + n]])
    mags = stft(waves, CFG).abs() * torch.tensor([1.0, 1e-3, 30.0])[:, None, None]
    batched = pghi_phase(mags.reshape(3, 1, *mags.shape[-2:]), CFG)
    for i in range(3):
        assert torch.equal(batched[i, 0], pghi_phase(mags[i], CFG))


# ------------------------------------------------------------------------- modes, dtypes, errors
def test_inference_mode_and_dtypes() -> None:
    mag = stft(_chirp(16000, 0.5).double(), CFG).abs()
    with torch.inference_mode():
        phase64 = pghi_phase(mag, CFG)
    assert phase64.dtype == torch.float64 and phase64.shape == mag.shape
    assert bool((phase64 >= -math.pi).all() and (phase64 <= math.pi).all())
    phase32 = pghi_phase(mag.float(), CFG)
    assert phase32.dtype == torch.float32
    assert float(_wrap(phase32.double() - phase64).abs().max()) < 1e-3
    grad_mag = mag.clone().requires_grad_()
    assert not pghi_phase(grad_mag, CFG).requires_grad


def test_silent_item_is_finite() -> None:
    phase = pghi_phase(torch.zeros(2, CFG.n_freqs, 4), CFG)
    assert torch.isfinite(phase).all()


@pytest.mark.parametrize(
    "bad",
    [
        torch.ones(CFG.n_freqs, 4, dtype=torch.complex64),
        torch.ones(CFG.n_freqs + 1, 4),
        torch.ones(CFG.n_freqs),
        -torch.ones(CFG.n_freqs, 4),
        torch.full((CFG.n_freqs, 4), float("nan")),
        torch.ones(CFG.n_freqs, 4, dtype=torch.long),
    ],
    ids=["complex", "n_freqs", "1d", "negative", "nan", "integer"],
)
def test_bad_magnitude_raises(bad: Tensor) -> None:
    with pytest.raises(ValueError, match="magnitude"):
        pghi_phase(bad, CFG)


def test_bad_window_raises() -> None:
    with pytest.raises(ValueError, match="window"):
        pghi_phase(torch.ones(CFG.n_freqs, 4), CFG, window=torch.ones(CFG.n_fft - 1))


def test_given_frequency_sets_the_phase_advance() -> None:
    # a pure tone between two bins: with its true frequency, the peak's phase advances by
    # exactly 2 pi hop f / n_fft per frame (the log-magnitude estimate is close, not exact)
    sr, f = HIFIGAN.sample_rate, 1000.3
    t = torch.arange(sr, dtype=torch.float64) / sr
    mag = stft(torch.sin(2 * math.pi * f * t), HIFIGAN).abs()
    bins = f * HIFIGAN.n_fft / sr
    frequency = torch.full_like(mag, bins)
    k = round(bins)
    expected = 2 * math.pi * HIFIGAN.hop_length * bins / HIFIGAN.n_fft
    errors = {}
    for name, given in (("given", frequency), ("estimated", None)):
        phase = pghi_phase(mag, HIFIGAN, frequency=given)
        errors[name] = float(_wrap(phase[k, 11:70] - phase[k, 10:69] - expected).abs().max())
    assert errors["given"] < 1e-9 < errors["estimated"] < 0.05, errors


@pytest.mark.parametrize(
    "bad",
    [
        torch.ones(CFG.n_freqs, 5),
        torch.ones(CFG.n_freqs, 4, dtype=torch.complex64),
        torch.full((CFG.n_freqs, 4), float("inf")),
    ],  # fmt: skip
    ids=["shape", "complex", "inf"],
)
def test_bad_frequency_raises(bad: Tensor) -> None:
    with pytest.raises(ValueError, match="frequency"):
        pghi_phase(torch.ones(CFG.n_freqs, 4), CFG, frequency=bad)
