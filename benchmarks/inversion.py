"""Mel inversion: specinv_lightning vs torchaudio vs librosa, side by side in one run.

Same clips, same mel transform (the Tacotron2 preset: 22.05 kHz, n_fft 1024, hop 256, 80 slaney
mels up to 8 kHz, magnitude mel, centred reflect STFT - a transform all three libraries can express
exactly), same number of Griffin-Lim iterations (32, momentum 0.99, random initial phase).

Second table (``--quality``, on by default): mel consistency after 0, 4, 8, 16 and 32 iterations
for each initial phase (``random``, ``zeros``, ``pghi-fast`` and the default ``pghi``), and the seconds each
needs to reach torchaudio's 32-iteration mel consistency, in the same run.

Reports the median wall time over repeats and the quality of the output:
- ``mel SC``: spectral convergence (dB) of the output's mel against the input mel, in the linear
  mel domain (how consistent the audio is with what the model predicted);
- ``mag SC``: spectral convergence (dB) of the output's STFT magnitude against the true magnitude.

Usage::

    python benchmarks/inversion.py                 # CPU (and CUDA when present), batch 1 and 16
    python benchmarks/inversion.py --repeats 5 --devices cpu --batches 16

torchaudio and librosa rows appear when those packages are installed.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import compress, stft

ASSET = Path(__file__).resolve().parents[1] / "tests" / "assets" / "arctic_a0007.wav"
SECONDS = 3.0
N_ITER = 32


def make_clips(sample_rate: int, batch: int, seconds: float = SECONDS) -> torch.Tensor:
    """``batch`` clips of ``seconds``: real speech at several offsets and synthetic music-like tones."""
    n = int(seconds * sample_rate)
    speech, sr = sf.read(ASSET, dtype="float32")
    speech_t = torch.from_numpy(speech)[None, None]
    speech_t = torch.nn.functional.interpolate(
        speech_t, scale_factor=sample_rate / sr, mode="linear"
    )
    speech_t = speech_t[0, 0]
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(n) / sample_rate
    clips = []
    for i in range(batch):
        if i % 2 == 0:  # speech, different offsets
            offset = (i * 3001) % max(1, speech_t.numel() - n)
            clip = torch.roll(speech_t, -offset)[:n]
            if clip.numel() < n:
                clip = torch.nn.functional.pad(clip, (0, n - clip.numel()))
        else:  # a few decaying harmonic notes (music-like)
            clip = torch.zeros(n)
            for k in range(4):
                f0 = 110.0 * 2 ** (float(torch.randint(0, 36, (1,), generator=gen)) / 12)
                start = int(k * n / 4)
                env = torch.exp(-3.0 * (t[: n - start])) * 0.2
                note = sum(
                    torch.sin(2 * math.pi * f0 * h * t[: n - start]) / h
                    for h in range(1, 8)
                    if f0 * h < sample_rate / 2
                )
                clip[start:] += env * note
        clips.append(clip / clip.abs().max().clamp(min=1e-6) * 0.5)
    return torch.stack(clips)


def sc_db(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Mean over items of 20 log10(||pred - target||_F / ||target||_F)."""
    num = torch.linalg.vector_norm(pred - target, dim=(-2, -1))
    den = torch.linalg.vector_norm(target, dim=(-2, -1))
    return float((20 * torch.log10(num / den)).mean())


def timed_interleaved(
    fns: dict[str, Callable[[], torch.Tensor]], repeats: dict[str, int], device: str
) -> dict[str, tuple[float, torch.Tensor]]:
    """Median seconds per method, methods interleaved round by round.

    Interleaving keeps the ratios fair when the machine's speed drifts (shared or throttled CPUs).
    """
    outputs = {name: fn() for name, fn in fns.items()}  # warm-up (and compilation of fused kernels)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for round_ in range(max(repeats.values())):
        for name, fn in fns.items():
            if round_ >= repeats[name]:
                continue
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[name] = fn()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]), outputs[name]) for name in fns}


def methods(cfg: MelConfig, mel: torch.Tensor, lin: torch.Tensor, n: int, device: str) -> dict:
    """name -> zero-argument function returning waveforms (B, n) on CPU."""
    out: dict[str, Callable[[], torch.Tensor]] = {}
    for name, kwargs in (
        ("specinv (default: mel-consistent FGLA, pghi init)", {}),
        ("specinv init='pghi-fast'", {"init": "pghi-fast"}),
        ("specinv init='random'", {"init": "random"}),
        ("specinv mel_consistent=False", {"mel_consistent": False}),
        ("specinv algorithm='agla'", {"algorithm": "agla"}),
        ("specinv magnitude='nnls'", {"magnitude": "nnls"}),
    ):
        inv = MelInverter(cfg, n_iter=N_ITER, **kwargs).to(device)
        out[name] = lambda inv=inv: inv(mel, length=n)
    try:
        import torchaudio

        inv_mel = torchaudio.transforms.InverseMelScale(
            n_stft=cfg.n_freqs,
            n_mels=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            f_min=cfg.f_min,
            f_max=cfg.f_max,
            norm=cfg.norm,
            mel_scale=cfg.mel_scale,
        ).to(device)
        gl = torchaudio.transforms.GriffinLim(
            n_fft=cfg.n_fft,
            n_iter=N_ITER,
            win_length=cfg.win_length,
            hop_length=cfg.hop_length,
            power=cfg.power,
            momentum=0.99,
            length=n,
        ).to(device)
        out["torchaudio InverseMelScale + GriffinLim"] = lambda: gl(inv_mel(lin))
    except ImportError:
        pass
    if device == "cpu":
        try:
            import librosa

            lin_np = lin.cpu().numpy()

            def run_librosa() -> torch.Tensor:
                wav = librosa.feature.inverse.mel_to_audio(
                    lin_np,
                    sr=cfg.sample_rate,
                    n_fft=cfg.n_fft,
                    hop_length=cfg.hop_length,
                    win_length=cfg.win_length,
                    center=cfg.center,
                    pad_mode=cfg.pad_mode,
                    power=cfg.power,
                    n_iter=N_ITER,
                    length=n,
                    fmin=cfg.f_min,
                    fmax=cfg.f_max,
                    htk=cfg.mel_scale == "htk",
                    norm=cfg.norm,
                )
                return torch.from_numpy(np.ascontiguousarray(wav))

            out["librosa mel_to_audio"] = run_librosa
        except ImportError:
            pass
    return out


def run(devices: list[str], batches: list[int], repeats: int) -> list[dict]:
    cfg = MelConfig.from_preset("tacotron2")
    rows = []
    for device in devices:
        for batch in batches:
            clips = make_clips(cfg.sample_rate, batch)
            n = clips.shape[-1]
            ms = MelSpectrogram(cfg)
            lin = ms.linear(clips)
            mel = compress(lin, cfg)
            true_mag = stft(clips, cfg).abs()
            fns = methods(cfg, mel.to(device), lin.to(device), n, device)
            reps = {
                name: (1 if name.startswith("librosa") and batch > 1 else repeats) for name in fns
            }
            with torch.inference_mode():
                results = timed_interleaved(fns, reps, device)
            for name, (seconds, wav) in results.items():
                wav = wav.detach().float().cpu()[..., :n]
                rows.append(
                    dict(
                        device=device,
                        batch=batch,
                        method=name,
                        seconds=seconds,
                        mel_sc=sc_db(ms.linear(wav), lin),
                        mag_sc=sc_db(stft(wav, cfg).abs(), true_mag),
                    )
                )
                print(f"  {device} B={batch} {name}: {seconds:.3f}s", flush=True)
    return rows


QUALITY_ITERS = (0, 4, 8, 16, 32)
SEARCH_ITERS = (1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32)
INITS = ("random", "zeros", "pghi-fast", "pghi")


def quality(device: str, batch: int, repeats: int, target_sc: float | None) -> list[dict]:
    """Mel SC and time of the default inverter per initial phase and iteration count; with
    ``target_sc`` (torchaudio's 32-iteration mel SC) also the fewest iterations that reach it."""
    cfg = MelConfig.from_preset("tacotron2")
    clips = make_clips(cfg.sample_rate, batch)
    n = clips.shape[-1]
    ms = MelSpectrogram(cfg)
    lin = ms.linear(clips)
    mel = compress(lin, cfg).to(device)
    counts = sorted(set(QUALITY_ITERS) | (set(SEARCH_ITERS) if target_sc is not None else set()))
    rows = []
    for init in INITS:
        for n_iter in counts:
            inv = MelInverter(cfg, n_iter=n_iter, init=init).to(device)
            with torch.inference_mode():
                seconds, wav = timed_interleaved(
                    {"x": lambda inv=inv: inv(mel, length=n)}, {"x": repeats}, device
                )["x"]
            mel_sc = sc_db(ms.linear(wav.detach().float().cpu()[..., :n]), lin)
            rows.append(dict(init=init, n_iter=n_iter, seconds=seconds, mel_sc=mel_sc))
            print(f"  quality {device} B={batch} init={init} n_iter={n_iter}: {mel_sc:.2f} dB")
    return rows


def quality_table(rows: list[dict], torchaudio: dict | None) -> str:
    head = " | ".join(f"{k} it" for k in QUALITY_ITERS)
    lines = [f"| init | {head} | s at 32 it |", "|---" * (len(QUALITY_ITERS) + 2) + "|"]
    for init in INITS:
        by_n = {r["n_iter"]: r for r in rows if r["init"] == init}
        cells = " | ".join(f"{by_n[k]['mel_sc']:.2f}" for k in QUALITY_ITERS)
        lines.append(f"| {init} | {cells} | {by_n[32]['seconds']:.3f} |")
    if torchaudio is None:
        return "\n".join(lines)
    target, ta_s = torchaudio["mel_sc"], torchaudio["seconds"]
    lines += [
        "",
        f"Time to reach torchaudio's 32-iteration mel SC ({target:.2f} dB, {ta_s:.3f} s):",
        "",
        "| init | iterations | seconds | speed vs torchaudio |",
        "|---|---|---|---|",
    ]
    for init in INITS:
        hits = sorted((r for r in rows if r["init"] == init and r["mel_sc"] <= target),
                      key=lambda r: r["n_iter"])  # fmt: skip
        if hits:
            hit = hits[0]
            lines.append(f"| {init} | {hit['n_iter']} | {hit['seconds']:.3f} |"
                         f" {ta_s / hit['seconds']:.1f}x |")  # fmt: skip
        else:
            lines.append(f"| {init} | > 32 | - | - |")
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = [
        "| device | batch | method | median s | speed vs torchaudio | speed vs librosa | mel SC dB | mag SC dB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        peers = {
            r["method"].split()[0]: r["seconds"]
            for r in rows
            if r["device"] == row["device"] and r["batch"] == row["batch"]
        }
        ta = peers.get("torchaudio")
        lr = peers.get("librosa")
        vs_ta = f"{ta / row['seconds']:.2f}x" if ta else "-"
        vs_lr = f"{lr / row['seconds']:.1f}x" if lr else "-"
        lines.append(
            f"| {row['device']} | {row['batch']} x {SECONDS:g} s | {row['method']} |"
            f" {row['seconds']:.3f} | {vs_ta} | {vs_lr} | {row['mel_sc']:.2f} | {row['mag_sc']:.2f} |"
        )
    return "\n".join(lines)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if torch.cuda.is_available():
        desc += f", GPU {torch.cuda.get_device_name()}"
    return desc


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--devices", nargs="+", default=None, help="cpu and/or cuda (default: all present)"
    )
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--no-quality", action="store_true", help="skip the quality-vs-iterations table"
    )
    args = parser.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    rows = run(devices, args.batches, args.repeats)
    print(f"\nMachine: {machine()}; {N_ITER} iterations, clips of {SECONDS:g} s at 22.05 kHz\n")
    print(table(rows))
    if args.no_quality:
        return
    for device in devices:
        batch = max(args.batches)
        ta = next((r for r in rows if r["device"] == device and r["batch"] == batch
                   and r["method"].startswith("torchaudio")), None)  # fmt: skip
        q = quality(device, batch, max(1, args.repeats // 2), None if ta is None else ta["mel_sc"])
        print(f"\nMel SC (dB) by initial phase and iterations, {device}, batch {batch}:\n")
        print(quality_table(q, ta))


if __name__ == "__main__":
    main()
