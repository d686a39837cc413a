"""Cost of :class:`~specinv_lightning.InversionCallback` with its default settings.

Two measurements, both with the callback's defaults (``score_items=64``, ``n_iter=32``,
``num_samples=4``, reference audio and score, mel figure):

1. **Share of ``fit``** on the CPU example (``configs/example.yaml``: ``MelVAE``, 400 steps, 4
   validation epochs of 8 items, TensorBoard): the wall time spent inside the callback's hooks
   (timed around each hook) divided by the whole ``fit`` wall time, and, as a cross-check, the
   same ``fit`` without the callback. The one-time compilation of the fused Griffin-Lim kernels
   (``torch.compile``, cached on disk) is done and reported before ``fit``.
2. **Share of a validation epoch** for 8 and for 1,000 validation items (1 s clips of speech at
   16 kHz, 80 mels, a ~1M-parameter conv post-net): wall time per validation epoch with and
   without the callback, median of ``--repeats`` interleaved runs after a warm-up, and the
   callback's own time. With bounded scoring the callback's time does not grow with the
   validation set.

Usage::

    python benchmarks/callback_overhead.py --threads 1        # both parts
    python benchmarks/callback_overhead.py --part val --val-items 8 1000 --repeats 3
    python benchmarks/callback_overhead.py --part fit --fit-steps 400

Prints Markdown tables. Runs on CPU, and on CUDA too when it is available (part 2).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import soundfile as sf
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from specinv_lightning import InversionCallback, MelConfig, MelSpectrogram

SPEECH = Path(__file__).resolve().parents[1] / "tests" / "assets" / "arctic_a0007.wav"
CONFIG = MelConfig(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=80, compression="log")


class PostNet(pl.LightningModule):
    """Predicts a log-mel from a degraded log-mel with a residual conv stack."""

    def __init__(self, width: int = 256, layers: int = 4) -> None:
        super().__init__()
        self.mel = MelSpectrogram(CONFIG)
        chans = [CONFIG.n_mels] + [width] * (layers - 1) + [CONFIG.n_mels]
        blocks: list[nn.Module] = []
        for i in range(layers):
            blocks.append(nn.Conv1d(chans[i], chans[i + 1], 5, padding=2))
            if i < layers - 1:
                blocks += [nn.BatchNorm1d(chans[i + 1]), nn.Tanh()]
        self.net = nn.Sequential(*blocks)

    def validation_step(self, batch: list[Tensor], batch_idx: int) -> dict[str, Tensor]:
        (audio,) = batch
        target = self.mel(audio)
        pred = target + 0.1 * self.net(target)
        self.log("val/loss", (pred - target).square().mean(), batch_size=audio.shape[0])
        return {"mel": pred, "audio": audio}


class HookTimer:
    """Wall time spent inside a callback's hooks (CUDA synchronised at both ends of each)."""

    HOOKS = (
        "setup",
        "on_validation_epoch_start",
        "on_validation_batch_end",
        "on_validation_epoch_end",
    )

    def __init__(self, callback: pl.Callback, hooks: tuple[str, ...] = HOOKS) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.marks: list[float] = []  # cumulative seconds at the end of each validation epoch
        for name in hooks:
            setattr(callback, name, self._timed(getattr(callback, name)))

    def _timed(self, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _sync()
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                _sync()
                self.seconds += time.perf_counter() - t0
                self.calls += 1
                if fn.__name__ == "on_validation_epoch_end":
                    self.marks.append(self.seconds)

        return wrapper


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochTimer(pl.Callback):
    """Wall time from ``on_validation_start`` to ``on_validation_end`` (the callback's epoch-end
    inversion and media included)."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._t0 = 0.0

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync()
        self._t0 = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync()
        self.times.append(time.perf_counter() - self._t0)


def speech_clips(n: int, seconds: float) -> Tensor:
    data, sr = sf.read(SPEECH, dtype="float32")
    assert sr == CONFIG.sample_rate
    audio = torch.from_numpy(data)
    clip = int(seconds * sr)
    hop = max(1, (audio.numel() - clip) // max(n - 1, 1))
    return torch.stack([audio[(i * hop) % (audio.numel() - clip) :][:clip] for i in range(n)])


def val_trainer(accelerator: str, with_callback: bool, root: str) -> tuple[pl.Trainer, Any]:
    """A Trainer with an :class:`EpochTimer` and, optionally, a default InversionCallback."""
    callbacks: list[pl.Callback] = [EpochTimer()]
    hooks = None
    if with_callback:
        cb = InversionCallback(CONFIG)
        hooks = HookTimer(cb, HookTimer.HOOKS[1:])  # setup runs outside the epoch
        callbacks.insert(0, cb)
    trainer = pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=CSVLogger(root),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    return trainer, hooks


def validation_part(accelerator: str, items: list[int], repeats: int, root: str) -> None:
    print(
        f"| {accelerator}: validation items | epoch without callback | epoch with callback"
        " | callback's own time | share of the epoch |"
    )
    print("|---:|---:|---:|---:|---:|")
    torch.manual_seed(0)
    model = PostNet()
    for n in items:
        loader = DataLoader(TensorDataset(speech_clips(n, 1.0)), batch_size=16)
        runs = [val_trainer(accelerator, flag, root) for flag in (False, True)]
        for trainer, _ in runs:  # warm-up (allocator, kernels, compile), not timed
            trainer.validate(model, loader, verbose=False)
        hooks = runs[1][1]
        hooks.seconds, hooks.calls = 0.0, 0
        for _ in range(repeats):
            for trainer, _ in runs:
                trainer.validate(model, loader, verbose=False)
        epochs = [
            statistics.median(next(c for c in t.callbacks if isinstance(c, EpochTimer)).times[1:])
            for t, _ in runs
        ]
        marks = [0.0, *hooks.marks]
        own = statistics.median(b - a for a, b in zip(marks[:-1], marks[1:], strict=True))
        print(
            f"| {n} | {epochs[0] * 1e3:.0f} ms | {epochs[1] * 1e3:.0f} ms | {own * 1e3:.0f} ms"
            f" | {100 * own / epochs[1]:.0f}% |",
            flush=True,
        )
    print()


def fit_part(steps: int, root: str, baseline: bool) -> None:
    """The CPU example's ``fit`` (configs/example.yaml) with the callback's hooks timed."""
    import sys

    repo = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(repo))
    from examples.data import AudioDataModule
    from examples.model import MelVAE
    from examples.train import ExampleCLI

    def cli(run_root: str) -> Any:
        args = [
            "-c", str(repo / "configs" / "example.yaml"),
            f"--trainer.max_steps={steps}",
            f"--trainer.default_root_dir={run_root}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
        ]  # fmt: skip
        return ExampleCLI(MelVAE, AudioDataModule, args=args, run=False)

    # one-time costs, reported apart: compiling the fused kernels for these shapes (cached on
    # disk across processes, in memory within this one) in a validation run of the example
    example = cli(str(Path(root) / "warm"))
    t0 = time.perf_counter()
    example.trainer.validate(example.model, example.datamodule, verbose=False)
    warm_s = time.perf_counter() - t0

    results = []
    for with_callback in (True, False) if baseline else (True,):
        example = cli(str(Path(root) / f"fit{int(with_callback)}"))
        trainer = example.trainer
        hooks = None
        if with_callback:
            cb = next(c for c in trainer.callbacks if isinstance(c, InversionCallback))
            hooks = HookTimer(cb)
        else:
            trainer.callbacks[:] = [
                c for c in trainer.callbacks if not isinstance(c, InversionCallback)
            ]
        t0 = time.perf_counter()
        trainer.fit(example.model, example.datamodule)
        results.append((time.perf_counter() - t0, hooks, trainer.fit_loop.epoch_loop.val_loop))
    total, hooks, _ = results[0]
    per_epoch = [b - a for a, b in zip([0.0, *hooks.marks[:-1]], hooks.marks, strict=True)]
    print(
        f"CPU example (configs/example.yaml, {steps} steps, {len(per_epoch)} validations);"
        f" a validation run before fit (data synthesis/loading, fused-kernel compilation) took"
        f" {warm_s:.1f} s\n"
    )
    print("| fit | wall | callback's own time | share | per validation |")
    print("|---|---:|---:|---:|---|")
    print(
        f"| with InversionCallback() defaults | {total:.1f} s | {hooks.seconds:.2f} s"
        f" | {100 * hooks.seconds / total:.1f}% | "
        + ", ".join(f"{t:.2f} s" for t in per_epoch)
        + " |"
    )
    if baseline:
        plain = results[1][0]
        print(
            f"| without the callback | {plain:.1f} s | - | difference: {total - plain:+.2f} s"
            f" ({100 * (total - plain) / total:+.1f}%) | |"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["fit", "val", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--val-items", type=int, nargs="+", default=[8, 200, 1000])
    parser.add_argument("--fit-steps", type=int, default=400)
    parser.add_argument("--no-baseline", action="store_true", help="skip the fit without callback")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 gives stable figures on a shared or busy machine: with more"
        " threads than idle cores, OpenMP oversubscription can slow CPU kernels many times)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU")
        + "\n"
    )
    with tempfile.TemporaryDirectory() as root:
        if args.part in ("val", "both"):
            print(
                "Validation epoch: 1 s clips, batches of 16 (16 kHz, n_fft 1024, hop 256,"
                f" 80 mels), median of {args.repeats}\n"
            )
            for accelerator in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
                validation_part(accelerator, args.val_items, args.repeats, root)
        if args.part in ("fit", "both"):
            fit_part(args.fit_steps, root, not args.no_baseline)


if __name__ == "__main__":
    main()
