"""Where the default initial phase falls short of PGHI of the true magnitude, per clip.

``init="pghi"`` sees only the mel. Its phase is PGHI of one of four candidates (the pinv
magnitude, or the mel's peak-model fit with its moment or, sharpened, its centroid frequency,
or its harmonic fit with the centroid; chosen per item by a probe); ``initial_phase.py``
compares it with PGHI of the clip's *true* STFT magnitude, which no mel-based init sees. This script asks where the difference lies. For
each preset and clip it prints mel consistency (dB, lower is better) after 8 iterations of the
default inverter from:

- ``mel``: the best of the four mel-based phases at 8 iterations (what the probe aims at);
- ``true``: PGHI of the true magnitude;
- ``true < f``: the true magnitude's PGHI phase below ``f`` Hz, the ``mel`` phase above it;
- ``fit, true freq``: PGHI of the (sharpened) peak fit with each bin's true instantaneous
  frequency (from the phase advance of the true STFT) in place of the fitted one;
- ``true, fit freq``: PGHI of the true magnitude with the sharpened peak fit's ``centroid``
  frequencies.

Usage::

    python benchmarks/pghi_gap.py                                    # styletts2 and hifigan
    python benchmarks/pghi_gap.py --presets librosa --sets speech
"""

from __future__ import annotations

import argparse
import math

import torch
from initial_phase import SETS, SR, consistency, load_clips, print_header

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import pghi_phase, stft
from specinv_lightning.functional.initial import _pghi_candidates
from specinv_lightning.functional.magnitude import root
from specinv_lightning.functional.peaks import peak_fit

CUTS = (500, 1000, 2000, 4000)


def true_frequency(spec: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Per bin and frame, the frequency in bins at which the true STFT's phase advances."""
    advance = 2 * math.pi * cfg.hop_length / cfg.n_fft
    bins = torch.arange(spec.shape[-2], dtype=torch.float64)[:, None]
    step = torch.angle(spec[..., 1:] * spec[..., :-1].conj()) - advance * bins
    step = torch.remainder(step + math.pi, 2 * math.pi) - math.pi
    freq = bins + step / advance
    return torch.cat([freq, freq[..., -1:]], dim=-1)


def row(cfg: MelConfig, clip) -> list[float]:
    x = torch.tensor(clip, dtype=torch.float32)[None]
    mel = MelSpectrogram(cfg)(x)
    inverter = MelInverter(cfg, n_iter=8)
    lin = inverter._decompress(mel)
    lin = lin / lin.amax(dim=(-2, -1), keepdim=True)
    spec = stft(x.double(), cfg)[..., : mel.shape[-1]]
    true = spec.abs().float()
    model = inverter._peaks_in(lin)
    candidates = _pghi_candidates(inverter.magnitude_from_mel(mel), lin, cfg, model)
    peak = peak_fit(lin, model)
    fit, freq = root(peak.spectrum, cfg.power), peak.centroid
    scores = [consistency(cfg, mel, 8, p) for p in candidates]
    phase = candidates[scores.index(min(scores))]
    oracle = pghi_phase(true, cfg)
    hz = torch.arange(phase.shape[-2]) * cfg.sample_rate / cfg.n_fft
    spliced = [
        consistency(cfg, mel, 8, torch.where((hz < cut)[:, None], oracle, phase)) for cut in CUTS
    ]
    return [
        min(scores),
        consistency(cfg, mel, 8, oracle),
        *spliced,
        consistency(cfg, mel, 8, pghi_phase(fit, cfg, frequency=true_frequency(spec, cfg).float())),
        consistency(cfg, mel, 8, pghi_phase(true, cfg, frequency=freq)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["styletts2", "hifigan"])
    parser.add_argument("--sets", nargs="+", default=["speech", "music"], choices=list(SETS))
    args = parser.parse_args()
    clips = load_clips(args.sets)
    columns = ["preset", "clip", "mel", "true", *(f"true < {c}" for c in CUTS)]
    columns += ["fit, true freq", "true, fit freq"]
    print_header(columns)
    for preset in args.presets:
        cfg = MelConfig.from_preset(preset, sample_rate=SR)
        for name, clip in clips.items():
            cells = " | ".join(f"{v:.1f}" for v in row(cfg, clip))
            print(f"| {preset} | {name} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
