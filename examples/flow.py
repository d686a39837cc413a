"""``MelFlow``: a tiny conditional flow-matching mel model whose ``validation_step`` returns a loss.

Like Matcha-TTS, it learns a vector field that carries Gaussian noise to a (normalised) mel,
conditioned on a coarse "encoder output" ``mu``; mels are produced by a separate sampler that
integrates the ODE in a few Euler steps. Its ``validation_step`` returns only the flow-matching
loss, so :class:`specinv_lightning.InversionCallback` gets its mels through ``generate``
(:func:`generate` below, named in ``configs/flow.yaml``), called only for the batches that hold
the scored and logged items.

Here the condition ``mu`` is the target mel blurred to ``cond_bands`` bands and over
``cond_frames`` frames (a stand-in for a text encoder's output: it says roughly what to say, the
flow fills in the detail). The mel is normalised by the config's ``mel_mean``/``mel_std``, as
Matcha's is, and the callback inverts it through the same config.

Usage (from the repository root)::

    python examples/flow.py fit -c configs/flow.yaml

Example:
    >>> import torch
    >>> from examples.flow import MelFlow, generate
    >>> model = MelFlow(mel={"preset": "tacotron2", "sample_rate": 16000}, hidden_channels=16)
    >>> batch = {"audio": torch.randn(2, 16000), "lengths": torch.tensor([16000, 8000])}
    >>> model.validation_step(batch, 0).dim()  # only the loss
    0
    >>> tuple(generate(model, batch).shape)
    (2, 80, 63)
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

if __package__ in (None, ""):  # run as a script: make ``examples`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specinv_lightning.functional.metrics import frame_mask
from specinv_lightning.mel import MelSpectrogram, as_config

__all__ = ["MelFlow", "generate", "main"]


class _Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.GroupNorm(1, channels)
        self.time = nn.Linear(channels, channels)

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        return x + F.gelu(self.norm(self.conv(x)) + self.time(t_emb)[..., None])


class MelFlow(LightningModule):
    """Conditional flow matching (OT paths, Lipman et al. 2023) over normalised mel frames.

    Args:
        mel: Mel config (preset name or dict of :class:`specinv_lightning.MelConfig` fields); give
            it ``mel_mean``/``mel_std`` so the mel is roughly standard normal.
        hidden_channels: Width of the vector-field network.
        num_blocks: Residual conv blocks.
        kernel_size: Convolution kernel size over frames.
        cond_bands: Bands of the coarse condition ``mu``.
        cond_frames: Frames averaged into one in ``mu``.
        n_steps: Euler steps of the sampler.
        sigma_min: Width of the probability path at ``t = 1``.
        learning_rate: AdamW learning rate.
    """

    def __init__(
        self,
        mel: str | dict[str, Any] = "tacotron2",
        hidden_channels: int = 96,
        num_blocks: int = 4,
        kernel_size: int = 5,
        cond_bands: int = 10,
        cond_frames: int = 4,
        n_steps: int = 10,
        sigma_min: float = 1e-4,
        learning_rate: float = 2e-3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = as_config(mel)
        if hidden_channels < 1 or num_blocks < 1 or n_steps < 1:
            raise ValueError("hidden_channels, num_blocks, n_steps: expected >= 1")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd integer >= 1, got {kernel_size}")
        n_mels, h = self.config.n_mels, hidden_channels
        self.mel_transform = MelSpectrogram(self.config)
        self.inp = nn.Conv1d(2 * n_mels, h, kernel_size, padding=kernel_size // 2)
        self.time = nn.Sequential(nn.Linear(h, h), nn.GELU())
        self.blocks = nn.ModuleList([_Block(h, kernel_size) for _ in range(num_blocks)])
        self.out = nn.Conv1d(h, n_mels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    # ------------------------------------------------------------------ model
    def condition(self, mel: Tensor) -> Tensor:
        """``mu``: the mel blurred to ``cond_bands`` bands and ``cond_frames``-frame blocks."""
        bands, frames = self.hparams.cond_bands, self.hparams.cond_frames
        coarse = F.adaptive_avg_pool2d(mel[:, None], (bands, max(1, mel.shape[-1] // frames)))
        return F.interpolate(coarse, size=mel.shape[-2:], mode="bilinear", align_corners=False)[
            :, 0
        ]

    def _time_embedding(self, t: Tensor) -> Tensor:
        half = self.hparams.hidden_channels // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=t.device) / max(half, 1))
        angles = 1000.0 * t[:, None] * freqs[None]
        emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
        emb = F.pad(emb, (0, self.hparams.hidden_channels - emb.shape[-1]))
        return self.time(emb)

    def forward(self, x: Tensor, mu: Tensor, t: Tensor) -> Tensor:
        """The vector field ``v(x_t, mu, t)``."""
        t_emb = self._time_embedding(t)
        h = self.inp(torch.cat([x, mu], dim=1))
        for block in self.blocks:
            h = block(h, t_emb)
        return self.out(h)

    def _target_mel(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        audio = batch["audio"]
        lengths = batch.get("lengths")
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], device=audio.device)
        with torch.no_grad(), torch.autocast(audio.device.type, enabled=False):
            mel = self.mel_transform(audio.float())
        valid = self.config.valid_frames(lengths).clamp(max=mel.shape[-1])
        mask = frame_mask(valid, lengths.shape, mel.shape[-1], mel.device).to(mel.dtype)
        return mel, mask

    def loss(self, batch: dict[str, Tensor], generator: torch.Generator | None = None) -> Tensor:
        """Flow-matching loss: masked MSE between ``v(x_t)`` and ``x_1 - (1 - sigma_min) x_0``."""
        x1, mask = self._target_mel(batch)
        noise = torch.randn(x1.shape, generator=generator).to(x1)
        t = torch.rand(x1.shape[0], generator=generator).to(x1)
        s = self.hparams.sigma_min
        xt = (1 - (1 - s) * t[:, None, None]) * noise + t[:, None, None] * x1
        u = x1 - (1 - s) * noise
        v = self(xt, self.condition(x1), t)
        return ((v - u).square() * mask).sum() / (mask.sum() * x1.shape[1]).clamp(min=1)

    @torch.no_grad()
    def sample(self, audio: Tensor, n_steps: int | None = None, seed: int = 0) -> Tensor:
        """Mels for the utterances in ``audio``: Euler integration of the ODE from noise, given
        ``mu`` computed from the audio (deterministic for a given ``seed``)."""
        mu = self.condition(self.mel_transform(audio.float()))
        steps = n_steps or self.hparams.n_steps
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(mu.shape, generator=generator).to(mu)
        for i in range(steps):
            t = torch.full((x.shape[0],), i / steps, device=x.device, dtype=x.dtype)
            x = x + self(x, mu, t) / steps
        return x

    # ------------------------------------------------------------------ Lightning
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, batch_size=batch["audio"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Only the loss (fixed noise, so the curve is comparable between epochs)."""
        loss = self.loss(batch, torch.Generator().manual_seed(batch_idx))
        self.log("val/loss", loss, batch_size=batch["audio"].shape[0], sync_dist=True)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.learning_rate)


def generate(pl_module: MelFlow, batch: dict[str, Tensor]) -> Tensor:
    """``InversionCallback(generate=...)``: sample the batch's mels with the model's ODE sampler.

    The callback calls it under no-grad in eval mode, only for the batches holding the items it
    scores or logs; the target audio and lengths are then read from the batch.
    """
    return pl_module.sample(batch["audio"])


def main(args: list[str] | None = None) -> Any:
    """``python examples/flow.py fit -c configs/flow.yaml``: the example CLI with ``MelFlow``."""
    from examples.data import AudioDataModule
    from examples.train import ExampleCLI

    return ExampleCLI(MelFlow, AudioDataModule, args=args, save_config_kwargs={"overwrite": True})


if __name__ == "__main__":
    from examples.flow import main as _main  # the classes as ``examples.flow.*``, not __main__

    _main()
