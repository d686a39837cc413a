"""The harmonic fit of ``init="pghi"``: pitch from the peak fit, harmonics put on its multiples."""

from __future__ import annotations

import math

import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import initial as initial_module
from specinv_lightning.functional import mel_consistency
from specinv_lightning.functional.peaks import (
    PEAK_SHARPEN,
    harmonic_pitch,
    peak_fits,
    peak_model,
)


def _model(cfg: MelConfig):
    inv = MelInverter(cfg)
    return inv, peak_model(cfg, inv.fb.double(), inv.window.double()).to(torch.float32)


def _instantaneous(t: torch.Tensor, f0: float, glide: float, rate: float, vibrato: float):
    return f0 * (1 + glide * torch.sin(2 * math.pi * rate * t)
                 + vibrato * torch.sin(2 * math.pi * 5.5 * t))  # fmt: skip


def _voice(sr: int, f0: float, glide: float = 0.03, rate: float = 0.3, vibrato: float = 0.0,
           seconds: float = 2.0) -> torch.Tensor:  # fmt: skip
    """A synthetic vowel: harmonics to 5 kHz shaped by three formants (600, 1700, 2700 Hz) over a
    floor, amplitude ``h^-1/2``, the pitch gliding ``glide`` at ``rate`` Hz plus ``vibrato`` at
    5.5 Hz."""
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    inst = _instantaneous(t, f0, glide, rate, vibrato)
    phase = 2 * math.pi * torch.cumsum(inst, 0) / sr
    x = torch.zeros_like(t)
    for h in range(1, int(5000 / f0) + 1):
        f = h * inst
        formants = sum(torch.exp(-(((f - c) / b) ** 2))
                       for c, b in ((600, 300), (1700, 400), (2700, 500)))  # fmt: skip
        x += (formants + 0.1) * torch.sin(h * phase) / h**0.5
    return (0.5 * x / x.abs().max()).float()[None]


def _tone(sr: int, f0: float) -> torch.Tensor:
    t = torch.arange(sr // 2, dtype=torch.float64) / sr
    x = sum(torch.sin(2 * math.pi * h * f0 * t) / h for h in range(1, int(4000 / f0) + 1))
    return (0.5 * x / x.abs().max()).float()[None]


@pytest.mark.parametrize("preset", ["hifigan", "librosa", "styletts2"])
def test_harmonic_pitch_reads_the_pitch_off_the_fit(preset: str) -> None:
    # harmonic tones (1/h partials to 4 kHz) from the mel's sharpened fit: every frame voiced
    # and no octave error (measured: at most 0.4% off); noise nearly all unvoiced (0-1.2%)
    cfg = MelConfig.from_preset(preset)
    inv, model = _model(cfg)
    for f0 in (130.0, 210.0, 330.0):
        lin = inv._decompress(MelSpectrogram(cfg)(_tone(cfg.sample_rate, f0)))
        (fit,) = peak_fits(lin, model, (PEAK_SHARPEN,))
        pitch, voiced = harmonic_pitch(fit.spectrum, model)
        assert pitch.shape == voiced.shape == lin.shape[:1] + lin.shape[-1:]
        truth = f0 * cfg.n_fft / cfg.sample_rate
        error = (pitch[0, 5:-5] / truth - 1).abs().max()
        assert float(error) < 0.006, (f0, float(error))
        assert bool(voiced[0, 5:-5].all()), f0
    noise = 0.1 * torch.randn(1, cfg.sample_rate, generator=torch.Generator().manual_seed(0))
    (fit,) = peak_fits(inv._decompress(MelSpectrogram(cfg)(noise)), model, (PEAK_SHARPEN,))
    assert float(harmonic_pitch(fit.spectrum, model)[1].float().mean()) < 0.05


@pytest.mark.parametrize(("preset", "tolerance"), [("hifigan", 0.01), ("styletts2", 0.025)])
def test_harmonic_pitch_calls_a_low_voice_voiced(preset: str, tolerance: float) -> None:
    # an 85 Hz vowel: above a few hundred Hz its harmonics share mel bands and come out of the fit
    # smeared; the second voicing test counts only the harmonics the mel resolves (measured:
    # every frame voiced on both, at most 0.5% / 1.6% off; with the first test alone, which
    # counts every harmonic under 1.5 kHz, StyleTTS 2 called 7% of them voiced)
    cfg = MelConfig.from_preset(preset)
    inv, model = _model(cfg)
    x = _voice(cfg.sample_rate, 85.0, glide=0.06, rate=0.6, vibrato=0.01, seconds=1.0)
    lin = inv._decompress(MelSpectrogram(cfg)(x))
    (fit,) = peak_fits(lin, model, (PEAK_SHARPEN,))
    pitch, voiced = harmonic_pitch(fit.spectrum, model)
    centres = torch.arange(lin.shape[-1], dtype=torch.float64) * cfg.hop_length / cfg.sample_rate
    truth = _instantaneous(centres, 85.0, 0.06, 0.6, 0.01) * cfg.n_fft / cfg.sample_rate
    inner = slice(3, -3)
    assert float(voiced[0, inner].float().mean()) >= 0.9
    assert float((pitch[0, inner] / truth[inner] - 1).abs().max()) < tolerance


@pytest.mark.parametrize("freqs", [(220.0, 277.2, 329.6, 440.0), (261.6, 311.1, 392.0, 523.3)])
def test_harmonic_pitch_does_not_call_a_chord_one_voice(freqs: tuple[float, ...]) -> None:
    # A major and C minor of pure tones on StyleTTS 2's transform: a low common pitch scores
    # well over the resolved multiples, but a partial lies half-way between two of them
    # (measured: no frame voiced; without the off-grid check every frame)
    cfg = MelConfig.from_preset("styletts2")
    inv, model = _model(cfg)
    t = torch.arange(cfg.sample_rate, dtype=torch.float64) / cfg.sample_rate
    x = sum(torch.sin(2 * math.pi * f * t) for f in freqs)
    lin = inv._decompress(MelSpectrogram(cfg)((0.5 * x / x.abs().max()).float()[None]))
    (fit,) = peak_fits(lin, model, (PEAK_SHARPEN,))
    assert float(harmonic_pitch(fit.spectrum, model)[1].float().mean()) < 0.05


def _placed(spectrum: torch.Tensor, cfg: MelConfig, inst: torch.Tensor) -> float:
    """The share of harmonics between 1.5 and 3 kHz (frame by frame, ``inst`` the pitch at each
    frame) with a local maximum of ``spectrum`` (n_freqs, frames) within one bin."""
    s = spectrum
    peak = torch.zeros_like(s, dtype=torch.bool)
    peak[1:-1] = (s[1:-1] > s[:-2]) & (s[1:-1] >= s[2:])
    frames = torch.arange(s.shape[-1])[5:-5]
    low, high = (f * cfg.n_fft / cfg.sample_rate for f in (1500, 3000))
    hits, total = 0, 0
    for h in range(1, 40):
        k = h * inst[frames] * cfg.n_fft / cfg.sample_rate
        inside = (k >= low) & (k <= high)
        found = torch.zeros_like(inside)
        for offset in (-1, 0, 1, 2):
            b = (k.floor().long() + offset).clamp(0, s.shape[0] - 1)
            found |= peak[b, frames] & ((b - k).abs() <= 1.0)
        hits += int((found & inside).sum())
        total += int(inside.sum())
    return hits / total


@pytest.mark.parametrize(("preset", "f0"), [("hifigan", 110.0), ("styletts2", 180.0)])
def test_harmonic_fit_places_the_harmonics_the_mel_smears(preset: str, f0: float) -> None:
    # between 1.5 and 3 kHz a band holds two harmonics or more: the sharpened fit leaves few of
    # them on a peak of their own, the harmonic fit nearly all (measured: 24% -> 100% and
    # 28% -> 94%; StyleTTS 2 at 110 Hz, not tested, 8% -> 76%); its mel stays fitted
    cfg = MelConfig.from_preset(preset)
    inv, model = _model(cfg)
    x = _voice(cfg.sample_rate, f0, glide=0.06, rate=0.6, vibrato=0.01, seconds=1.0)
    lin = inv._decompress(MelSpectrogram(cfg)(x))
    sharpened, harmonic = peak_fits(lin, model, (PEAK_SHARPEN,), harmonic=True)
    centres = torch.arange(lin.shape[-1], dtype=torch.float64) * cfg.hop_length / cfg.sample_rate
    inst = _instantaneous(centres, f0, 0.06, 0.6, 0.01)
    before, after = (_placed(fit.spectrum[0], cfg, inst) for fit in (sharpened, harmonic))
    assert after >= 0.8 and after >= before + 0.5, (before, after)
    fitted = torch.matmul(inv.fb.float(), harmonic.spectrum)
    assert float((fitted - lin).norm() / lin.norm()) < 0.05


@pytest.mark.parametrize(("f0", "lift"), [(110.0, 2.5), (85.0, 5.0)])
def test_harmonic_fit_lifts_init_pghi_on_a_voice(monkeypatch, f0: float, lift: float) -> None:
    # purpose: on StyleTTS 2's transform the harmonic candidate wins the probe on a vowel and
    # lifts 8 iterations (measured: 110 Hz -25.4 dB without it, -30.1 with; 85 Hz -17.4 and
    # -24.7, level without the second voicing test, on resolved harmonics; not tuning clips.
    # Other pitches and lengths of this vowel, not tested: 95 Hz +2.1 dB; 140 Hz -0.4 dB over
    # 2 s, +1.8 over 1 s; 110 Hz over 1 s: the probe keeps the sharpened fit, level)
    cfg = MelConfig.from_preset("styletts2")
    mel = MelSpectrogram(cfg)(_voice(cfg.sample_rate, f0))
    scores = {}
    for label, margins in (("with", initial_module._MARGINS), ("without", (1.0, 1.0, 1.0, 0.0))):
        monkeypatch.setattr(initial_module, "_MARGINS", margins)
        with torch.no_grad():
            wave = MelInverter(cfg, n_iter=8)(mel)
        scores[label] = float(mel_consistency(wave, mel, cfg))
    assert scores["with"] <= scores["without"] - lift, scores


def test_harmonic_fit_needs_a_count_to_continue() -> None:
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    with pytest.raises(ValueError, match="sharpen"):
        peak_fits(torch.ones(1, cfg.n_mels, 4), model, (), harmonic=True)


@pytest.mark.parametrize(
    "bad",
    [torch.ones(5), torch.ones(1, 100, 4), torch.ones(1, 513, 4, dtype=torch.complex64),
     torch.ones(1, 513, 4, dtype=torch.int64), torch.ones(0, 513, 4), "spectrum"],
)  # fmt: skip
def test_harmonic_pitch_rejects_what_is_not_a_spectrum_of_the_model(bad) -> None:
    cfg = MelConfig.from_preset("hifigan")  # 513 bins
    _, model = _model(cfg)
    with pytest.raises(ValueError, match="spectrum"):
        harmonic_pitch(bad, model)
