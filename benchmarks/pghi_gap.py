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

``--choice`` asks instead whether a better *choice* among the four candidates would meet issue
11's targets (at least 5 dB over random phases at 32 iterations, and 8 iterations at least as
good as 32 random ones). Per preset and clip it prints mel consistency at 8 / 32 iterations from
random phases (mean of ``--seeds``) and from each candidate (``pinv``, ``fit``, ``sharpened``,
``harmonic``), which one the default's probe took, the two targets for that pick and for the
best candidate chosen after the fact (the best at 32 for the gain, the best at 8 for ``8 vs
32``: a bound on any rule that picks among these four), and, for reference, 8 iterations from
the true STFT phase (what the mel allows when the start is right). A count of the rows that meet
both targets ends the table.

``--pitch`` (needs librosa) asks how much of the harmonic fit's shortfall on voices is its pitch:
per preset and clip, mel consistency at 8 / 32 iterations of the default, and of the default with
the harmonic fit given librosa's pYIN pitch of the true waveform (with the fit's own voicing, and
with pYIN's voicing too), and the share of the frames both call voiced where the fit's pitch is
within 1 % of pYIN's.

``--heap`` asks whether the *integration* is the limit: the package integrates PGHI's phase
gradients along spectral-peak paths (vectorised), PGHI proper (Prusa et al. 2017) in the order of
a heap, loudest coefficient first (sequential; :func:`heap_pghi` here, a reference in plain
Python, with ltfat's two tolerances ``1e-1`` and ``1e-10`` and random phases below the second).
Per preset and clip it prints mel consistency at 8 / 32 iterations from random phases, from PGHI
of the true magnitude integrated both ways, from the default, and from the heap-integrated PGHI of
each of the four mel-based candidates (the best at 8 iterations), with issue 11's two targets for
the last two; a summary per preset and clip set ends it.

Usage::

    python benchmarks/pghi_gap.py                                    # styletts2 and hifigan
    python benchmarks/pghi_gap.py --presets librosa --sets speech
    python benchmarks/pghi_gap.py --choice --presets hifigan styletts2 --sets chords low
    python benchmarks/pghi_gap.py --pitch --presets styletts2 --sets fresh
    python benchmarks/pghi_gap.py --heap --presets hifigan styletts2 --sets low chords
"""

from __future__ import annotations

import argparse
import heapq
import math

import numpy as np
import torch
from initial_phase import (
    SETS,
    SR,
    consistency,
    load_clips,
    print_header,
    random_figures,
    targets,
)

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import peaks, pghi_phase, stft
from specinv_lightning.functional.initial import _pghi_candidates, _pghi_starts
from specinv_lightning.functional.magnitude import root
from specinv_lightning.functional.peaks import PEAK_SHARPEN, peak_fit, peak_fits
from specinv_lightning.functional.pghi import (
    _gradients,
    _log_magnitude,
    _to_frame_start,
    _window_params,
)

CUTS = (500, 1000, 2000, 4000)


def true_frequency(spec: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Per bin and frame, the frequency in bins at which the true STFT's phase advances."""
    advance = 2 * math.pi * cfg.hop_length / cfg.n_fft
    bins = torch.arange(spec.shape[-2], dtype=torch.float64)[:, None]
    step = torch.angle(spec[..., 1:] * spec[..., :-1].conj()) - advance * bins
    step = torch.remainder(step + math.pi, 2 * math.pi) - math.pi
    freq = bins + step / advance
    return torch.cat([freq, freq[..., -1:]], dim=-1)


def scaled_mel(inverter: MelInverter, mel: torch.Tensor) -> torch.Tensor:
    """The linear mel scaled to a peak of 1, as the inverter scales each item before its init."""
    lin = inverter._decompress(mel)
    return lin / lin.amax(dim=(-2, -1), keepdim=True)


def peak_setup(
    cfg: MelConfig, mel: torch.Tensor
) -> tuple[MelInverter, torch.Tensor, peaks.PeakModel]:
    """The default inverter (8 iterations), its scaled linear mel and its peak model, as the
    init sees them."""
    inverter = MelInverter(cfg, n_iter=8)
    lin = scaled_mel(inverter, mel)
    return inverter, lin, inverter._peaks_in(lin)


def row(cfg: MelConfig, clip) -> list[float]:
    x = torch.tensor(clip, dtype=torch.float32)[None]
    mel = MelSpectrogram(cfg)(x)
    inverter, lin, model = peak_setup(cfg, mel)
    spec = stft(x.double(), cfg)[..., : mel.shape[-1]]
    true = spec.abs().float()
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


CANDIDATES = ("pinv", "fit", "sharpened", "harmonic")


def choice_row(cfg: MelConfig, clip, seeds: int) -> tuple[list[str], bool, bool]:
    """The ``--choice`` cells of one clip, and whether the probe's pick and the best candidate
    after the fact meet both targets."""
    x = torch.tensor(clip, dtype=torch.float32)[None]
    mel = MelSpectrogram(cfg)(x)
    inverter, lin, model = peak_setup(cfg, mel)
    candidates = _pghi_candidates(inverter.magnitude_from_mel(mel), lin, cfg, model)
    random = random_figures(cfg, mel, seeds)
    scores = [[consistency(cfg, mel, n, p.float()) for n in (8, 32)] for p in candidates]
    default = consistency(cfg, mel, 8)  # the probe's pick: the candidate with its figure
    pick = min(range(len(scores)), key=lambda i: abs(scores[i][0] - default))
    exact = abs(scores[pick][0] - default) < 0.01  # else the pick is a guess: marked "?"
    gain, early, by_pick = targets(random[1], scores[pick])
    best = [min(s[0] for s in scores), min(s[1] for s in scores)]  # best at 8, best at 32
    best_gain, best_early, by_best = targets(random[1], best)
    true = stft(x.double(), cfg)[..., : mel.shape[-1]].angle().float()
    cells = [" / ".join(f"{v:.1f}" for v in pair) for pair in (random, *scores)]
    cells += [
        CANDIDATES[pick] + ("" if exact else "?"),
        f"{gain:+.1f} / {early:+.1f}",
        f"{best_gain:+.1f} / {best_early:+.1f}",
    ]
    cells.append(f"{consistency(cfg, mel, 8, true):.1f}")
    return cells, by_pick, by_best


def choices(presets: list[str], clips: dict, seeds: int) -> None:
    """The ``--choice`` table and its count."""
    print_header(["preset", "clip", "random", *CANDIDATES, "pick",
                  "gain / 8 vs 32 (pick)", "gain / 8 vs 32 (best of four)", "true phase at 8"])  # fmt: skip
    met, rows = [0, 0], 0
    for preset in presets:
        cfg = MelConfig.from_preset(preset, sample_rate=SR)
        for name, clip in clips.items():
            cells, by_pick, by_best = choice_row(cfg, clip, seeds)
            met[0], met[1], rows = met[0] + by_pick, met[1] + by_best, rows + 1
            print(f"| {preset} | {name} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nBoth targets met on {met[0]} of {rows} with the probe's pick,"
          f" {met[1]} of {rows} with the best of four after the fact.")  # fmt: skip


def pitch_row(cfg: MelConfig, clip) -> list[str]:
    """The ``--pitch`` cells of one clip (the harmonic fit given pYIN's pitch)."""
    import librosa  # only here: pYIN

    x = torch.tensor(clip, dtype=torch.float32)[None]
    mel = MelSpectrogram(cfg)(x)
    f0, voiced, _ = librosa.pyin(clip, fmin=60, fmax=450, sr=SR, frame_length=2048,
                                 hop_length=cfg.hop_length)  # fmt: skip
    frames = mel.shape[-1]
    n = min(frames, len(f0))
    given = torch.zeros(frames, dtype=torch.float64)
    given[:n] = torch.from_numpy(f0[:n]).nan_to_num(0.0) * cfg.n_fft / SR
    given_voiced = torch.zeros(frames, dtype=torch.bool)
    given_voiced[:n] = torch.from_numpy(voiced[:n])
    own = peaks.harmonic_pitch

    def with_pitch(voicing: bool):
        def pitch(spectrum, model):  # pYIN's pitch where it has one, the fit's elsewhere
            fit_pitch, fit_voiced = own(spectrum, model)
            where = given_voiced.expand(fit_voiced.shape)
            fit_pitch = torch.where(where, given.to(fit_pitch.dtype), fit_pitch)
            return fit_pitch, where if voicing else fit_voiced

        return pitch

    cells = []
    for replacement in (own, with_pitch(False), with_pitch(True)):
        peaks.harmonic_pitch = replacement
        try:
            cells.append(" / ".join(f"{consistency(cfg, mel, it):.1f}" for it in (8, 32)))
        finally:
            peaks.harmonic_pitch = own
    _, lin, model = peak_setup(cfg, mel)
    pitch, fit_voiced = own(peak_fits(lin, model, (PEAK_SHARPEN,))[0].spectrum, model)
    both = fit_voiced[0, :n] & given_voiced[:n]
    error = (pitch[0, :n][both].double() / given[:n][both] - 1).abs()
    share = f"{100 * float((error < 0.01).double().mean()):.0f}%" if error.numel() else "-"
    cells.append(share)  # "-": no frame voiced by both
    return cells


def heap_pghi(
    magnitude: torch.Tensor,
    cfg: MelConfig,
    frequency: torch.Tensor | None = None,
    tols: tuple[float, ...] = (1e-1, 1e-10),
    seed: int = 0,
) -> torch.Tensor:
    """PGHI of one ``(F, T)`` magnitude integrated in heap order (Prusa et al. 2017), ``(F, T)``.

    The same gradients as the package's peak-path PGHI; only the order of integration differs.
    From the loudest coefficient not yet reached, each coefficient popped off the heap gives its
    four neighbours above the tolerance their phase (trapezoidal step of ``tgrad`` in time,
    ``fgrad`` in frequency) and pushes them. One pass per tolerance (relative to the maximum);
    the later passes restart from every coefficient already reached, as ltfat's ``pghi`` does.
    Coefficients below the last tolerance keep random phases.
    """
    gamma, centre = _window_params(cfg, None)
    logs = _log_magnitude(magnitude.detach().double().T.contiguous()[None])
    if frequency is not None:
        frequency = frequency.detach().double().T[None]
    tgrad, fgrad = (g[0].numpy() for g in _gradients(logs, cfg, gamma, frequency))
    logs = logs[0].numpy()
    phase = np.random.default_rng(seed).uniform(-math.pi, math.pi, size=logs.shape)
    done = np.zeros(logs.shape, dtype=bool)
    for tol in tols:
        todo = (logs > logs.max() + math.log(tol)) & ~done
        heap = [(-logs[n, k], n, k) for n, k in zip(*np.nonzero(done), strict=True)]
        heapq.heapify(heap)
        _spread(heap, phase, todo, done, logs, tgrad, fgrad)  # first from what is reached
        for start in np.argsort(-logs, axis=None):
            n, k = divmod(int(start), logs.shape[1])
            if not todo[n, k]:
                continue
            phase[n, k], todo[n, k], done[n, k] = 0.0, False, True
            heap.append((-logs[n, k], n, k))
            _spread(heap, phase, todo, done, logs, tgrad, fgrad)
    return _to_frame_start(torch.from_numpy(phase), centre, cfg.n_fft).T.float()


def _spread(heap, phase, todo, done, logs, tgrad, fgrad) -> None:
    """Pop the heap empty, giving each popped coefficient's unreached neighbours their phase."""
    frames, n_freqs = logs.shape
    while heap:
        _, n, k = heapq.heappop(heap)
        for m, j, step in (
            (n + 1, k, (tgrad[n, k] + tgrad[min(n + 1, frames - 1), k]) / 2),
            (n - 1, k, -(tgrad[n, k] + tgrad[max(n - 1, 0), k]) / 2),
            (n, k + 1, (fgrad[n, k] + fgrad[n, min(k + 1, n_freqs - 1)]) / 2),
            (n, k - 1, -(fgrad[n, k] + fgrad[n, max(k - 1, 0)]) / 2),
        ):
            if 0 <= m < frames and 0 <= j < n_freqs and todo[m, j]:
                phase[m, j] = phase[n, k] + step
                todo[m, j], done[m, j] = False, True
                heapq.heappush(heap, (-logs[m, j], m, j))


def heap_row(cfg: MelConfig, clip, seeds: int) -> tuple[list[str], list[bool], float]:
    """The ``--heap`` cells of one clip; which of true (path, heap), default, heap of the mel
    candidates meet both targets; and heap minus default at 8 iterations."""
    x = torch.tensor(clip, dtype=torch.float32)[None]
    mel = MelSpectrogram(cfg)(x)
    inverter, lin, model = peak_setup(cfg, mel)
    true = stft(x.double(), cfg)[..., : mel.shape[-1]].abs()[0]
    starts = _pghi_starts(inverter.magnitude_from_mel(mel), lin, cfg, model)

    def figures(phase=None):
        return [consistency(cfg, mel, n, None if phase is None else phase[None]) for n in (8, 32)]

    random = random_figures(cfg, mel, seeds)
    results = [figures(pghi_phase(true.float(), cfg)), figures(heap_pghi(true, cfg)), figures()]
    heap = [figures(heap_pghi(m[0], cfg, None if f is None else f[0])) for m, f in starts]
    results.append(min(heap, key=lambda v: v[0]))
    cells = [" / ".join(f"{v:.1f}" for v in pair) for pair in (random, *results)]
    checks = [targets(random[1], pair) for pair in results]
    cells += [f"{gain:+.1f} / {early:+.1f}" for gain, early, _ in checks[2:]]
    met = [ok for _, _, ok in checks]
    return cells, met + [met[2] or met[3]], results[3][0] - results[2][0]


HEAP_COUNTS = ("true, path", "true, heap", "default", "mel, heap", "default or mel, heap")


def heaps(presets: list[str], sets: list[str], seeds: int) -> None:
    """The ``--heap`` table and its summary per preset and clip set."""
    print_header(["preset", "clip", "random", "true, path", "true, heap", "default", "mel, heap",
                  "gain / 8 vs 32 (default)", "gain / 8 vs 32 (mel, heap)"])  # fmt: skip
    summary = []
    for preset in presets:
        cfg = MelConfig.from_preset(preset, sample_rate=SR)
        for name in sets:
            met, diffs = [0] * len(HEAP_COUNTS), []
            for clip_name, clip in SETS[name]().items():
                cells, flags, diff = heap_row(cfg, clip, seeds)
                met, diffs = [m + f for m, f in zip(met, flags, strict=True)], diffs + [diff]
                print(f"| {preset} | {clip_name} | " + " | ".join(cells) + " |", flush=True)
            if diffs:
                summary.append((preset, name, len(diffs), met, min(diffs), max(diffs)))
    print()
    print_header(["preset", "set", "clips", *(f"met: {c}" for c in HEAP_COUNTS),
                  "mel heap minus default at 8 (dB)"])  # fmt: skip
    for preset, name, count, met, low, high in summary:
        counts = " | ".join(str(m) for m in met)
        print(f"| {preset} | {name} | {count} | {counts} | {low:+.1f} .. {high:+.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--presets", nargs="+", default=["styletts2", "hifigan"])
    parser.add_argument("--sets", nargs="+", default=["speech", "music"], choices=list(SETS))
    parser.add_argument("--choice", action="store_true",
                        help="each candidate's figures and the best choice after the fact")  # fmt: skip
    parser.add_argument(
        "--seeds", type=int, default=5, help="random-phase seeds (--choice, --heap)"
    )
    parser.add_argument("--heap", action="store_true",
                        help="PGHI integrated in heap order (Prusa et al.) against peak paths")  # fmt: skip
    parser.add_argument("--pitch", action="store_true",
                        help="the harmonic fit given pYIN's pitch (needs librosa)")  # fmt: skip
    args = parser.parse_args()
    if args.heap:
        heaps(args.presets, args.sets, args.seeds)
        return
    clips = load_clips(args.sets)
    if args.pitch:
        print_header(["preset", "clip", "default", "pYIN pitch", "pYIN pitch and voicing",
                      "fit's pitch within 1 %"])  # fmt: skip
        for preset in args.presets:
            cfg = MelConfig.from_preset(preset, sample_rate=SR)
            for name, clip in clips.items():
                print(
                    f"| {preset} | {name} | " + " | ".join(pitch_row(cfg, clip)) + " |", flush=True
                )
        return
    if args.choice:
        choices(args.presets, clips, args.seeds)
        return
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
