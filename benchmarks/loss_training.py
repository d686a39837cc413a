"""A/B of the example's training with and without ``WaveformReconstructionLoss``.

Trains ``examples/train.py`` (``configs/example.yaml``) once per seed for the baseline (L1 + KL
only, ``--model.waveform_loss_weight 0``) and for each variant, each run in a fresh process, and
prints a Markdown table of the validation scores after the last step (means +- sample standard
deviations over seeds) and the seconds per training step relative to the baseline.

Scores:

- ``SC`` / ``LSD``: the ``InversionCallback``'s validation spectral convergence and log-spectral
  distance (dB) of the predicted mels inverted with the example's 32 iterations, at the last
  validation (every 100 steps and at the end).
- ``SC@64`` / ``LSD@64``: the same validation crops, scored offline with a 64-iteration
  ``MelInverter`` (a stronger vocoder than the one the loss was trained through).
- ``s/step``: median wall seconds of a training step (forward, backward, optimiser step; no
  validation), measured inside the run.

Usage::

    python benchmarks/loss_training.py                             # baseline x5 vs overlay x3
    python benchmarks/loss_training.py --steps 2000 --seeds 3 --baseline-seeds 0
    python benchmarks/loss_training.py --data-dir /path/to/wavs --weights 0.3 1.0
    python benchmarks/loss_training.py --overlay none --weights 0.01   # the loss's bare defaults

Each variant is ``configs/example.yaml`` + ``--overlay`` (default ``configs/waveform_loss.yaml``)
with ``--model.waveform_loss_weight`` set to each of ``--weights`` (default: the overlay's own).
A run counts as diverged when its last training loss or a score is not finite or the
waveform term ends above 10x its smallest value.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "configs" / "example.yaml"
OVERLAY = ROOT / "configs" / "waveform_loss.yaml"


def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One training run in this process; returns its scores."""
    sys.path.insert(0, str(ROOT))
    import torch
    from lightning.pytorch import Callback

    from examples.train import ExampleCLI
    from specinv_lightning import MelInverter
    from specinv_lightning.functional.metrics import (
        log_spectral_distance,
        spectral_convergence,
    )
    from specinv_lightning.functional.stft import spectrogram_magnitude, stft

    class _Timer(Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.wave: list[float] = []
            self.loss: list[float] = []
            self._t = 0.0

        def on_train_batch_start(self, *args: Any) -> None:
            self._t = time.perf_counter()

        def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, *args: Any) -> None:
            self.times.append(time.perf_counter() - self._t)
            self.loss.append(float(outputs["loss"]))
            w = trainer.callback_metrics.get("train/waveform")
            if w is not None:
                self.wave.append(float(w))

    args = [
        "-c",
        str(EXAMPLE),
        *(["-c", spec["overlay"]] if spec["overlay"] else []),
        f"--seed_everything={spec['seed']}",
        f"--trainer.max_steps={spec['steps']}",
        f"--trainer.default_root_dir={spec['root']}",
        f"--inversion.save_dir={spec['root']}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.logger=false",
        "--trainer.enable_checkpointing=false",
        *(["--data.data_dir", spec["data_dir"]] if spec["data_dir"] else []),
        *([f"--model.waveform_loss_weight={spec['weight']}"] if spec["weight"] is not None else []),
        *spec["extra"],
    ]
    cli = ExampleCLI(
        __import__("examples.model", fromlist=["MelVAE"]).MelVAE,
        __import__("examples.data", fromlist=["AudioDataModule"]).AudioDataModule,
        args=args,
        run=False,
        save_config_kwargs={"overwrite": True},
    )
    timer = _Timer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, cli.datamodule)
    metrics = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    model, dm = cli.model.eval(), cli.datamodule
    inverter = MelInverter(model.config, n_iter=64)
    sc, lsd = [], []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            _, mel, lengths = model._losses(batch)
            wave = inverter(mel, length=batch["audio"].shape[-1])
            frames = model.config.valid_frames(lengths)
            p = spectrogram_magnitude(stft(wave, model.config, window=inverter.window))
            t = spectrogram_magnitude(stft(batch["audio"], model.config, window=inverter.window))
            frames = frames.clamp(max=p.shape[-1])
            sc.append(spectral_convergence(p, t, lengths=frames, reduction="none"))
            lsd.append(log_spectral_distance(p, t, lengths=frames, reduction="none"))
    wave_terms = [w for w in timer.wave if math.isfinite(w)]
    diverged = not math.isfinite(timer.loss[-1]) if timer.loss else True
    if wave_terms and len(wave_terms) == len(timer.wave):
        tail = statistics.fmean(wave_terms[-10:])
        diverged = diverged or tail > 10 * min(wave_terms)
    elif timer.wave:
        diverged = True
    return {
        "sc": metrics.get("val/spectral_convergence_db", math.nan),
        "lsd": metrics.get("val/log_spectral_distance_db", math.nan),
        "sc64": float(torch.cat(sc).mean()),
        "lsd64": float(torch.cat(lsd).mean()),
        "s_step": statistics.median(timer.times[5:] or timer.times),
        "final_loss": timer.loss[-1] if timer.loss else math.nan,
        "wave_first": wave_terms[0] if wave_terms else None,
        "wave_min": min(wave_terms) if wave_terms else None,
        "wave_last": wave_terms[-1] if wave_terms else None,
        "diverged": diverged,
    }


def _run(spec: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        spec = {**spec, "root": tmp}
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stdout + proc.stderr)[-2000:]
    return {"error": tail, "diverged": True}


def _fmt(values: list[float], digits: int) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def _table(rows: list[tuple[str, list[dict[str, Any]]]]) -> str:
    base = [r["s_step"] for r in rows[0][1] if "s_step" in r] if rows else []
    base_step = statistics.fmean(base) if base else math.nan
    lines = [
        "| variant | seeds | s/step | x baseline | val SC (dB) | val LSD (dB) | SC@64 | LSD@64 (dB) | diverged |",
        "|---|---:|---:|---:|---|---|---|---|---:|",
    ]
    for name, results in rows:
        ok = [r for r in results if "s_step" in r]
        step = statistics.fmean([r["s_step"] for r in ok]) if ok else math.nan
        lines.append(
            f"| {name} | {len(results)} | {step:.3f} | {step / base_step:.2f}x"
            f" | {_fmt([r['sc'] for r in ok], 3)} | {_fmt([r['lsd'] for r in ok], 2)}"
            f" | {_fmt([r['sc64'] for r in ok], 3)} | {_fmt([r['lsd64'] for r in ok], 2)}"
            f" | {sum(bool(r['diverged']) for r in results)}/{len(results)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant")
    parser.add_argument("--baseline-seeds", type=int, default=5, help="0 skips the baseline")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--weights", type=float, nargs="*", default=None)
    parser.add_argument("--overlay", default=str(OVERLAY), help="'none' for no overlay")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None, help="also write every run's result here")
    parser.add_argument(
        "extra", nargs="*", help="further CLI arguments for every variant run (after --)"
    )
    args = parser.parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(_worker(json.loads(args.worker))), flush=True)
        return
    if args.steps < 1 or args.seeds < 1 or args.baseline_seeds < 0:
        raise ValueError("--steps/--seeds: expected >= 1 (--baseline-seeds >= 0)")
    overlay = None if args.overlay == "none" else str(Path(args.overlay).resolve())
    common = {"steps": args.steps, "data_dir": args.data_dir}
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    plan: list[tuple[str, list[dict[str, Any]]]] = []
    if args.baseline_seeds:
        base_seeds = range(args.first_seed, args.first_seed + args.baseline_seeds)
        specs = [
            {**common, "seed": s, "overlay": None, "weight": 0.0, "extra": []} for s in base_seeds
        ]
        plan.append(("baseline (weight 0)", specs))
    name = Path(overlay).name if overlay else "no overlay"
    for w in args.weights if args.weights else [None]:
        label = f"{name}" + ("" if w is None else f", weight {w:g}")
        specs = [
            {**common, "seed": s, "overlay": overlay, "weight": w, "extra": args.extra}
            for s in seeds
        ]
        plan.append((label, specs))
    rows: list[tuple[str, list[dict[str, Any]]]] = []
    # interleave variants seed by seed so that drifting machine load hits all of them alike
    results: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(plan))}
    for k in range(max(len(specs) for _, specs in plan)):
        for i, (label, specs) in enumerate(plan):
            if k < len(specs):
                res = _run(specs[k])
                results[i].append(res)
                print(f"{label} seed {specs[k]['seed']}: {json.dumps(res)[:400]}", flush=True)
    rows = [(label, results[i]) for i, (label, _) in enumerate(plan)]
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(f"\n{args.steps} steps, data: {args.data_dir or 'embedded synthetic speech'}\n")
    print(_table(rows))


if __name__ == "__main__":
    main()
