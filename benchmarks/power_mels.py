"""Power-spectrum mels: the additive mel step against the multiplicative one, per clip.

Phase retrieval re-targets each iteration's magnitude onto the input mel. For ``power=2`` mels
the engine rescales ``|t|^2`` by ``RESCALE_SWEEPS`` multiplicative steps
(:func:`~specinv_lightning.functional.rescale_onto_mel`); before, it took the additive step
``clamp(|t|^2 + P (M - F |t|^2), 0)`` that power-1 mels still take, which clips much of its
correction away on power spectra. This script runs both (``RESCALE_SWEEPS = 0`` is the additive
step) on the clips of ``initial_phase.py`` and prints, per preset and clip, mel consistency (dB,
lower is better) at 8 / 32 iterations for ``init="random"`` (mean over ``--seeds``) and the
default ``init="pghi"``, the magnitude's spectral convergence against the clip's true STFT
magnitude after 32 default iterations, and the time of a 32-iteration batch of 16 clips of 3 s.

Usage::

    python benchmarks/power_mels.py                        # librosa, styletts2, torchaudio
    python benchmarks/power_mels.py --presets librosa --sets speech
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
from initial_phase import SETS, SR, load_clips, print_header

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import _engine, mel_consistency, spectral_convergence, stft

MODES = {"additive": 0, "rescale": _engine.RESCALE_SWEEPS}


def invert(cfg: MelConfig, mel: torch.Tensor, n_iter: int, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        return MelInverter(cfg, n_iter=n_iter, **kwargs)(mel)


def row(cfg: MelConfig, clip: torch.Tensor, seeds: int) -> list[str]:
    mel = MelSpectrogram(cfg)(clip)
    true = stft(clip.double(), cfg).abs()
    cells = []
    for sweeps in MODES.values():
        _engine.RESCALE_SWEEPS = sweeps
        rand = [
            statistics.mean(
                float(mel_consistency(invert(cfg, mel, n, init="random", seed=s), mel, cfg))
                for s in range(seeds)
            )
            for n in (8, 32)
        ]
        waves = {n: invert(cfg, mel, n) for n in (8, 32)}
        pghi = [float(mel_consistency(waves[n], mel, cfg)) for n in (8, 32)]
        est = stft(waves[32].double(), cfg).abs()[..., : true.shape[-1]]
        mag = float(spectral_convergence(est, true[..., : est.shape[-1]], db=True))
        cells += [f"{rand[0]:.1f} / {rand[1]:.1f}", f"{pghi[0]:.1f} / {pghi[1]:.1f}", f"{mag:.1f}"]
    return cells


def timing(cfg: MelConfig, repeats: int) -> list[float]:
    gen = torch.Generator().manual_seed(0)
    mel = MelSpectrogram(cfg)(torch.randn(16, 3 * SR, generator=gen) * 0.1)
    out = []
    for sweeps in MODES.values():
        _engine.RESCALE_SWEEPS = sweeps
        runs = []
        for _ in range(repeats):
            start = time.perf_counter()
            invert(cfg, mel, 32)
            runs.append(time.perf_counter() - start)
        out.append(statistics.median(runs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["librosa", "styletts2", "torchaudio"])
    parser.add_argument("--sets", nargs="+", default=["speech", "music"], choices=list(SETS))
    parser.add_argument("--seeds", type=int, default=3, help="random-phase seeds averaged")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    args = parser.parse_args()
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    clips = load_clips(args.sets)
    head = ["random", "pghi (default)", "mag SC at 32"]
    columns = ["preset", "clip"] + [f"{h} ({m})" for m in MODES for h in head]
    print_header(columns)
    for preset in args.presets:
        cfg = MelConfig.from_preset(preset, sample_rate=SR)
        for name, clip in clips.items():
            cells = row(cfg, torch.tensor(clip, dtype=torch.float32)[None], args.seeds)
            print(f"| {preset} | {name} | " + " | ".join(cells) + " |", flush=True)
    print()
    for preset in args.presets:
        cfg = MelConfig.from_preset(preset, sample_rate=SR)
        add, rescale = timing(cfg, args.repeats)
        print(f"{preset}: 16 x 3 s, 32 iterations: additive {add:.2f} s, rescale {rescale:.2f} s "
              f"({rescale / add:.2f}x)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
