"""Validation-epoch overhead of :class:`~specinv_lightning.InversionCallback`.

A small mel-predicting model (a 4-layer conv post-net over 80-band log-mels, ~1M parameters) is
validated on real speech (the test asset, cut into 1 s clips at 16 kHz) with and without the
callback; the validation loop (``on_validation_start`` -> ``on_validation_end``, so the callback's
epoch-end inversion and wav writing are included) is timed, median of ``--repeats`` runs after a
warm-up run. Runs on CPU, and on CUDA too when it is available.

Usage::

    python benchmarks/callback_overhead.py                 # default settings and variants
    python benchmarks/callback_overhead.py --repeats 7 --val-batches 16

Prints a Markdown table: variant, median time per validation epoch, ratio to no callback, overhead.
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


class Timer(pl.Callback):
    """Wall and process CPU time from ``on_validation_start`` to ``on_validation_end``.

    CUDA is synchronised at both ends. The CPU time (all threads of this process) is reported too
    because it is robust to other processes competing for the cores.
    """

    def __init__(self) -> None:
        self.times: list[tuple[float, float]] = []
        self._t0 = (0.0, 0.0)

    def _sync(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(pl_module)
        self._t0 = (time.perf_counter(), time.process_time())

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(pl_module)
        self.times.append((time.perf_counter() - self._t0[0], time.process_time() - self._t0[1]))


def speech_clips(n: int, seconds: float) -> Tensor:
    data, sr = sf.read(SPEECH, dtype="float32")
    assert sr == CONFIG.sample_rate
    audio = torch.from_numpy(data)
    clip = int(seconds * sr)
    hop = max(1, (audio.numel() - clip) // max(n - 1, 1))
    return torch.stack([audio[(i * hop) % (audio.numel() - clip) :][:clip] for i in range(n)])


def make_trainer(accelerator: str, variant: dict[str, Any] | None, root: str) -> pl.Trainer:
    """A Trainer with a :class:`Timer` and, unless ``variant`` is None, the InversionCallback."""
    callbacks: list[pl.Callback] = [Timer()]
    if variant is not None:
        callbacks.insert(0, InversionCallback(CONFIG, **variant))
    return pl.Trainer(
        accelerator=accelerator,
        devices=1,
        logger=CSVLogger(root),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


def run(accelerator: str, loader: DataLoader, repeats: int, root: str) -> list[list[tuple]]:
    """Validation times per variant; repeats are interleaved across variants to cancel drift."""
    torch.manual_seed(0)
    model = PostNet()
    trainers = [make_trainer(accelerator, variant, root) for _, variant in VARIANTS]
    for trainer in trainers:  # warm-up (allocator, kernels, torch.compile), not timed
        trainer.validate(model, loader, verbose=False)
    for _ in range(repeats):
        for trainer in trainers:
            trainer.validate(model, loader, verbose=False)
    timers = [next(c for c in t.callbacks if isinstance(c, Timer)) for t in trainers]
    return [timer.times[1:] for timer in timers]


VARIANTS: list[tuple[str, dict[str, Any] | None]] = [
    ("no callback", None),
    ("InversionCallback() defaults (score every batch, n_iter=32)", {}),
    ("defaults, eager Griffin-Lim kernels (fused=False)", {"inverter_kwargs": {"fused": False}}),
    ("score_all_batches=False (captured samples only)", {"score_all_batches": False}),
    ("score every batch, n_iter=8", {"n_iter": 8}),
    ("score_all_batches=False, n_iter=8", {"score_all_batches": False, "n_iter": 8}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--val-batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (1 gives stable figures on a shared or busy machine)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    clips = speech_clips(args.val_batches * args.batch_size, args.seconds)
    loader = DataLoader(TensorDataset(clips), batch_size=args.batch_size)
    accelerators = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(
        f"validation set: {args.val_batches} batches x {args.batch_size} clips x {args.seconds:g} s"
        f" (16 kHz, n_fft 1024, hop 256, 80 mels); torch {torch.__version__},"
        f" {torch.get_num_threads()} CPU threads; median of {args.repeats}\n"
    )
    with tempfile.TemporaryDirectory() as root:
        for accelerator in accelerators:
            print(
                f"| {accelerator}: variant | wall / epoch | wall ratio | CPU time / epoch"
                " | CPU ratio | overhead (CPU) |"
            )
            print("|---|---:|---:|---:|---:|---:|")
            base = None
            for (name, _), times in zip(
                VARIANTS, run(accelerator, loader, args.repeats, root), strict=True
            ):
                wall = statistics.median(t[0] for t in times)
                cpu = statistics.median(t[1] for t in times)
                base = (wall, cpu) if base is None else base
                print(
                    f"| {name} | {wall * 1e3:.0f} ms | {wall / base[0]:.2f}x | {cpu * 1e3:.0f} ms"
                    f" | {cpu / base[1]:.2f}x | {100 * (cpu / base[1] - 1):+.0f}% |",
                    flush=True,
                )
            print()


if __name__ == "__main__":
    main()
