"""``InversionCallback``: hear and score the model's predicted mels every validation epoch."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from typing_extensions import override

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_lengths
from specinv_lightning.functional._guard import (
    compare_mels,
    prediction_mismatch,
    target_mel_mismatch,
)
from specinv_lightning.functional.compression import compressed_floor
from specinv_lightning.functional.metrics import frame_mask
from specinv_lightning.functional.stft import spectrogram_magnitude, stft
from specinv_lightning.inverse import MelInverter
from specinv_lightning.loggers import AudioClip, figure_to_array, media_sinks, mel_figure
from specinv_lightning.loss import shorthand_conflicts
from specinv_lightning.mel import MelSpectrogram, as_config
from specinv_lightning.metrics import LogSpectralDistance, MelConsistency, SpectralConvergence

__all__ = ["InversionCallback"]

_NORMALIZE = ("peak", None)
_PEAK = 0.99


@dataclass
class _Sample:
    """One captured validation item (detached, on the module's device, trimmed)."""

    mel: Tensor  # (n_mels, frames)
    length: int  # valid samples
    target: Tensor | None  # (samples,)
    target_mel: Tensor | None  # (n_mels, frames)


class InversionCallback(Callback):
    r"""Invert the model's predicted mels every validation epoch: log audio and inversion scores.

    **Capture.** ``validation_step`` must return a dict holding the predicted (compressed, as the
    model outputs it) mel ``(batch, n_mels, frames)`` under ``mel_key`` and, unless
    ``target_key=None``, the target waveform ``(batch, samples)`` under ``target_key``. Or give
    ``extract(outputs, batch) -> dict`` to build that dict from anything. The first
    ``num_samples`` items of the first validation batches (of dataloader 0) are kept, detached, on
    the device - the same utterances every epoch, so listeners hear progress. At most
    ``num_samples`` items are ever held (replaced every epoch; no growth).

    **Score.** With ``score_all_batches=True`` every validation batch's predicted mels are inverted,
    batched on the device with :class:`~specinv_lightning.MelInverter` (``n_iter`` iterations,
    under no-grad), and scored with the torchmetrics classes: ``<prefix>mel_consistency_db``
    (:class:`~specinv_lightning.metrics.MelConsistency` of the inverted audio against the
    predicted mel), and with a target waveform ``<prefix>spectral_convergence`` and
    ``<prefix>log_spectral_distance`` (inverted audio's STFT magnitude against the target's).
    Metric states are summed across DDP ranks when computed at epoch end, so the logged values equal
    a single-process run over the same items. With ``score_all_batches=False`` only the captured
    samples are scored (each rank scores its own captured items).

    **Log.** Every ``every_n_epochs``-th validation run (the first one included; never during the
    sanity check unless ``log_on_sanity_check``), on global rank zero only, the captured mels are
    inverted and logged to every logger of the Trainer: W&B (``wandb.Audio``), TensorBoard
    (``add_audio`` and a predicted-vs-target mel figure), MLflow (wav artifacts), and for CSVLogger,
    any other logger or no logger wav files under ``<log_dir>/audio/epoch=<E>/<name>_<k>.wav``
    (``save_dir`` given: always there too). The targets are logged once, as references. Audio is
    trimmed to its true length and peak-normalised to 0.99 (``normalize="peak"``) or just clipped
    into ``[-1, 1]`` (``normalize=None``).

    **Mismatched config.** At the first scored batch with a target waveform, the predicted mel's
    level and range are compared with the mel the config computes from the target audio; if they
    are far apart (more than 6 dB, or a spread more than 2x off: a normalised mel fed to an
    unnormalised config, another preset) a warning names the likely cause and suggests
    ``mel_mean``/``mel_std``. With ``target_mel_key`` the given target mel is checked against the
    config too. Once per callback; it never stops training.

    **Never kills training.** A logger call that raises, or a non-finite predicted mel, gives a
    warning; the sample is skipped (scoring) or sanitised (logging) and training goes on.
    Configuration errors raise ``ValueError`` in ``__init__`` or at the first validation batch.

    Args:
        config: The mel transform the model predicts (``MelConfig``, preset name or mapping);
            may be omitted when ``inverter`` is given.
        num_samples: Number of items captured, inverted and logged.
        every_n_epochs: Log audio at every n-th validation run.
        n_iter: Griffin-Lim iterations (scoring and logging).
        mel_consistent: Mel-consistent Griffin-Lim (see :class:`~specinv_lightning.MelInverter`).
        mel_key: Key of the predicted mel in the validation outputs.
        target_key: Key of the target waveform ``(batch, samples)``; ``None`` when there is none
            (then no spectral convergence, and no reference audio unless ``target_mel_key``).
        target_mel_key: Optional key of the target mel (same compression): shown next to the
            prediction in mel figures, and inverted as the reference audio when there is no
            target waveform.
        lengths_key: Optional key of the valid length of each item, for trimming padded items and
            masking padded frames in the scores; in samples (``lengths_unit="samples"``, default)
            or in mel frames (``lengths_unit="frames"``).
        lengths_unit: ``"samples"`` or ``"frames"``.
        extract: ``extract(outputs, batch) -> dict`` used instead of the validation outputs.
        log_targets: Log the target (reference) audio once.
        score_all_batches: Score every validation batch (else only the captured samples).
        save_dir: Also write wav files under ``<save_dir>/audio/epoch=<E>/``.
        normalize: ``"peak"`` (scale each clip to a peak of 0.99) or ``None`` (clip into [-1, 1]).
        prefix: Prefix of every logged key.
        log_on_sanity_check: Also score and log during the sanity check.
        log_mel_images: Log a predicted-vs-target mel figure (needs matplotlib).
        inverter_kwargs: Extra :class:`~specinv_lightning.MelInverter` arguments. The default
            initial phase is the inverter's default, ``init="pghi"``: computed from each item's own
            magnitude, so scores do not depend on how items are batched or split across ranks.
        inverter: A ready :class:`~specinv_lightning.MelInverter` instead of ``config``,
            ``n_iter``, ``mel_consistent`` and ``inverter_kwargs`` (passing one of those with a
            value other than its default is then an error).
        name: Identifies this instance in checkpoints (``state_key``), media keys
            (``<prefix>audio/<name>/...``) and folders (``audio/<name>/epoch=<E>/``). To use two
            instances, give them different names and different ``prefix`` (the metric keys).

    Example:
        >>> from lightning.pytorch import Trainer
        >>> from specinv_lightning import InversionCallback
        >>> cb = InversionCallback("hifigan", num_samples=2, n_iter=16)
        >>> cb.state_key
        "InversionCallback{'mel_key': 'mel', 'name': None}"
        >>> trainer = Trainer(callbacks=[cb], logger=False, enable_progress_bar=False)
    """

    def __init__(
        self,
        config: MelConfig | str | Mapping[str, Any] | None = None,
        num_samples: int = 4,
        every_n_epochs: int = 1,
        n_iter: int = 32,
        mel_consistent: bool = True,
        mel_key: str = "mel",
        target_key: str | None = "audio",
        target_mel_key: str | None = None,
        lengths_key: str | None = None,
        lengths_unit: Literal["samples", "frames"] = "samples",
        extract: Callable[[Any, Any], Mapping[str, Any]] | None = None,
        log_targets: bool = True,
        score_all_batches: bool = True,
        save_dir: str | os.PathLike[str] | None = None,
        normalize: Literal["peak"] | None = "peak",
        prefix: str = "val/",
        log_on_sanity_check: bool = False,
        log_mel_images: bool = True,
        inverter_kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        inverter: MelInverter | None = None,
    ) -> None:
        super().__init__()
        self.inverter = self._build_inverter(
            config, inverter, dict(n_iter=n_iter, mel_consistent=mel_consistent), inverter_kwargs
        )
        self.config = self.inverter.config
        for arg, value, low in (
            ("num_samples", num_samples, 0),
            ("every_n_epochs", every_n_epochs, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{arg}: expected an integer >= {low}, got {value!r}")
        for arg, value in (
            ("mel_key", mel_key),
            ("target_key", target_key),
            ("target_mel_key", target_mel_key),
            ("lengths_key", lengths_key),
        ):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{arg}: expected a non-empty string or None, got {value!r}")
        if not isinstance(mel_key, str):
            raise ValueError(f"mel_key: expected a non-empty string, got {mel_key!r}")
        if lengths_unit not in ("samples", "frames"):
            raise ValueError(f"lengths_unit: expected 'samples' or 'frames', got {lengths_unit!r}")
        if extract is not None and not callable(extract):
            raise ValueError(
                f"extract: expected a callable (outputs, batch) -> dict, got {extract!r}"
            )
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize: expected 'peak' or None, got {normalize!r}")
        if not isinstance(prefix, str):
            raise ValueError(f"prefix: expected a string, got {prefix!r}")
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.mel_key = mel_key
        self.target_key = target_key
        self.target_mel_key = target_mel_key
        self.lengths_key = lengths_key
        self.lengths_unit = lengths_unit
        self.extract = extract
        self.log_targets = log_targets
        self.score_all_batches = score_all_batches
        self.save_dir = None if save_dir is None else os.fspath(save_dir)
        self.normalize = normalize
        self.prefix = prefix
        self.log_on_sanity_check = log_on_sanity_check
        self.log_mel_images = log_mel_images
        self.name = name

        self.mel_transform = MelSpectrogram(self.config)
        self.mel_consistency = MelConsistency(self.config)
        self.spectral_convergence = SpectralConvergence()
        self.log_spectral_distance = LogSpectralDistance()
        self._silence = compressed_floor(self.config, torch.float32)  # (n_mels, 1)

        # persisted state
        self.references_logged = False
        self.validation_runs = 0
        self.logged_epochs: list[int] = []
        # transient state
        self._samples: list[_Sample] = []
        self._warned_nonfinite = False
        self._convention_checked = False  # the mismatched-config guard runs once
        self._device = torch.device("cpu")

    @classmethod
    def _build_inverter(
        cls,
        config: MelConfig | str | Mapping[str, Any] | None,
        inverter: MelInverter | None,
        shorthand: dict[str, Any],
        inverter_kwargs: dict[str, Any] | None,
    ) -> MelInverter:
        """The given ``inverter`` (checked), or one built from the shorthand arguments."""
        if inverter is not None:
            if not isinstance(inverter, MelInverter):
                raise ValueError(f"inverter: expected a MelInverter, got {type(inverter).__name__}")
            conflicts = shorthand_conflicts(cls, shorthand) + sorted(inverter_kwargs or {})
            if conflicts:
                raise ValueError(
                    "inverter: a ready MelInverter sets the inversion; do not also pass"
                    f" {conflicts}"
                )
            if config is not None and as_config(config) != inverter.config:
                raise ValueError("config: differs from inverter.config; pass one of them")
            return inverter
        if config is None:
            raise ValueError("config: expected a MelConfig, preset name or mapping, got None")
        kwargs = dict(inverter_kwargs or {})
        if "config" in kwargs or "n_iter" in kwargs or "mel_consistent" in kwargs:
            raise ValueError(
                "inverter_kwargs: pass config, n_iter and mel_consistent as InversionCallback"
                f" arguments, got keys {sorted(kwargs)}"
            )
        try:
            return MelInverter(as_config(config), **shorthand, **kwargs)
        except TypeError as err:
            raise ValueError(f"inverter_kwargs: {err}") from err

    # ------------------------------------------------------------------ Lightning plumbing
    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(mel_key=self.mel_key, name=self.name)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "references_logged": self.references_logged,
            "validation_runs": self.validation_runs,
            "logged_epochs": list(self.logged_epochs),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.references_logged = bool(state_dict.get("references_logged", False))
        self.validation_runs = int(state_dict.get("validation_runs", 0))
        self.logged_epochs = [int(e) for e in state_dict.get("logged_epochs", [])]

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._device = pl_module.device
        for module in self._modules():
            module.to(self._device)

    def _modules(self) -> tuple[torch.nn.Module, ...]:
        return (
            self.inverter,
            self.mel_transform,
            self.mel_consistency,
            self.spectral_convergence,
            self.log_spectral_distance,
        )

    def _active(self, trainer: pl.Trainer) -> bool:
        return self.log_on_sanity_check or not trainer.sanity_checking

    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device != self._device:  # e.g. moved after setup
            self.setup(trainer, pl_module, "validate")
        self._samples = []
        self._warned_nonfinite = False
        for metric in self._metrics():
            metric.reset()

    def _metrics(self) -> tuple[Any, ...]:
        return (self.mel_consistency, self.spectral_convergence, self.log_spectral_distance)

    # ------------------------------------------------------------------ capture and score
    def _fetch(self, outputs: Any, batch: Any) -> dict[str, Any]:
        if self.extract is not None:
            data = self.extract(outputs, batch)
            source = "extract(outputs, batch)"
        else:
            data = outputs
            source = "validation_step"
        if not isinstance(data, Mapping):
            raise ValueError(
                f"InversionCallback: {source} returned {type(data).__name__}; expected a dict with"
                f" key {self.mel_key!r} (the predicted mel)"
                + (f" and {self.target_key!r} (the target waveform)" if self.target_key else "")
                + ". Return a dict from validation_step or pass extract=."
            )
        wanted = [
            ("mel_key", self.mel_key),
            ("target_key", self.target_key),
            ("target_mel_key", self.target_mel_key),
            ("lengths_key", self.lengths_key),
        ]
        missing = [(arg, key) for arg, key in wanted if key is not None and key not in data]
        if missing:
            names = ", ".join(f"{arg}={key!r}" for arg, key in missing)
            hint = (
                " (set target_key=None if there is no target waveform)"
                if any(a == "target_key" for a, _ in missing)
                else ""
            )
            raise ValueError(
                f"InversionCallback: {source} has no key {names}{hint}; keys present:"
                f" {sorted(map(str, data))}"
            )
        return dict(data)

    def _prepare(self, data: dict[str, Any]) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
        """Validated (mel, target, target_mel, lengths in samples) on the callback's device."""
        mel = self._as_batch(data[self.mel_key], self.mel_key, 3)
        n_mels = self.config.n_mels
        if mel.shape[-2] != n_mels:
            raise ValueError(
                f"InversionCallback: {self.mel_key!r}: expected shape (batch, n_mels={n_mels},"
                f" frames), got {tuple(mel.shape)}; does the callback's config match the model's?"
            )
        batch = mel.shape[0]
        target = None
        if self.target_key is not None:
            target = self._as_batch(data[self.target_key], self.target_key, 2)
            if target.shape[0] != batch:
                raise ValueError(
                    f"InversionCallback: {self.target_key!r}: expected {batch} items like"
                    f" {self.mel_key!r}, got shape {tuple(target.shape)}"
                )
        target_mel = None
        if self.target_mel_key is not None:
            target_mel = self._as_batch(data[self.target_mel_key], self.target_mel_key, 3)
            if target_mel.shape[0] != batch or target_mel.shape[-2] != n_mels:
                raise ValueError(
                    f"InversionCallback: {self.target_mel_key!r}: expected shape ({batch}, {n_mels},"
                    f" frames), got {tuple(target_mel.shape)}"
                )
        full = target.shape[-1] if target is not None else self.config.num_samples(mel.shape[-1])
        if self.lengths_key is not None:
            name = f"InversionCallback: {self.lengths_key!r}"
            raw = check_lengths(data[self.lengths_key], batch, name).to(self._device)
            if self.lengths_unit == "frames":
                raw = self.config.num_samples(raw)
            lengths = raw.clamp(min=1, max=full)
        else:
            lengths = torch.full((batch,), full, dtype=torch.long, device=self._device)
        return mel, target, target_mel, lengths

    def _as_batch(self, value: Any, key: str, dim: int) -> Tensor:
        if not isinstance(value, Tensor):
            raise ValueError(
                f"InversionCallback: {key!r}: expected a tensor, got {type(value).__name__}"
            )
        x = value.detach()
        if x.dim() == dim + 1 and x.shape[1] == 1:  # (batch, 1, ...) channel dim
            x = x.squeeze(1)
        if x.dim() != dim:
            raise ValueError(
                f"InversionCallback: {key!r}: expected a batched tensor with {dim} dims, got shape"
                f" {tuple(value.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"InversionCallback: {key!r}: got an empty batch")
        if not x.is_floating_point():
            raise ValueError(f"InversionCallback: {key!r}: expected a float tensor, got {x.dtype}")
        if x.dtype not in (torch.float32, torch.float64):
            x = x.float()
        return x.to(self._device)

    def _finite_items(self, x: Tensor, what: str) -> Tensor:
        ok = torch.isfinite(x).flatten(1).all(1)
        if not bool(ok.all()) and not self._warned_nonfinite:
            self._warned_nonfinite = True
            rank_zero_warn(
                f"InversionCallback: {int((~ok).sum())} {what} item(s) contain NaN/Inf; they are"
                " skipped in the scores and sanitised (NaN/Inf -> silence) in the logged audio."
            )
        return ok

    def _sanitise(self, mel: Tensor) -> Tensor:
        silence = self._silence.to(mel)
        mel = torch.where(torch.isfinite(mel), mel, silence)
        return mel.clamp(min=0.0) if self.config.compression == "none" else mel

    @override
    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if dataloader_idx != 0 or not self._active(trainer):
            return
        need_capture = len(self._samples) < self.num_samples
        if not (need_capture or self.score_all_batches):
            return
        mel, target, target_mel, lengths = self._prepare(self._fetch(outputs, batch))
        if not self._convention_checked:
            self._convention_checked = True
            self._check_convention(mel, target, target_mel, lengths)
        if need_capture:
            self._capture(mel, target, target_mel, lengths)
        if self.score_all_batches:
            self._score(mel, target, lengths)

    def _check_convention(
        self, mel: Tensor, target: Tensor | None, target_mel: Tensor | None, lengths: Tensor
    ) -> None:
        """Warn once if the predicted (or target) mel is not what the config computes from the
        target audio (a normalised mel, another preset); never stops training."""
        if target is None or target.shape[-1] < self.config.min_samples:
            return
        ok = torch.isfinite(mel).flatten(1).all(1) & torch.isfinite(target).flatten(1).all(1)
        if not bool(ok.any()):
            return
        with torch.no_grad():
            computed = self.mel_transform(target[ok].to(mel.dtype))
        frames = self._frames(lengths[ok], computed.shape[-1])
        mask = frame_mask(frames, (int(ok.sum()),), computed.shape[-1], computed.device)
        checks = [(mel, prediction_mismatch)]
        if target_mel is not None:
            checks.append((target_mel, target_mel_mismatch))
        for value, judge in checks:
            message = judge(compare_mels(value[ok], computed, self.config, mask))
            if message is not None:
                rank_zero_warn(f"InversionCallback: {message}")

    def _capture(
        self, mel: Tensor, target: Tensor | None, target_mel: Tensor | None, lengths: Tensor
    ) -> None:
        take = min(self.num_samples - len(self._samples), mel.shape[0])
        frames = self._frames(lengths, mel.shape[-1]).tolist()
        for i in range(take):
            n, f = int(lengths[i]), int(frames[i])
            self._samples.append(
                _Sample(
                    mel=mel[i, :, :f].clone(),
                    length=n,
                    target=None if target is None else target[i, :n].clone(),
                    target_mel=None if target_mel is None else target_mel[i, :, :f].clone(),
                )
            )

    def _frames(self, lengths: Tensor, max_frames: int) -> Tensor:
        """Mel frames holding ``lengths`` samples, at most ``max_frames``."""
        return self.config.valid_frames(lengths).clamp(max=max_frames)

    def _score(self, mel: Tensor, target: Tensor | None, lengths: Tensor) -> None:
        ok = self._finite_items(mel, "predicted mel")
        if target is not None:
            ok = ok & torch.isfinite(target).flatten(1).all(1)
        if not bool(ok.all()):
            if not bool(ok.any()):
                return
            mel, lengths = mel[ok], lengths[ok]
            target = None if target is None else target[ok]
        wave = self._invert(mel)
        frames = self._frames(lengths, mel.shape[-1])
        self._score_waves(wave, mel, target, frames)

    def _score_waves(
        self, wave: Tensor, mel: Tensor, target: Tensor | None, frames: Tensor
    ) -> None:
        """Update the metrics with inverted audio ``wave`` of the predicted ``mel``."""
        self.mel_consistency.update(wave, mel, lengths=frames)
        if target is None:
            return
        window = self.inverter.window.to(wave.dtype)
        n = min(wave.shape[-1], target.shape[-1])
        pred_mag = spectrogram_magnitude(stft(wave[..., :n], self.config, window=window))
        tgt_mag = spectrogram_magnitude(
            stft(target[..., :n].to(wave.dtype), self.config, window=window)
        )
        valid = frames.clamp(max=pred_mag.shape[-1])
        self.spectral_convergence.update(pred_mag, tgt_mag, lengths=valid)
        self.log_spectral_distance.update(pred_mag, tgt_mag, lengths=valid)

    # ------------------------------------------------------------------ epoch end
    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer):
            self._samples = []
            return
        sanity = trainer.sanity_checking
        log_media = self.num_samples > 0 and (
            sanity or self.validation_runs % self.every_n_epochs == 0
        )
        if not sanity:
            self.validation_runs += 1
        captured = self._captured_batch() if self._samples else None
        pred_wave = None
        if not self.score_all_batches and captured is not None:
            # every rank scores its own captured samples (no extra collective: metrics sync below)
            pred_wave = self._invert(captured["mel"])
            self._score_waves(
                pred_wave,
                captured["mel"],
                captured["target"],
                self._frames(captured["lengths"], captured["mel"].shape[-1]),
            )
        self._log_scores(pl_module)  # metric sync: runs on every rank
        if log_media and trainer.is_global_zero and captured is not None:
            if pred_wave is None:
                pred_wave = self._invert(captured["mel"])
            self._log_media(trainer, captured, pred_wave, sanity)
        self._samples = []

    def _captured_batch(self) -> dict[str, Any]:
        """Captured samples padded into one batch (mel padded with silence, NaN/Inf sanitised)."""
        frames = max(s.mel.shape[-1] for s in self._samples)
        silence = self._silence.to(device=self._device, dtype=self._samples[0].mel.dtype)
        mel = silence.expand(len(self._samples), -1, frames).clone()
        for i, s in enumerate(self._samples):
            mel[i, :, : s.mel.shape[-1]] = s.mel
        lengths = torch.tensor([s.length for s in self._samples], device=self._device)
        target = None
        if all(s.target is not None for s in self._samples):
            n = max(int(s.target.shape[-1]) for s in self._samples)  # type: ignore[union-attr]
            target = torch.zeros(len(self._samples), n, dtype=mel.dtype, device=self._device)
            for i, s in enumerate(self._samples):
                target[i, : s.target.shape[-1]] = torch.nan_to_num(s.target.to(mel.dtype))  # type: ignore[union-attr]
        target_mel = None
        if all(s.target_mel is not None for s in self._samples):
            target_mel = silence.expand_as(mel).clone()
            for i, s in enumerate(self._samples):
                target_mel[i, :, : s.target_mel.shape[-1]] = s.target_mel  # type: ignore[union-attr]
            target_mel = self._sanitise(target_mel)
        self._finite_items(mel, "captured predicted mel")
        return {
            "mel": self._sanitise(mel),
            "lengths": lengths,
            "target": target,
            "target_mel": target_mel,
        }

    def _invert(self, mel: Tensor) -> Tensor:
        with torch.no_grad():
            return self.inverter(mel)

    def _log_scores(self, pl_module: pl.LightningModule) -> None:
        metrics: list[tuple[str, Any]] = [("mel_consistency_db", self.mel_consistency)]
        if self.target_key is not None:
            metrics += [
                ("spectral_convergence", self.spectral_convergence),
                ("log_spectral_distance", self.log_spectral_distance),
            ]
        for name, metric in metrics:
            value = metric.compute()  # syncs the states across ranks: every rank must call it
            metric.reset()
            if bool(torch.isfinite(value)):  # same verdict on every rank (synced value)
                # identical on all ranks already; sync_dist=True only averages equal numbers
                pl_module.log(
                    f"{self.prefix}{name}", value, on_step=False, on_epoch=True, sync_dist=True
                )

    # ------------------------------------------------------------------ media (global rank zero)
    def _log_media(
        self, trainer: pl.Trainer, captured: dict[str, Any], pred_wave: Tensor, sanity: bool
    ) -> None:
        epoch, step = trainer.current_epoch, trainer.global_step
        if sanity:
            folder = "sanity_check"
        elif epoch in self.logged_epochs:  # several validation runs in one epoch
            folder = f"epoch={epoch}-step={step}"
        else:
            folder = f"epoch={epoch}"
        if self.name is not None:  # two instances never overwrite each other's media
            folder = f"{self.name}/{folder}"
        sinks, problems = media_sinks(trainer.loggers, trainer.default_root_dir, self.save_dir)
        for problem in problems:
            rank_zero_warn(f"InversionCallback: {problem}")
        sr = self.config.sample_rate
        lengths = captured["lengths"].tolist()
        preds = [
            AudioClip(
                "pred",
                k,
                self._to_numpy(pred_wave[k], n),
                sr,
                f"predicted mel {k}, epoch {epoch}, step {step}",
            )
            for k, n in enumerate(lengths)
        ]
        targets: list[AudioClip] = []
        if self.log_targets and not self.references_logged:
            ref = captured["target"]
            if ref is None and captured["target_mel"] is not None:
                ref = self._invert(captured["target_mel"])
            if ref is not None:
                targets = [
                    AudioClip("target", k, self._to_numpy(ref[k], n), sr, f"target {k} (reference)")
                    for k, n in enumerate(lengths)
                ]
        image = None
        if self.log_mel_images and any(s.wants_images for s in sinks):
            image = self._safe_call(
                "matplotlib", "the mel figure", lambda: self._figure(captured, epoch)
            )
        key_prefix = f"{self.prefix}audio/" + ("" if self.name is None else f"{self.name}/")
        any_target_ok = False
        for sink in sinks:
            self._safe_call(
                sink.name,
                "predicted audio",
                lambda s=sink: s.log_audio(preds, key_prefix, step, folder),
            )
            if targets and self._safe_call(
                sink.name,
                "target audio",
                lambda s=sink: (s.log_audio(targets, key_prefix, step, folder), True)[1],
            ):
                any_target_ok = True
            if image is not None and sink.wants_images:
                self._safe_call(
                    sink.name,
                    "the mel figure",
                    lambda s=sink: s.log_image(image, f"{self.prefix}mel", step, folder),
                )
        if any_target_ok:
            self.references_logged = True
        if not sanity:
            self.logged_epochs.append(epoch)

    @staticmethod
    def _safe_call(who: str, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as err:  # never kill training because logging failed
            rank_zero_warn(
                f"InversionCallback: {who} failed to log {what} ({type(err).__name__}: {err});"
                " skipped, training goes on."
            )
            return None

    def _to_numpy(self, wave: Tensor, length: int) -> np.ndarray:
        x = torch.nan_to_num(wave[:length].detach().double(), nan=0.0, posinf=0.0, neginf=0.0)
        if x.shape[-1] < length:
            x = torch.nn.functional.pad(x, (0, length - x.shape[-1]))
        if self.normalize == "peak":
            peak = float(x.abs().max()) if x.numel() else 0.0
            if peak > 0 and math.isfinite(peak):
                x = x * (_PEAK / peak)
        return x.clamp(-1.0, 1.0).float().cpu().numpy()

    def _figure(self, captured: dict[str, Any], epoch: int) -> Any:
        preds = [m.cpu().float().numpy() for m in captured["mel"]]
        target_mel = captured["target_mel"]
        if target_mel is None and captured["target"] is not None:
            with torch.no_grad():
                target_mel = self.mel_transform(captured["target"])
        targets: list[np.ndarray | None] = (
            [None] * len(preds)
            if target_mel is None
            else [m.cpu().float().numpy() for m in target_mel]
        )
        figure = mel_figure(preds, targets, f"mels, epoch {epoch}")
        return None if figure is None else figure_to_array(figure)
