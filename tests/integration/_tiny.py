"""Tiny LightningModule/DataModule for the InversionCallback tests: a mel predictor on real speech.

Importable from spawned DDP workers (module-level classes only).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import soundfile as sf
import torch
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset
from torchmetrics import Metric

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram

SPEECH = Path(__file__).resolve().parents[1] / "assets" / "arctic_a0007.wav"
SR = 16000
# small 16 kHz log-mel: 256-point FFT, hop 64, 32 bands
CONFIG = MelConfig(sample_rate=SR, n_fft=256, hop_length=64, n_mels=32, compression="log")
CLIP = 4096  # samples per item (0.256 s)


class SpeechClips(Dataset):
    """``n`` clips of ``CLIP`` samples cut from the real-speech asset (disjoint, deterministic)."""

    def __init__(self, n: int = 8, clip: int = CLIP) -> None:
        data, sr = sf.read(SPEECH, dtype="float32")
        assert sr == SR
        audio = torch.from_numpy(data)
        hop = (audio.numel() - clip) // max(n - 1, 1)
        self.items = [audio[i * hop : i * hop + clip].clone() for i in range(n)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        # the last items are shorter: padded in the batch, with their true length
        length = CLIP - (i % 4) * 256
        audio = self.items[i].clone()
        audio[length:] = 0.0
        return {"audio": audio, "length": length, "index": i}


class TinyData(pl.LightningDataModule):
    """Train and validation sets of real speech clips (validation not shuffled)."""

    def __init__(self, n_val: int = 8, n_train: int = 4, batch_size: int = 4) -> None:
        super().__init__()
        self.n_val, self.n_train, self.batch_size = n_val, n_train, batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(SpeechClips(self.n_train), batch_size=self.batch_size, shuffle=False)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(SpeechClips(self.n_val), batch_size=self.batch_size, shuffle=False)


class TinyMelModel(pl.LightningModule):
    """Predicts the log-mel of the input audio through a small residual conv (a mel "generator").

    Args:
        keys: Names of the returned ``validation_step`` dict entries, mapping
            ``"mel"``/``"audio"``/``"length"`` to output keys (``None`` drops one).
        nan_item: If set, the predicted mel of this batch item is NaN at every validation step.
        noise: Std of the noise added to the input mel (so the prediction is imperfect).
    """

    def __init__(
        self,
        keys: dict[str, str | None] | None = None,
        nan_item: int | None = None,
        noise: float = 0.1,
        width: int = 32,
    ) -> None:
        super().__init__()
        self.keys = {"mel": "mel", "audio": "audio", "length": "length", **(keys or {})}
        self.nan_item = nan_item
        self.noise = noise
        self.mel = MelSpectrogram(CONFIG)
        self.net = nn.Sequential(
            nn.Conv1d(CONFIG.n_mels, width, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(width, CONFIG.n_mels, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)  # starts as "target + noise": a plausible prediction
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        target = self.mel(audio)
        g = torch.Generator().manual_seed(0)
        # the same noise for every item: predictions do not depend on how items are batched
        noise = torch.randn(target.shape[-2:], generator=g).to(target)
        noisy = target + self.noise * noise
        return noisy + self.net(noisy), target

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        pred, target = self(batch["audio"])
        loss = (pred - target).square().mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        pred, target = self(batch["audio"])
        loss = (pred - target).square().mean()
        self.log("val/loss", loss, batch_size=pred.shape[0])
        if self.nan_item is not None:
            pred = pred.clone()
            pred[self.nan_item] = float("nan")
        out = {"loss": loss}
        values = {"mel": pred, "audio": batch["audio"], "length": batch["length"]}
        for name, key in self.keys.items():
            if key is not None:
                out[key] = values[name]
        return out

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def trainer_kwargs(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    """Fast CPU Trainer settings: 2 train steps and the full (tiny) validation set per epoch."""
    kwargs: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        max_epochs=2,
        limit_train_batches=1,
        num_sanity_val_steps=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(tmp_path),
        log_every_n_steps=1,
    )
    kwargs.update(overrides)
    return kwargs


class UnevenData(TinyData):
    """Validation split by hand across ranks with *different batch counts* (no DistributedSampler).

    With 2 ranks and ``n_val=8``, ``batch_size=2``: rank 0 gets items 0-5 (3 batches), rank 1 items
    6-7 (1 batch); together exactly the single-process validation set. Use with
    ``Trainer(use_distributed_sampler=False)``.
    """

    def val_dataloader(self) -> DataLoader:
        data = SpeechClips(self.n_val)
        world, rank = self.trainer.world_size, self.trainer.global_rank
        if world == 1:
            indices = list(range(self.n_val))
        else:
            cut = self.n_val - 2 * (world - 1)  # rank 0 gets the most
            indices = list(range(cut)) if rank == 0 else [cut + 2 * (rank - 1), cut + 2 * rank - 1]
        return DataLoader(Subset(data, indices), batch_size=self.batch_size, shuffle=False)


class RankDirLogger(Logger):
    """A "generic" logger whose ``log_dir`` depends on the rank: media written by rank r land in
    ``<root>/rank<r>``, so a test can see which ranks wrote media. Scalars go to ``metrics.jsonl``.
    """

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = root

    @property
    def name(self) -> str:
        return "rankdir"

    @property
    def version(self) -> int:
        return 0

    @property
    def log_dir(self) -> str:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        return os.path.join(self.root, f"rank{rank}")

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        os.makedirs(self.root, exist_ok=True)
        with open(os.path.join(self.root, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, **metrics}) + "\n")

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass


class LossOnlyModel(TinyMelModel):
    """Like a Matcha-TTS-style model: ``validation_step`` returns only its loss; the mels come
    from a separate sampler (``sample``), which the callback calls through ``generate``."""

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        pred, target = self(batch["audio"])
        loss = (pred - target).square().mean()
        self.log("val/loss", loss, batch_size=pred.shape[0])
        return loss

    def sample(self, audio: Tensor) -> Tensor:
        """Stand-in for an ODE/diffusion sampler: the predicted mel."""
        return self(audio)[0]


class CountingGenerate:
    """``generate(pl_module, batch)`` that records the dataset indices of every batch it gets and
    checks it runs in eval mode without autograd."""

    def __init__(self) -> None:
        self.indices: list[list[int]] = []

    def __call__(self, pl_module: pl.LightningModule, batch: dict[str, Tensor]) -> Tensor:
        assert not pl_module.training and not torch.is_grad_enabled()
        self.indices.append([int(i) for i in batch["index"]])
        return pl_module.sample(batch["audio"])  # type: ignore[operator]


class CountingInverter(MelInverter):
    """A ``MelInverter`` that counts the items it inverts; with ``record_dir`` each rank also
    writes its count to ``<record_dir>/rank<r>.txt`` (readable after a spawned DDP run)."""

    def __init__(self, *args: Any, record_dir: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.items = 0
        self.record_dir = record_dir

    def forward(self, mel: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        self.items += int(mel.shape[0])
        if self.record_dir is not None:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            Path(self.record_dir).mkdir(parents=True, exist_ok=True)
            (Path(self.record_dir) / f"rank{rank}.txt").write_text(str(self.items))
        return super().forward(mel, *args, **kwargs)


class CountItems(Metric):
    """A custom torchmetrics metric: the number of (inverted, target) items it was updated with."""

    full_state_update = False
    n: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.add_state("n", default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor) -> None:
        assert preds.shape == target.shape and preds.dim() == 2
        self.n = self.n + preds.shape[0]

    def compute(self) -> Tensor:
        return self.n
