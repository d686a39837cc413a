"""``MelVAE``: a small convolutional VAE over log-mel segments, as a LightningModule.

Why a VAE: it is the smallest *generative* model that predicts mels (it can sample new mels from
its prior with :meth:`MelVAE.sample`) while its validation output - the reconstruction of a held-out
utterance's mel - has a matching target waveform, which is exactly what
:class:`specinv_lightning.InversionCallback` needs to score and to let you listen to progress.

Architecture: the compressed mel ``(B, n_mels, T)`` from :class:`specinv_lightning.MelSpectrogram`
(computed inside the module, on its device) is standardised per band (``BatchNorm1d`` without
affine parameters, whose running statistics also de-standardise the output), encoded by 1-D
convolutions over frames (two stride-2 stages -> latent ``(B, latent_channels, T/4)``, mean and
log-variance), sampled with the reparameterisation trick and decoded by nearest upsampling +
convolutions back to ``(B, n_mels, T)``. Loss: L1 between the standardised predicted and target mel
over the valid frames + ``kl_weight`` x KL(q(z|x) || N(0, I)) (linearly warmed up), and optionally
``waveform_loss_weight`` x :class:`specinv_lightning.WaveformReconstructionLoss` (the waveform the
predicted mel implies, through differentiable Griffin-Lim, against the target audio).

Example:
    >>> import torch
    >>> from examples.model import MelVAE
    >>> model = MelVAE(mel="tacotron2", hidden_channels=32)
    >>> out = model.validation_step({"audio": torch.randn(2, 22050), "lengths": torch.tensor([22050, 11025])}, 0)
    >>> sorted(out), tuple(out["mel"].shape)
    (['audio', 'lengths', 'mel'], (2, 80, 87))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torch import Tensor, nn

from specinv_lightning.functional.metrics import frame_mask
from specinv_lightning.mel import MelSpectrogram, as_config

__all__ = ["MelVAE"]


def _block(channels: int, kernel_size: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2),
        nn.GroupNorm(1, channels),
        nn.GELU(),
    )


class _Residual(nn.Module):
    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.body = _block(channels, kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class MelVAE(LightningModule):
    """Convolutional VAE that reconstructs (and can sample) compressed mel spectrograms.

    Args:
        mel: Mel config: a preset name (``"hifigan"``, ``"vocos"``, ``"bigvgan"``,
            ``"tacotron2"``, ...) or a dict of :class:`specinv_lightning.MelConfig` fields
            (``{"preset": name, **overrides}`` also works).
        hidden_channels: Width of the convolutions.
        latent_channels: Channels of the latent sequence (at 1/4 of the frame rate).
        kernel_size: Convolution kernel size over frames.
        kl_weight: Weight of the KL term after warm-up.
        kl_warmup_steps: Steps over which the KL weight ramps linearly from 0.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW weight decay.
        waveform_loss_weight: Weight of :class:`specinv_lightning.WaveformReconstructionLoss`
            (0 disables it and skips building it).
        waveform_loss_n_iter: Griffin-Lim iterations unrolled inside the waveform loss.
        waveform_loss_kwargs: Further :class:`specinv_lightning.WaveformReconstructionLoss`
            arguments (``init``, ``reference``, ``detach_phase``, ``stft_loss`` ...). Its own mel
            L1 term is off (``mel_weight=0``): the model's standardised L1 already anchors the mel.
        waveform_loss_items: Compute the waveform loss on the first this many items of each
            batch only (``None``: all). The crops are shuffled, so this is an unbiased
            sub-sample of the batch's loss at a fraction of its cost (the loss's inversion and
            STFTs scale with the items; the mel L1 still sees the whole batch).

    Example:
        >>> model = MelVAE(mel={"preset": "hifigan", "n_mels": 64})
        >>> model.config.n_mels
        64
    """

    def __init__(
        self,
        mel: str | dict[str, Any] = "tacotron2",
        hidden_channels: int = 128,
        latent_channels: int = 16,
        kernel_size: int = 5,
        kl_weight: float = 1e-3,
        kl_warmup_steps: int = 200,
        learning_rate: float = 2e-3,
        weight_decay: float = 1e-4,
        waveform_loss_weight: float = 0.0,
        waveform_loss_n_iter: int = 4,
        waveform_loss_kwargs: dict[str, Any] | None = None,
        waveform_loss_items: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.config = as_config(mel)
        if hidden_channels < 1 or latent_channels < 1:
            raise ValueError(
                f"hidden_channels/latent_channels: expected >= 1, got {hidden_channels}, {latent_channels}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: expected an odd integer >= 1, got {kernel_size}")
        if kl_weight < 0 or waveform_loss_weight < 0:
            raise ValueError(
                f"kl_weight/waveform_loss_weight: expected >= 0, got {kl_weight}, {waveform_loss_weight}"
            )
        if waveform_loss_items is not None and waveform_loss_items < 1:
            raise ValueError(
                f"waveform_loss_items: expected None or an integer >= 1, got {waveform_loss_items}"
            )
        n_mels, h, k = self.config.n_mels, hidden_channels, kernel_size
        self.mel_transform = MelSpectrogram(self.config)
        self.norm = nn.BatchNorm1d(n_mels, affine=False)
        self.encoder = nn.Sequential(
            nn.Conv1d(n_mels, h, k, padding=k // 2),
            nn.GELU(),
            _Residual(h, k),
            nn.Conv1d(h, h, 4, stride=2, padding=1),
            _Residual(h, k),
            nn.Conv1d(h, h, 4, stride=2, padding=1),
            _Residual(h, k),
            nn.Conv1d(h, 2 * latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            nn.Conv1d(latent_channels, h, k, padding=k // 2),
            nn.GELU(),
            _Residual(h, k),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv1d(h, h, k, padding=k // 2),
            _Residual(h, k),
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv1d(h, h, k, padding=k // 2),
            _Residual(h, k),
            nn.Conv1d(h, n_mels, 1),
        )
        self.waveform_loss: nn.Module | None = None
        if waveform_loss_weight > 0:
            from specinv_lightning import WaveformReconstructionLoss

            kwargs = {"mel_weight": 0.0, **(waveform_loss_kwargs or {})}
            self.waveform_loss = WaveformReconstructionLoss(
                self.config, n_iter=waveform_loss_n_iter, **kwargs
            )

    # ------------------------------------------------------------------ model
    def _standardize(self, mel: Tensor) -> Tensor:
        return self.norm(mel)

    def _destandardize(self, z: Tensor) -> Tensor:
        assert self.norm.running_var is not None and self.norm.running_mean is not None
        std = (self.norm.running_var + self.norm.eps).sqrt()
        return z * std[:, None] + self.norm.running_mean[:, None]

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Standardised mel ``(B, n_mels, T)`` (T divisible by 4) -> ``(mu, logvar)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)

    def decode(self, z: Tensor) -> Tensor:
        """Latent ``(B, latent_channels, T/4)`` -> standardised mel ``(B, n_mels, T)``."""
        return self.decoder(z)

    def forward(self, mel: Tensor, sample: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruct a compressed mel ``(B, n_mels, T)``.

        Returns:
            ``(reconstruction in standardised units, mu, logvar)``; the reconstruction has ``T``
            frames (inputs are padded to a multiple of 4 internally).
        """
        frames = mel.shape[-1]
        x = self._standardize(mel)
        pad = (-frames) % 4
        if pad:
            x = F.pad(x, (0, pad), mode="replicate")
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if sample else mu
        return self.decode(z)[..., :frames], mu, logvar

    @torch.no_grad()
    def sample(self, num: int, frames: int) -> Tensor:
        """Draw ``num`` compressed mels ``(num, n_mels, frames)`` from the prior."""
        latent = self.decoder[0].in_channels
        z = torch.randn(num, latent, -(-frames // 4), device=self.device)
        return self._destandardize(self.decode(z))[..., :frames]

    # ------------------------------------------------------------------ losses
    def _frame_mask(self, lengths: Tensor, frames: int) -> Tensor:
        """``(B, 1, frames)`` mask of the frames that hold each item's valid samples."""
        valid = self.config.valid_frames(lengths).clamp(max=frames)
        return frame_mask(valid, lengths.shape, frames, lengths.device)

    def _losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        audio = batch["audio"]
        lengths = batch.get("lengths")
        if lengths is None:
            lengths = torch.full((audio.shape[0],), audio.shape[-1], device=audio.device)
        # the mel target in full precision even under mixed precision (no autocast matmuls)
        with torch.no_grad(), torch.autocast(audio.device.type, enabled=False):
            mel = self.mel_transform(audio.float())
        recon, mu, logvar = self(mel, sample=self.training)
        target = self._standardize(mel) if not self.training else self._batch_standardize(mel)
        mask = self._frame_mask(lengths, mel.shape[-1]).to(recon.dtype)
        l1 = ((recon - target).abs() * mask).sum() / (mask.sum() * mel.shape[1]).clamp(min=1)
        kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar).sum(dim=1).mean()
        warm = self.hparams.kl_warmup_steps
        kl_scale = min(1.0, (self.global_step + 1) / warm) if warm > 0 else 1.0
        losses = {"mel_l1": l1, "kl": kl}
        total = l1 + self.hparams.kl_weight * kl_scale * kl
        pred_mel = self._destandardize(recon.float())
        if self.waveform_loss is not None:
            # in training the L1 target is standardised with the batch statistics: undo exactly
            # those (not the lagging running ones), so both losses agree on what the output means
            loss_mel = self._batch_destandardize(recon.float(), mel) if self.training else pred_mel
            k = self.hparams.waveform_loss_items or loss_mel.shape[0]
            wave_loss = self.waveform_loss(loss_mel[:k], audio[:k], lengths=lengths[:k])
            losses["waveform"] = wave_loss
            total = total + self.hparams.waveform_loss_weight * wave_loss
        losses["loss"] = total
        return losses, pred_mel, lengths

    def _batch_standardize(self, mel: Tensor) -> Tensor:
        # the BatchNorm already updated its running stats in forward(); use the batch statistics
        # again without touching them a second time
        return F.batch_norm(mel, None, None, training=True, eps=self.norm.eps)

    def _batch_destandardize(self, z: Tensor, mel: Tensor) -> Tensor:
        """Inverse of :meth:`_batch_standardize` with ``mel``'s (detached) batch statistics."""
        mean = mel.mean(dim=(0, 2), keepdim=True)
        var = mel.var(dim=(0, 2), unbiased=False, keepdim=True)
        return z * (var + self.norm.eps).sqrt() + mean

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        losses, _, _ = self._losses(batch)
        self.log_dict(
            {f"train/{k}": v for k, v in losses.items()},
            prog_bar=False,
            batch_size=batch["audio"].shape[0],
        )
        self.log("loss", losses["loss"], prog_bar=True, logger=False)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        """Returns ``{"mel": predicted compressed mel, "audio": target audio, "lengths": samples}``."""
        losses, pred_mel, lengths = self._losses(batch)
        self.log_dict(
            {f"val/{k}": v for k, v in losses.items()},
            batch_size=batch["audio"].shape[0],
            sync_dist=True,
        )
        return {"mel": pred_mel, "audio": batch["audio"], "lengths": lengths}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            self.parameters(),
            lr=self.hparams.learning_rate,
            weight_decay=self.hparams.weight_decay,
        )
