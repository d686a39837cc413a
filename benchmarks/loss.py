"""Time and peak memory of WaveformReconstructionLoss forward + backward vs. n_iter and checkpointing.

Usage::

    python benchmarks/loss.py                       # CPU (and CUDA when present), Markdown table
    python benchmarks/loss.py --device cpu --n-iter 4 16 32 --repeats 3

Memory:

- CUDA: ``torch.cuda.max_memory_allocated`` during one forward + backward, minus the memory
  allocated just before it (the step's own peak: activations kept for backward + temporaries).
- CPU: every configuration runs in a fresh child process; the step's peak is
  ``ru_maxrss`` (peak RSS, from ``resource.getrusage``) after one forward + backward minus the RSS
  just before it; the absolute peak RSS of the process (Python, torch and the inputs included) is
  reported too.

Time: median wall seconds of ``--repeats`` forward + backward steps after the measured step and
two more warm-up steps (on CPU the first steps of a process are dominated by page faults of fresh
allocations).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "tests" / "assets" / "arctic_a0007.wav"
WARMUP = 2


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def _inputs(
    batch: int, seconds: float, preset: str, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    from specinv_lightning import MelConfig, MelSpectrogram

    cfg = MelConfig.from_preset(preset)
    n = int(seconds * cfg.sample_rate)
    gen = torch.Generator().manual_seed(0)
    try:  # real speech (16 kHz clip played at the preset's rate), tiled to the batch
        import soundfile as sf

        data, _ = sf.read(SPEECH, dtype="float32")
        speech = torch.from_numpy(data)
        reps = (batch * n) // speech.numel() + 1
        wave = speech.repeat(reps)[: batch * n].reshape(batch, n)
    except Exception:  # noqa: BLE001 - the benchmark still runs without the asset
        wave = 0.1 * torch.randn(batch, n, generator=gen)
    wave = wave.to(device)
    mel = MelSpectrogram(cfg).to(device)(wave)
    mel = mel + 0.3 * torch.randn(mel.shape, generator=gen).to(device)
    return mel, wave


def run_one(
    n_iter: int,
    checkpoint: bool,
    batch: int,
    seconds: float,
    preset: str,
    device: str,
    repeats: int,
) -> dict:
    """One configuration in this process: step memory (first step) and median time."""
    from specinv_lightning import WaveformReconstructionLoss

    torch.manual_seed(0)
    mel0, wave = _inputs(batch, seconds, preset, device)
    # the settings the README table was measured with (before the defaults moved to
    # init="pghi", detach_phase=True, reference="inversion"): full phase-path backward
    loss_fn = WaveformReconstructionLoss(
        preset,
        n_iter=n_iter,
        checkpoint=checkpoint,
        init="random",
        detach_phase=False,
        reference="target",
    ).to(device)

    finite = []

    def step() -> None:
        mel = mel0.clone().requires_grad_()
        loss = loss_fn(mel, wave)
        loss.backward()
        finite.append(bool(torch.isfinite(mel.grad).all()))

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        torch.cuda.synchronize()
        step_peak = torch.cuda.max_memory_allocated() - before
        abs_peak = torch.cuda.max_memory_allocated()
    else:
        before = _rss_bytes()
        step()
        abs_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        step_peak = abs_peak - before
    for _ in range(WARMUP):  # first-touch page faults of fresh allocations dominate early steps
        step()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return {
        "n_iter": n_iter,
        "checkpoint": checkpoint,
        "device": device,
        "seconds": statistics.median(times),
        "step_peak_mib": step_peak / 2**20,
        "abs_peak_mib": abs_peak / 2**20,
        "grad_finite": all(finite),
    }


def _child(args: argparse.Namespace, n_iter: int, checkpoint: bool) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        json.dumps([n_iter, checkpoint]),
        "--batch",
        str(args.batch),
        "--seconds",
        str(args.seconds),
        "--preset",
        args.preset,
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    lines = [
        "| device | checkpoint | n_iter | time (s) | time / n_iter=4 | step peak (MiB) | step peak / n_iter=4 | process peak (MiB) | grads finite |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        base = next(
            (
                r
                for r in rows
                if r["n_iter"] == 4
                and r["checkpoint"] == row["checkpoint"]
                and r["device"] == row["device"]
            ),
            None,
        )
        t_ratio = f"{row['seconds'] / base['seconds']:.2f}x" if base else "-"
        m_ratio = f"{row['step_peak_mib'] / base['step_peak_mib']:.2f}x" if base else "-"
        lines.append(
            f"| {row['device']} | {'yes' if row['checkpoint'] else 'no'} | {row['n_iter']} |"
            f" {row['seconds']:.3f} | {t_ratio} | {row['step_peak_mib']:.0f} | {m_ratio} |"
            f" {row['abs_peak_mib']:.0f} | {'yes' if row['grad_finite'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--n-iter", type=int, nargs="+", default=[4, 16, 32, 64])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--preset", default="hifigan")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.child:
        n_iter, checkpoint = json.loads(args.child)
        row = run_one(
            n_iter, checkpoint, args.batch, args.seconds, args.preset, "cpu", args.repeats
        )
        print(json.dumps(row))
        return

    devices = []
    if args.device in ("cpu", "all"):
        devices.append("cpu")
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append("cuda")
    rows = []
    for device in devices:
        for checkpoint in (False, True):
            for n_iter in args.n_iter:
                if device == "cpu":
                    row = _child(args, n_iter, checkpoint)
                else:
                    row = run_one(
                        n_iter,
                        checkpoint,
                        args.batch,
                        args.seconds,
                        args.preset,
                        device,
                        args.repeats,
                    )
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    if "cuda" in devices:
        machine += f", {torch.cuda.get_device_name()}"
    print(
        f"WaveformReconstructionLoss forward + backward, preset {args.preset}, batch {args.batch} x"
        f" {args.seconds:g} s, default MultiResolutionSTFTLoss, torch {torch.__version__}"
        f" ({machine})\n"
    )
    print(_table(rows))


if __name__ == "__main__":
    main()
