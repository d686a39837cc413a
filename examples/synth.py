"""Speech-like test signals that need no download: a small source-filter synthesiser.

Each utterance is a sequence of syllables separated by pauses. A syllable is a voiced nucleus
(a harmonic glottal source with a drifting, declining f0 contour, shaped by three or four
time-varying formant resonances that glide between vowel targets) preceded by an optional
fricative/plosive burst (high-passed noise), under a raised-cosine amplitude envelope, plus a
little breath noise. The filter is applied per harmonic in the frequency domain (additive
synthesis), so everything is vectorised over samples and harmonics and exactly band-limited.

Everything is deterministic from ``seed``: utterance ``i`` uses ``numpy.random.default_rng([seed, i])``.

Example:
    >>> from examples.synth import synthesize_utterance
    >>> wave = synthesize_utterance(16000, seed=0, index=0)
    >>> wave.dtype, wave.ndim, float(abs(wave).max()) <= 1.0
    (dtype('float32'), 1, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["synthesize_utterance", "VOWELS"]

# (F1, F2, F3) targets in Hz for a few vowels (adult speaker averages, Peterson & Barney style)
VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "e": (530.0, 1840.0, 2480.0),
    "i": (270.0, 2290.0, 3010.0),
    "o": (570.0, 840.0, 2410.0),
    "u": (300.0, 870.0, 2240.0),
    "ae": (660.0, 1720.0, 2410.0),
    "er": (490.0, 1350.0, 1690.0),
}
_BANDWIDTHS = np.array([80.0, 100.0, 150.0, 200.0])  # formant bandwidths (Hz)
_F4 = 3500.0


def _resonance(freq: np.ndarray, centre: np.ndarray, bandwidth: float) -> np.ndarray:
    """Magnitude response of a unit-DC-gain two-pole resonator at ``freq`` (broadcast)."""
    c2 = centre * centre
    return c2 / np.sqrt((c2 - freq * freq) ** 2 + (bandwidth * freq) ** 2)


def _smooth_steps(values: np.ndarray, bounds: np.ndarray, n: int, glide: int) -> np.ndarray:
    """Piecewise-constant ``values`` on ``[bounds[i], bounds[i+1])`` smoothed by a moving average."""
    out = np.empty(n, dtype=np.float64)
    for value, start, stop in zip(values, bounds[:-1], bounds[1:], strict=True):
        out[start:stop] = value
    if glide > 1:
        kernel = np.hanning(glide)
        kernel /= kernel.sum()
        padded = np.pad(out, (glide // 2, glide - 1 - glide // 2), mode="edge")
        out = np.convolve(padded, kernel, mode="valid")
    return out


def synthesize_utterance(
    sample_rate: int,
    seed: int = 0,
    index: int = 0,
    min_seconds: float = 1.5,
    max_seconds: float = 3.0,
) -> np.ndarray:
    """One speech-like utterance as a mono float32 waveform in ``[-1, 1]``.

    Args:
        sample_rate: Output sample rate in Hz (>= 8000 recommended; formants reach ~3.5 kHz).
        seed: Dataset seed.
        index: Utterance index; ``(seed, index)`` fully determines the output.
        min_seconds: Shortest utterance duration.
        max_seconds: Longest utterance duration.

    Returns:
        ``np.ndarray`` of shape ``(samples,)``, dtype float32, peak between 0.3 and 0.9.
    """
    if sample_rate < 1000:
        raise ValueError(f"sample_rate: expected >= 1000 Hz, got {sample_rate}")
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(
            f"min_seconds/max_seconds: expected 0 < min <= max, got {min_seconds}, {max_seconds}"
        )
    rng = np.random.default_rng([seed, index])
    sr = float(sample_rate)
    n = int(rng.uniform(min_seconds, max_seconds) * sr)
    t = np.arange(n) / sr

    # --- prosody: syllables and pauses -------------------------------------------------------
    bounds = [int(rng.uniform(0.05, 0.15) * sr)]
    voiced = []
    while bounds[-1] < n:
        syl = int(rng.uniform(0.12, 0.32) * sr)
        bounds.append(min(n, bounds[-1] + syl))
        voiced.append(True)
        if rng.random() < 0.3 and bounds[-1] < n:  # pause between words
            bounds.append(min(n, bounds[-1] + int(rng.uniform(0.08, 0.25) * sr)))
            voiced.append(False)
    edges = np.array([0, *bounds], dtype=np.int64)
    edges[-1] = n
    seg_voiced = np.array([False, *voiced])

    # amplitude envelope: raised cosine per voiced syllable, zero in pauses
    env = np.zeros(n)
    burst = np.zeros(n)
    for is_voiced, start, stop in zip(seg_voiced, edges[:-1], edges[1:], strict=True):
        length = stop - start
        if not is_voiced or length < 4:
            continue
        env[start:stop] = np.sin(np.linspace(0.0, np.pi, length)) ** 0.6 * rng.uniform(0.5, 1.0)
        if rng.random() < 0.6:  # consonant onset: short noise burst before the vowel
            blen = min(length, int(rng.uniform(0.02, 0.07) * sr))
            burst[start : start + blen] = np.hanning(2 * blen)[blen:] * rng.uniform(0.2, 0.6)

    # --- source: glottal harmonics with a moving f0 ------------------------------------------
    f0_base = rng.uniform(90.0, 230.0)
    f0 = (
        f0_base
        * (1.0 - 0.15 * t / max(t[-1], 1e-9))  # declination
        * (1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t + rng.uniform(0, 2 * np.pi)))
    )
    f0 *= np.exp(0.01 * np.cumsum(rng.standard_normal(n)) / np.sqrt(sr))  # slow jitter
    phase = 2.0 * np.pi * np.cumsum(f0) / sr
    nyquist = sr / 2.0
    n_harm = int(min(nyquist, 4500.0) // f0.min())
    k = np.arange(1, n_harm + 1)[:, None]  # (K, 1)
    harm_freq = k * f0[None, :]  # (K, n)
    tilt = k**-1.1  # glottal spectral tilt

    # --- filter: formant trajectories gliding between vowel targets ----------------------------
    names = list(VOWELS)
    targets = np.array([VOWELS[names[i]] for i in rng.integers(0, len(names), len(edges) - 1)])
    targets *= rng.uniform(0.9, 1.15)  # vocal-tract length
    glide = int(0.06 * sr)
    formants = [_smooth_steps(targets[:, j], edges, n, glide) for j in range(3)]
    gain = np.ones_like(harm_freq)
    for j, centre in enumerate([*formants, np.full(n, _F4)]):
        gain *= _resonance(harm_freq, centre[None, :], _BANDWIDTHS[j])
    gain *= harm_freq < min(nyquist * 0.95, 5000.0)  # band-limit (no aliasing)
    voiced_wave = (tilt * gain * np.sin(k * phase[None, :])).sum(axis=0)
    voiced_wave /= max(np.abs(voiced_wave).max(), 1e-9)

    # --- noise: fricative bursts (high-passed) and breath --------------------------------------
    noise = rng.standard_normal(n)
    hp_noise = np.diff(noise, prepend=0.0) / 2.0
    signal = env * voiced_wave + burst * hp_noise * 0.5 + 0.01 * env * noise + 1e-4 * noise
    signal *= rng.uniform(0.3, 0.9) / max(np.abs(signal).max(), 1e-9)
    return signal.astype(np.float32)
