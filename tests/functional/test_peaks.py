"""The peak-model magnitude and ``init="pghi"``'s per-item choice (issue 11)."""

from __future__ import annotations

import math

import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import (
    griffin_lim,
    initial_phase,
    mel_consistency,
    nnls_spectrum,
    pghi_phase,
)
from specinv_lightning.functional import initial as initial_module
from specinv_lightning.functional.initial import _pghi_candidates
from specinv_lightning.functional.peaks import (
    PEAK_SHARPEN,
    PEAK_STEP,
    peak_fit,
    peak_fits,
    peak_model,
    peak_spectrum,
)


def _model(cfg: MelConfig, dtype: torch.dtype = torch.float32):
    inv = MelInverter(cfg)
    return inv, peak_model(cfg, inv.fb.double(), inv.window.double()).to(dtype)


def _harmonic(f0: float, sr: int, seconds: float = 1.0, partials: int = 5) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return sum((0.7**h) * torch.sin(2 * math.pi * h * f0 * t) for h in range(1, partials + 1))


def _melody(sr: int, seed: int = 0, notes: int = 6, seconds: float = 2.4) -> torch.Tensor:
    """Plucked harmonic notes with vibrato (a synthetic melody, different from any tuning clip)."""
    gen = torch.Generator().manual_seed(seed)
    n = int(seconds * sr)
    t = torch.arange(n // notes, dtype=torch.float64) / sr
    out = []
    for _ in range(notes):
        f0 = 110.0 * 2 ** (float(torch.randint(0, 24, (1,), generator=gen)) / 12)
        inst = f0 * (1 + 0.005 * torch.sin(2 * math.pi * 5.0 * t))
        phase = 2 * math.pi * torch.cumsum(inst, 0) / sr
        env = torch.exp(-3.0 * t) * torch.clamp(t / 0.01, max=1.0)
        out.append(env * sum((0.6**h) * torch.sin(h * phase) for h in range(1, 7)))
    x = torch.cat(out)
    return (0.5 * x / x.abs().max()).float()


def _peaks(s: torch.Tensor) -> list[int]:
    keep = (s[1:-1] > s[:-2]) & (s[1:-1] > s[2:]) & (s[1:-1] > 0.05 * s.max())
    return (keep.nonzero().flatten() + 1).tolist()


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_lobes_are_the_window_transform(power: float) -> None:
    cfg = MelConfig.from_preset("hifigan", power=power)
    _, model = _model(cfg, torch.float64)
    n_freqs = cfg.n_fft // 2 + 1
    assert model.lobes.shape[0] == n_freqs and model.mel_lobes.shape[0] == cfg.n_mels
    # a lobe centred on bin 20: a full-length Hann window's transform is 1, 1/2, 0 at 0, 1, 2 bins
    j = int(round((20 - float(_first_centre(model))) / PEAK_STEP))
    col = model.lobes[:, j]
    assert torch.allclose(col[18:23], torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0]).double() ** power,
                          atol=1e-9)  # fmt: skip
    assert torch.allclose(model.mel_lobes, model.fb @ model.lobes)
    # centres every half bin, over the bins the filterbank covers (f_max 8 kHz: bin 372)
    assert model.lobes.shape[1] < 2 * n_freqs and float(model.lobes[400:].abs().max()) == 0.0


def _first_centre(model) -> float:
    # the first lobe's centre: the bin where its (symmetric) transform peaks
    return float(torch.argmax(model.lobes[:, 0]))


@pytest.mark.parametrize("f0", [196.0, 233.0, 311.0])
def test_peak_spectrum_finds_the_harmonics(f0: float) -> None:
    # the peak spectrum of a harmonic tone's mel peaks within half a bin of every partial
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    x = _harmonic(f0, cfg.sample_rate).float()[None]
    mel = MelSpectrogram(cfg)(x)
    sharp = peak_spectrum(inv._decompress(mel), model)[0, :, 40]
    partials = [h * f0 * cfg.n_fft / cfg.sample_rate for h in range(1, 6)]
    found = _peaks(sharp)
    assert len(found) == len(partials), (found, partials)
    assert max(abs(k - p) for k, p in zip(found, partials, strict=True)) <= 0.55, (found, partials)
    # its mel matches the input mel (the fit, not just a sharpened guess)
    lin = inv._decompress(mel)
    fitted = torch.matmul(inv.fb.float(), peak_spectrum(lin, model))
    assert float((fitted - lin).norm() / lin.norm()) < 0.05


@pytest.mark.parametrize("f0", [196.0, 233.0, 311.0])
def test_peak_fit_frequency_tracks_the_partials(f0: float) -> None:
    # at the peak bin nearest each partial, frame after frame, the fit's frequency is the
    # partial's to a tenth of a bin (measured rms 0.02-0.11); silence keeps each bin's own
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    mel = MelSpectrogram(cfg)(_harmonic(f0, cfg.sample_rate).float()[None])
    fit = peak_fit(inv._decompress(mel), model)
    spectrum, frequency = fit.spectrum[0, :, 10:75], fit.frequency[0, :, 10:75]
    assert fit.frequency.shape == fit.spectrum.shape == (1, cfg.n_freqs, mel.shape[-1])
    for h in range(1, 6):
        partial = h * f0 * cfg.n_fft / cfg.sample_rate
        near = torch.arange(int(partial) - 1, int(partial) + 3)
        peak = near[spectrum[near].argmax(0)]
        estimate = frequency.gather(0, peak[None])[0]
        rms = float((estimate - partial).square().mean().sqrt())
        assert rms < 0.15, (h, rms)
    silent = peak_fit(torch.zeros(1, cfg.n_mels, 3), model)
    assert torch.equal(silent.spectrum, torch.zeros_like(silent.spectrum))
    bins = torch.arange(cfg.n_freqs, dtype=torch.float32)[:, None].expand(-1, 3)
    assert torch.equal(silent.frequency[0], bins)
    assert torch.equal(peak_spectrum(inv._decompress(mel), model), fit.spectrum)


@pytest.mark.parametrize(
    ("preset", "f0"), [("hifigan", 196.0), ("hifigan", 311.0), ("librosa", 233.0)]
)
def test_peak_fit_centroid_is_closer_to_separate_partials(preset: str, f0: float) -> None:
    # the per-bin moment leans towards its bin; the lobe-weight centroid does not: at the peak
    # bin nearest each partial of a harmonic tone, frame after frame (measured: rms summed over
    # the partials 0.24-0.37 bins for the moment, 0.06-0.15 for the centroid)
    cfg = MelConfig.from_preset(preset)
    inv, model = _model(cfg)
    mel = MelSpectrogram(cfg)(_harmonic(f0, cfg.sample_rate).float()[None])
    fit = peak_fit(inv._decompress(mel), model)
    frames = slice(5, mel.shape[-1] - 5)
    spectrum = fit.spectrum[0, :, frames]
    errors = {"frequency": 0.0, "centroid": 0.0}
    for h in range(1, 6):
        partial = h * f0 * cfg.n_fft / cfg.sample_rate
        near = torch.arange(int(partial) - 1, int(partial) + 3)
        peak = near[spectrum[near].argmax(0)]
        for name in errors:
            estimate = getattr(fit, name)[0, :, frames].gather(0, peak[None])[0]
            errors[name] += float((estimate - partial).square().mean().sqrt())
    assert errors["centroid"] < 0.6 * errors["frequency"], errors
    # silence, and bins beyond the lobes (above the filterbank), keep their own frequency
    silent = peak_fit(torch.zeros(1, cfg.n_mels, 2), model).centroid[0]
    bins = torch.arange(cfg.n_freqs, dtype=torch.float32)[:, None].expand(-1, 2)
    assert torch.equal(silent, bins)


def test_peak_fit_centroid_keeps_bins_beyond_the_lobes() -> None:
    # above the filterbank (hifigan: 8 kHz of 11.025) no lobe is centred; the lobes at the top
    # carry weight there, but those bins keep their own frequency
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    noise = peak_fit(inv._decompress(MelSpectrogram(cfg)(torch.randn(1, 4096))), model)
    beyond = int(model.centres[-1]) + 1
    assert beyond < cfg.n_freqs and bool((noise.spectrum[0, beyond:] > 0).any())
    bins = torch.arange(beyond, cfg.n_freqs, dtype=torch.float32)[:, None]
    assert torch.equal(noise.centroid[0, beyond:], bins.expand(-1, noise.centroid.shape[-1]))


@pytest.mark.parametrize("preset", ["hifigan", "librosa", "styletts2"])
def test_sharpening_places_lone_tones_where_bands_are_wider_than_a_lobe(preset: str) -> None:
    # a lone partial in a band wider than the window's main lobe: FISTA from the pseudo-inverse
    # spreads it over neighbouring lobes whose mean drifts towards the band's centre; the
    # multiplicative steps gather it. Centroid at the peak bin, mean |error| over six tones,
    # measured: without 0.25 / 0.36 / 1.03 bins, with 0.09 / 0.16 / 0.62
    cfg = MelConfig.from_preset(preset)
    inv, model = _model(cfg)
    freqs = (812.7, 1234.5, 1777.0, 2301.0, 3011.0, 4480.0)
    t = torch.arange(cfg.sample_rate, dtype=torch.float64) / cfg.sample_rate
    x = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in freqs]).float()
    lin = inv._decompress(MelSpectrogram(cfg)(x))
    frame = lin.shape[-1] // 2
    truth = torch.tensor(freqs) * cfg.n_fft / cfg.sample_rate
    errors = []
    for fit in peak_fits(lin, model, (0, PEAK_SHARPEN)):
        peak = fit.spectrum[..., frame].argmax(-1)
        centroid = fit.centroid[..., frame].gather(-1, peak[:, None])[:, 0]
        errors.append(float((centroid - truth).abs().mean()))
        # the mel stays fitted (relative residual)
        fitted = torch.matmul(inv.fb.float(), fit.spectrum)
        assert float((fitted - lin).norm() / lin.norm()) < 0.05
    assert errors[1] <= 0.7 * errors[0], errors


def test_peak_fits_continue_one_fit() -> None:
    # one FISTA fit, then the steps of each count continue the previous ones: the same numbers
    # as separate calls; counts must ascend and be >= 0
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    lin = inv._decompress(MelSpectrogram(cfg)(_melody(cfg.sample_rate)[None, :22050]))
    chained = peak_fits(lin, model, (0, 10, 25))
    for count, fit in zip((0, 10, 25), chained, strict=True):
        alone = peak_fit(lin, model, sharpen=count)
        for a, b in zip(fit, alone, strict=True):
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6 * float(b.abs().max())), count
    assert not torch.equal(chained[0].spectrum, chained[2].spectrum)
    for bad in ((10, 0), (-1,)):
        with pytest.raises(ValueError, match="sharpen"):
            peak_fits(lin, model, bad)


def test_sharpening_helps_init_pghi_on_a_melody(monkeypatch) -> None:
    # purpose: on StyleTTS 2's transform (bands wider than the window's main lobe below 2 kHz)
    # the sharpened candidate lifts 8 iterations on a synthetic melody (measured: -30.2 dB
    # without, -40.2 with; other seeds of the melody +3.1 and +5.2 dB)
    # (the harmonic candidate, which continues the sharpened fit, is left out)
    cfg = MelConfig.from_preset("styletts2")
    mel = MelSpectrogram(cfg)(_melody(cfg.sample_rate)[None])
    monkeypatch.setattr(initial_module, "_MARGINS", (1.0, 1.0, 1.0, 0.0))
    scores = {}
    for count in (0, PEAK_SHARPEN):
        monkeypatch.setattr(initial_module, "PEAK_SHARPEN", count)
        with torch.no_grad():
            wave = MelInverter(cfg, n_iter=8)(mel)
        scores[count] = float(mel_consistency(wave, mel, cfg))
    assert scores[PEAK_SHARPEN] <= scores[0] - 4.0, scores


def test_pinv_misplaces_partials_the_peak_spectrum_finds() -> None:
    # why the peak model exists: the pseudo-inverse puts some partials a bin off
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    worst = {"pinv": 0.0, "peaks": 0.0}
    for f0 in (196.0, 233.0, 311.0):
        mel = MelSpectrogram(cfg)(_harmonic(f0, cfg.sample_rate).float()[None])
        partials = [h * f0 * cfg.n_fft / cfg.sample_rate for h in range(1, 6)]
        spectra = {
            "pinv": inv.magnitude_from_mel(mel)[0, :, 40],
            "peaks": peak_spectrum(inv._decompress(mel), model)[0, :, 40],
        }
        for name, s in spectra.items():
            off = [min(abs(k - p) for k in _peaks(s)) for p in partials]
            worst[name] = max(worst[name], max(off))
    assert worst["peaks"] <= 0.55 < 1.0 <= worst["pinv"], worst


def test_pghi_beats_pghi_fast_on_music_and_holds_on_speech(speech) -> None:
    cfg = MelConfig.from_preset("hifigan")
    melody = _melody(cfg.sample_rate)
    x = torch.nn.functional.interpolate(speech[None, None], scale_factor=22050 / 16000,
                                        mode="linear")[0]  # fmt: skip
    scores = {}
    for name, clip in (("melody", melody[None]), ("speech", x)):
        mel = MelSpectrogram(cfg)(clip)
        for init in ("pghi", "pghi-fast"):
            with torch.no_grad():
                wave = MelInverter(cfg, n_iter=8, init=init)(mel)
            scores[name, init] = float(mel_consistency(wave, mel, cfg))
    # measured: melody -31.5 vs -25.4 dB, speech -32.1 vs -26.6 dB
    assert scores["melody", "pghi"] <= scores["melody", "pghi-fast"] - 4.0, scores
    assert scores["speech", "pghi"] <= scores["speech", "pghi-fast"] - 2.0, scores


def test_choice_is_per_item_and_batch_independent(speech) -> None:
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    frames = 120
    clips = [speech[: cfg.num_samples(frames)], _melody(cfg.sample_rate)[: cfg.num_samples(frames)]]
    mel = MelSpectrogram(cfg)(torch.stack(clips))[..., :frames]
    lin = inv._decompress(mel)
    mag = inv.magnitude_from_mel(mel)
    both = initial_phase(mag, "pghi", config=cfg, mel=lin, peaks=model)
    for i in range(2):
        alone = initial_phase(mag[i : i + 1], "pghi", config=cfg, mel=lin[i : i + 1], peaks=model)
        assert torch.equal(both[i], alone[0])
    # each item's phase is one of the three candidates
    candidates = _pghi_candidates(mag, lin, cfg, model)
    for i in range(2):
        assert any(torch.equal(both[i], c[i]) for c in candidates)


def test_pghi_fast_and_no_mel_are_the_magnitude_phase(speech) -> None:
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    mel = MelSpectrogram(cfg)(speech[None, :16000])
    mag = inv.magnitude_from_mel(mel)
    plain = pghi_phase(mag, cfg)
    lin = inv._decompress(mel)
    assert torch.equal(initial_phase(mag, "pghi-fast", config=cfg, mel=lin, peaks=model), plain)
    assert torch.equal(initial_phase(mag, "pghi", config=cfg), plain)


def test_griffin_lim_with_mel_uses_the_peak_model(speech) -> None:
    # griffin_lim(mel=..., init="pghi") starts where MelInverter does. Not bit for bit: the
    # inverter fits the mel scaled to peak 1, and rounding can flip a near-tie between two bins
    # (which one is the peak) or in the fitted frequencies, integrated along a partial. Measured:
    # rms 3-4e-4 of the peak in float32 and float64, against 0.43 from the pinv magnitude's phase.
    cfg = MelConfig.from_preset("hifigan")
    inv = MelInverter(cfg, n_iter=0, fused=False)
    mel = MelSpectrogram(cfg)(_melody(cfg.sample_rate)[None])
    lin = inv._decompress(mel)
    expected = inv(mel)
    expected = expected / expected.abs().max()
    for init, near in (("pghi", True), ("pghi-fast", False)):
        ours = griffin_lim(inv.magnitude_from_mel(mel), cfg, n_iter=0, init=init, mel=lin)
        rms = float((ours / ours.abs().max() - expected).square().mean().sqrt())
        assert (rms < 0.01) == near, (init, rms)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nnls_in_place_equals_autograd_path(dtype: torch.dtype) -> None:
    cfg = MelConfig.from_preset("hifigan")
    _, model = _model(cfg, dtype)
    mel = torch.rand(2, cfg.n_mels, 7, dtype=dtype)
    fast = nnls_spectrum(mel, model.mel_lobes, max_iter=40, lipschitz=model.lipschitz)
    grad_mel = mel.clone().requires_grad_(True)
    slow = nnls_spectrum(grad_mel, model.mel_lobes, max_iter=40, lipschitz=model.lipschitz)
    assert slow.requires_grad and not fast.requires_grad
    assert torch.allclose(fast, slow.detach(), rtol=1e-4, atol=1e-6 * float(fast.abs().max()))


def test_inference_mode_and_float64() -> None:
    cfg = MelConfig.from_preset("hifigan")
    mel = MelSpectrogram(cfg)(_melody(cfg.sample_rate)[None, :22050].double())
    with torch.inference_mode():
        wave = MelInverter(cfg, n_iter=2).double()(mel)
    assert wave.dtype == torch.float64 and torch.isfinite(wave).all()


def test_peak_model_also_without_mel_consistency() -> None:
    # the mel informs the initial phase even when the loop keeps the pinv magnitude fixed
    cfg = MelConfig.from_preset("hifigan")
    mel = MelSpectrogram(cfg)(_melody(cfg.sample_rate)[None])
    scores, waves = {}, {}
    for init in ("pghi", "pghi-fast"):
        with torch.no_grad():
            waves[init] = MelInverter(cfg, n_iter=8, init=init, mel_consistent=False)(mel)
        scores[init] = float(mel_consistency(waves[init], mel, cfg))
    assert not torch.allclose(waves["pghi"], waves["pghi-fast"])
    # the fixed pinv magnitude bounds both (about -22 dB here): the peak phase does not hurt
    assert scores["pghi"] <= scores["pghi-fast"] + 0.1, scores


# (tones in Hz, margins in dB at 32 iterations over random and over pghi-fast). Measured,
# random the mean of 3 seeds, pghi-fast, pghi at 8 and at 32 iterations:
# A major -23.1, -25.2, -24.4, -26.3; C minor -22.4, -23.4, -23.4, -27.1. With PGHI's own
# log-magnitude frequency instead of the fit's: A major -23.8 and -26.1; C minor -22.1 (behind
# random at 32) and -25.4, which fails the C minor margins.
CHORDS = {
    "A major": ((220.0, 277.18, 329.63, 440.0), 2.5, 0.5),
    "C minor": ((261.63, 311.13, 392.0), 4.0, 3.0),
}


@pytest.mark.parametrize("chord", list(CHORDS))
def test_chord_of_pure_tones_beats_random_phases(chord: str) -> None:
    # the weakest class seen: stationary pure tones a few bins apart (not tuning clips). The
    # issue's +5 dB at 32 iterations is not reached on such chords (README says so); 8 PGHI
    # iterations reach 32 random ones.
    tones, over_random, over_fast = CHORDS[chord]
    cfg = MelConfig.from_preset("hifigan")
    sr = cfg.sample_rate
    t = torch.arange(int(2.0 * sr), dtype=torch.float64) / sr
    x = sum(torch.sin(2 * math.pi * f * t) for f in tones)
    x = (0.5 * x * torch.exp(-0.8 * t) / x.abs().max()).float()[None]
    mel = MelSpectrogram(cfg)(x)

    def consistency(init: str, n_iter: int, seed: int = 0) -> float:
        with torch.no_grad():
            wave = MelInverter(cfg, n_iter=n_iter, init=init, seed=seed)(mel)
        return float(mel_consistency(wave, mel, cfg))

    random32 = sum(consistency("random", 32, seed) for seed in range(3)) / 3
    fast32, pghi32 = consistency("pghi-fast", 32), consistency("pghi", 32)
    assert pghi32 <= random32 - over_random, (pghi32, random32)
    assert pghi32 <= fast32 - over_fast, (pghi32, fast32)
    assert consistency("pghi", 8) <= random32 - 0.5


def _low_chord(sr: int) -> torch.Tensor:
    """E major in close position around E3 (164.8-329.6 Hz: partials 1.8-3.8 bins apart at
    22.05 kHz / 1024), fixed unequal starting phases, decaying."""
    t = torch.arange(int(2.0 * sr), dtype=torch.float64) / sr
    tones = ((164.81, 0.3), (207.65, 2.1), (246.94, 4.0), (329.63, 5.2))
    x = sum(torch.sin(2 * math.pi * f * t + p) for f, p in tones) * torch.exp(-1.5 * t)
    return (0.5 * x / x.abs().max()).float()[None]


def test_probe_keeps_pghi_from_stalling_on_unresolved_partials() -> None:
    # partials under ~2.5 bins apart merge in the mel; the peak phase then stalls (about -21 dB
    # from 8 to 32 iterations here) while the magnitude's phase and random phases go on. One
    # projection prefers the peak phase; two iterations of the loop do not.
    cfg = MelConfig.from_preset("hifigan")
    mel = MelSpectrogram(cfg)(_low_chord(cfg.sample_rate))

    def consistency(init: str, n_iter: int, seed: int = 0) -> float:
        with torch.no_grad():
            wave = MelInverter(cfg, n_iter=n_iter, init=init, seed=seed)(mel)
        return float(mel_consistency(wave, mel, cfg))

    random32 = sum(consistency("random", 32, seed) for seed in range(3)) / 3
    pghi32 = consistency("pghi", 32)
    assert pghi32 <= random32 - 0.5, (pghi32, random32)
    assert pghi32 == pytest.approx(consistency("pghi-fast", 32), abs=1e-6)


@pytest.mark.parametrize(
    ("levels", "winner"),
    [((1, 100, 100, 100), 0), ((100, 1, 100, 100), 1), ((100, 100, 1, 100), 2),
     ((100, 100, 100, 1), 3), ((1, 1, 1, 1), 0), (("nan", 1, 1, "nan"), 1),
     (("nan", "nan", "nan", "nan"), 0), ((100, 100, 100, 99), 0), ((100, 100, 100, 90), 3)],
)  # fmt: skip
def test_probe_decides_the_choice(levels: tuple, winner: int) -> None:
    # initial_phase judges the candidates, one at a time, by what the probe returns (the first of
    # equals; a NaN never wins; the harmonic fit's only by a 0.5 dB margin: at these levels the
    # error grows as the level squared, 99 against 100 is 0.09 dB, 90 is 0.9 dB) and returns
    # the initial phase of the winner, not the probed one
    cfg = MelConfig.from_preset("hifigan")
    inv, model = _model(cfg)
    mel = MelSpectrogram(cfg)(_melody(cfg.sample_rate)[None, : cfg.num_samples(60)])[..., :60]
    lin, mag = inv._decompress(mel), inv.magnitude_from_mel(mel)
    seen = []

    def probe(phases: torch.Tensor):
        level = levels[len(seen)]
        seen.append(phases.shape)
        scale = torch.full_like(mag, float(level))  # 100: resynthesises far too loud
        return torch.polar(mag * scale, torch.zeros_like(phases))  # equal levels: equal errors

    chosen = initial_phase(mag, "pghi", config=cfg, mel=lin, peaks=model, probe=probe)
    assert seen == [(1, *mag.shape)] * 4
    assert torch.equal(chosen, _pghi_candidates(mag, lin, cfg, model)[winner])


def test_padding_leaves_the_chosen_phase_of_earlier_frames(speech, monkeypatch) -> None:
    # the rule for padded items: silent frames appended to an item (a padded batch)
    # change neither the per-item choice nor the phase of any earlier frame but the last
    from specinv_lightning.functional import _engine

    cfg = MelConfig.from_preset("hifigan")
    seen: list[torch.Tensor] = []

    def spy(*args, **kwargs):
        seen.append(initial_phase(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(_engine, "initial_phase", spy)
    x = torch.nn.functional.interpolate(speech[None, None], scale_factor=22050 / 16000,
                                        mode="linear")[0]  # fmt: skip
    for clip in (x, _melody(cfg.sample_rate)[None], _low_chord(cfg.sample_rate)):
        mel = MelSpectrogram(cfg)(clip)
        frames = mel.shape[-1]
        tail = torch.full((1, cfg.n_mels, 40), float(mel.min()))
        seen.clear()
        with torch.no_grad():
            MelInverter(cfg, n_iter=4)(mel)
            MelInverter(cfg, n_iter=4)(torch.cat([mel, tail], dim=-1))
        alone, padded = seen
        assert torch.equal(alone[..., : frames - 1], padded[..., : frames - 1])
