"""``InversionCallback``: hear and score the model's predicted mels every validation epoch.

The callback class holds the Lightning hooks and reads top-down; the work is delegated:

* :mod:`specinv_lightning._callback_batch` - batch parsing (``parse_items`` ->
  :class:`~specinv_lightning._callback_batch.ValidationItems`);
* :mod:`specinv_lightning._callback_buffer` - the captured items (``CaptureBuffer``);
* :mod:`specinv_lightning._callback_scores` - the scores, one torchmetrics ``MetricCollection``
  (``InversionScores``);
* :mod:`specinv_lightning.loggers` - media: one ``MediaSink`` per logger, the mel figure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torchmetrics import Metric, MetricCollection
from typing_extensions import override

from specinv_lightning._callback_batch import ItemKeys, ValidationItems, parse_items
from specinv_lightning._callback_buffer import CaptureBuffer, CapturedBatch
from specinv_lightning._callback_scores import InversionScores, as_metric_dict
from specinv_lightning.config import MelConfig
from specinv_lightning.functional._guard import (
    compare_mels,
    prediction_mismatch,
    target_mel_mismatch,
)
from specinv_lightning.functional.compression import compressed_floor, decompress
from specinv_lightning.functional.metrics import frame_mask
from specinv_lightning.inverse import MelInverter, inverter_for
from specinv_lightning.loggers import (
    AudioClip,
    MediaSink,
    clip_audio,
    figure_to_array,
    media_sinks,
    mel_figure,
    publish,
)
from specinv_lightning.mel import MelSpectrogram

__all__ = ["InversionCallback"]

_NORMALIZE = ("peak", None)
Generate = Callable[[pl.LightningModule, Any], Any]


class InversionCallback(Callback):
    r"""Invert the model's predicted mels every validation epoch: log audio and inversion scores.

    **Where the mels come from.** By default ``validation_step`` returns a dict holding the
    predicted (compressed, as the model outputs it) mel ``(batch, n_mels, frames)`` under
    ``mel_key`` (or returns that mel tensor itself). For a model whose ``validation_step`` returns
    a loss, ``None`` or anything else (a diffusion or flow-matching model whose mels come from a
    sampler), pass ``generate(pl_module, batch) -> mel`` (or a dict like the validation outputs):
    it is called under ``torch.no_grad()`` in eval mode, **only for the batches that hold captured
    or scored items**, and its result replaces the validation outputs. The target waveform
    (``target_key``), target mel (``target_mel_key``) and lengths (``lengths_key``) are looked up
    in the outputs first, then in the batch (when it is a dict); the predicted mel only in the
    outputs.

    **Score (bounded).** The first ``score_items`` validation items of each epoch (the same items
    every epoch, with an unshuffled loader, so the curves are comparable; ``None``: all) are
    inverted, batched on the device with :class:`~specinv_lightning.MelInverter` (``n_iter``
    iterations, no grad), and scored, all in dB: ``<prefix>mel_consistency_db`` (does the audio
    reproduce the predicted mel) and, with a target waveform, ``<prefix>spectral_convergence_db``
    and ``<prefix>log_spectral_distance_db`` (inverted audio's STFT magnitude against the
    target's), plus the ``metrics`` you add (updated with ``(inverted, target)`` waveforms).
    Under DDP the items are split across ranks (rank ``r`` scores its first
    ``len(range(r, score_items, world_size))`` items: with Lightning's ``DistributedSampler``
    exactly the first ``score_items`` items overall) and the metric states are summed, so the
    logged values equal a single-process run over the same items. The cost is bounded whatever
    the size of the validation set.

    **Reference.** The target's own mel (``target_mel_key``, else the mel the config computes
    from the target waveform) is inverted with the same inverter: logged once as ``ref_<k>`` audio
    next to ``target_<k>``, and scored once as ``<prefix>ref_spectral_convergence_db`` (computed
    at the first validation epoch over the scored items, cached in the checkpoint, logged every
    epoch as a flat line): the difference between the two spectral-convergence curves is the
    model's error, the reference curve the inversion's.

    **Log.** Every ``every_n_epochs``-th validation run (the first one included; never during the
    sanity check unless ``log_on_sanity_check``), on global rank zero only, the first
    ``num_samples`` items' audio goes to every logger of the Trainer through one
    :class:`~specinv_lightning.loggers.MediaSink` each (TensorBoard, W&B, MLflow, Comet, Neptune,
    and wav files for CSVLogger, any other logger or none), plus your ``sinks``; a mel figure
    (prediction, target, their difference; time and frequency axes, colour bars) too. Items that
    were scored are not inverted twice.

    **Mismatched config.** At the first parsed batch with a target waveform, the predicted mel's
    level and range are compared with the mel the config computes from the target audio; if they
    are far apart a warning names the likely cause and suggests ``mel_mean``/``mel_std``. With
    ``target_mel_key`` the given target mel is checked too. Once per callback.

    **Never kills training.** A logger, sink or extra metric that raises, a non-finite predicted
    mel, or a ``generate`` that fails after having worked once gives a warning and training goes
    on. Configuration errors raise ``ValueError`` in ``__init__`` or at the first validation batch.

    Args:
        config: The mel transform the model predicts (``MelConfig``, preset name or mapping);
            may be omitted when ``inverter`` is given.
        num_samples: Number of items whose audio is logged.
        every_n_epochs: Log audio at every n-th validation run.
        n_iter: Griffin-Lim iterations.
        mel_consistent: Mel-consistent Griffin-Lim (see :class:`~specinv_lightning.MelInverter`).
        mel_key: Key of the predicted mel in the validation (or ``generate``) outputs.
        target_key: Key of the target waveform ``(batch, samples)``; ``None`` when there is none
            (then only mel consistency is scored).
        target_mel_key: Optional key of the target mel (same compression): shown in the mel
            figure and inverted as the reference.
        lengths_key: Optional key of the valid length of each item, for trimming and masking
            padded items; in samples (``lengths_unit="samples"``) or mel frames (``"frames"``).
        lengths_unit: ``"samples"`` or ``"frames"``.
        generate: ``generate(pl_module, batch) -> mel or dict``, used instead of the validation
            outputs (see above).
        score_items: Number of validation items scored each epoch (``None``: all, ``0``: none).
        metrics: Extra torchmetrics metrics, ``{"stoi": ShortTimeObjectiveIntelligibility(16000)}``
            or a ``MetricCollection``, updated with ``(inverted, target)`` waveforms on the scored
            items and logged as ``<prefix><name>``; needs ``target_key``.
        sinks: Extra :class:`~specinv_lightning.loggers.MediaSink` instances receiving the clips.
        log_targets: Log the target waveform once (``target_<k>``).
        log_reference: Invert, log (``ref_<k>``) and score the target's mel once.
        save_dir: Also write wav files under ``<save_dir>/audio/epoch=<E>/``.
        normalize: ``"peak"`` (scale each clip to a peak of 0.99) or ``None`` (clip into [-1, 1]).
        prefix: Prefix of every logged key.
        log_on_sanity_check: Also score and log during the sanity check.
        log_mel_images: Log the mel figure (needs matplotlib).
        inverter_kwargs: Extra :class:`~specinv_lightning.MelInverter` arguments. The initial
            phase is ``"pghi-fast"`` (per item, so scores do not depend on batching) unless
            ``inverter_kwargs={"init": "pghi"}`` (1-5 dB more consistent on speech, about 11 dB on
            music, at about 1.9x the callback's CPU time). The callback's inverter runs the eager kernels (``fused=False``) unless
            ``inverter_kwargs={"fused": None}`` (compile where possible): at a bounded number of
            items, compiling costs more than it saves.
        name: Identifies this instance in checkpoints, media keys and folders; two instances
            need different names and different ``prefix``.
        inverter: A ready :class:`~specinv_lightning.MelInverter` instead of ``config``,
            ``n_iter``, ``mel_consistent`` and ``inverter_kwargs``.

    Example:
        >>> from lightning.pytorch import Trainer
        >>> from specinv_lightning import InversionCallback
        >>> cb = InversionCallback("hifigan", num_samples=2, n_iter=16, score_items=32)
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
        generate: Generate | None = None,
        score_items: int | None = 64,
        metrics: Mapping[str, Metric] | MetricCollection | None = None,
        sinks: Sequence[MediaSink] | None = None,
        log_targets: bool = True,
        log_reference: bool = True,
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
        _check_counts(
            num_samples=num_samples, every_n_epochs=every_n_epochs, score_items=score_items
        )
        _check_keys(mel_key, target_key, target_mel_key, lengths_key)
        if lengths_unit not in ("samples", "frames"):
            raise ValueError(f"lengths_unit: expected 'samples' or 'frames', got {lengths_unit!r}")
        if generate is not None and not callable(generate):
            raise ValueError(
                f"generate: expected a callable (pl_module, batch) -> mel or dict, got {generate!r}"
            )
        if normalize not in _NORMALIZE:
            raise ValueError(f"normalize: expected 'peak' or None, got {normalize!r}")
        if not isinstance(prefix, str):
            raise ValueError(f"prefix: expected a string, got {prefix!r}")
        self.sinks = list(sinks or [])
        for sink in self.sinks:
            if not isinstance(sink, MediaSink):
                raise ValueError(f"sinks: expected MediaSink instances, got {type(sink).__name__}")
        self.num_samples = num_samples
        self.every_n_epochs = every_n_epochs
        self.keys = ItemKeys(mel_key, target_key, target_mel_key, lengths_key, lengths_unit)
        self.mel_key = mel_key
        self.target_key = target_key
        self.generate = generate
        self.score_items = score_items
        self.log_targets = log_targets
        self.log_reference = log_reference
        self.save_dir = None if save_dir is None else os.fspath(save_dir)
        self.normalize = normalize
        self.prefix = prefix
        self.log_on_sanity_check = log_on_sanity_check
        self.log_mel_images = log_mel_images
        self.name = name

        self.mel_transform = MelSpectrogram(self.config)
        self.scores = InversionScores(
            self.config, prefix, target_key is not None, as_metric_dict(metrics)
        )
        self._silence = compressed_floor(self.config, torch.float32)  # (n_mels, 1)

        # persisted state
        self.references_logged = False
        self.reference_score: float | None = None
        self.validation_runs = 0
        self.logged_epochs: list[int] = []
        # per-epoch state
        self._buffer = CaptureBuffer(num_samples)
        self._logging = False  # this rank logs media this epoch
        self._quota = 0  # items this rank scores this epoch
        self._scored = 0
        self._reference_pending = False  # the reference score is computed this epoch
        self._generated_once = False
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
        if inverter_kwargs and {"config", "n_iter", "mel_consistent"} & set(inverter_kwargs):
            raise ValueError(
                "inverter_kwargs: pass config, n_iter and mel_consistent as InversionCallback"
                f" arguments, got keys {sorted(inverter_kwargs)}"
            )
        # eager Griffin-Lim kernels unless asked: at a bounded number of items compiling the fused
        # ones (seconds, once per process; ~20 s cold on a 2-core CPU) costs more than it saves.
        # The initial phase without the peak-model fit: with it a CPU validation costs about
        # 1.7x as much (11.5% of the example's fit instead of 7.5%), plus its probe's 0.2 s
        defaults = {"fused": False, "init": "pghi-fast"}
        return inverter_for(cls, inverter, config, shorthand, inverter_kwargs, defaults)

    # ------------------------------------------------------------------ Lightning plumbing
    @property
    @override
    def state_key(self) -> str:
        return self._generate_state_key(mel_key=self.mel_key, name=self.name)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {
            "references_logged": self.references_logged,
            "reference_score": self.reference_score,
            "validation_runs": self.validation_runs,
            "logged_epochs": list(self.logged_epochs),
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.references_logged = bool(state_dict.get("references_logged", False))
        score = state_dict.get("reference_score")
        self.reference_score = None if score is None else float(score)
        self.validation_runs = int(state_dict.get("validation_runs", 0))
        self.logged_epochs = [int(e) for e in state_dict.get("logged_epochs", [])]

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._device = pl_module.device
        for module in (self.inverter, self.mel_transform, self.scores):
            module.to(self._device)

    def _active(self, trainer: pl.Trainer) -> bool:
        return self.log_on_sanity_check or not trainer.sanity_checking

    # ------------------------------------------------------------------ epoch start
    @override
    def on_validation_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device != self._device:  # e.g. moved after setup
            self.setup(trainer, pl_module, "validate")
        self._buffer.clear()
        self.scores.metrics.reset()
        self.scores.reference.reset()
        self._warned_nonfinite = False
        sanity = trainer.sanity_checking
        self._logging = (
            self.num_samples > 0
            and trainer.is_global_zero
            and (sanity or self.validation_runs % self.every_n_epochs == 0)
        )
        self._quota = self._rank_quota(trainer.global_rank, trainer.world_size)
        self._scored = 0
        self._reference_pending = (
            self.log_reference
            and self.target_key is not None
            and self.reference_score is None
            and self.score_items != 0
            and not sanity  # a sanity check sees only a few batches
        )

    def _rank_quota(self, rank: int, world_size: int) -> int:
        """Items this rank scores: its share of the first ``score_items`` items (round robin)."""
        if self.score_items is None:
            return 2**62
        return len(range(rank, self.score_items, world_size))

    # ------------------------------------------------------------------ each batch
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
        capture = self._buffer.wanted if self._logging else 0
        score = self._quota - self._scored
        if capture <= 0 and score <= 0:
            return  # this batch holds no item we need: no generate, no inversion
        items = self._items(pl_module, outputs, batch)
        if items is None:
            return
        if not self._convention_checked:
            self._convention_checked = True
            self._check_convention(items)
        pred_wave = ref_wave = None
        if score > 0:
            scored = items.head(score)
            self._scored += len(scored)
            pred_wave, ref_wave = self._score(scored)
        if capture > 0:
            self._buffer.add(items, pred_wave, ref_wave)

    def _items(
        self, pl_module: pl.LightningModule, outputs: Any, batch: Any
    ) -> ValidationItems | None:
        if self.generate is None:
            return parse_items(outputs, batch, self.keys, self.config, self._device)
        try:
            generated = self._call_generate(pl_module, batch)
        except Exception as err:
            if not self._generated_once:
                raise  # fails from the start: a configuration or programming error
            rank_zero_warn(
                f"InversionCallback: generate(pl_module, batch) failed ({type(err).__name__}:"
                f" {err}); this batch is skipped, training goes on."
            )
            return None
        self._generated_once = True
        source = "generate(pl_module, batch)"
        return parse_items(generated, batch, self.keys, self.config, self._device, source)

    def _call_generate(self, pl_module: pl.LightningModule, batch: Any) -> Any:
        """``generate`` under no-grad, in eval mode (the module's mode is restored)."""
        assert self.generate is not None
        training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                return self.generate(pl_module, batch)
        finally:
            pl_module.train(training)

    def _score(self, items: ValidationItems) -> tuple[Tensor | None, Tensor | None]:
        """Invert and score ``items``; returns their inverted prediction and reference (or None
        where some items were non-finite and skipped)."""
        ok = self._usable_items(items.mel, "predicted mel")
        if items.target is not None:
            ok = ok & torch.isfinite(items.target).flatten(1).all(1)
        every = bool(ok.all())
        if not every:
            if not bool(ok.any()):
                return None, None
            items = items.select(ok)
        pred_wave = self._invert(items.mel)
        self.scores.update(pred_wave, items)
        ref_wave = None
        if self._reference_pending:
            ref_wave = self._invert(self._reference_mel(items.target, items.target_mel))
            self.scores.update_reference(ref_wave, items)
        return (pred_wave, ref_wave) if every else (None, None)

    def _reference_mel(self, target: Tensor | None, target_mel: Tensor | None) -> Tensor:
        if target_mel is not None:
            return self._sanitise(target_mel)
        assert target is not None
        with torch.no_grad():
            return self.mel_transform(torch.nan_to_num(target))

    def _invert(self, mel: Tensor) -> Tensor:
        with torch.no_grad():
            return self.inverter(mel)

    def _usable_items(self, mel: Tensor, what: str) -> Tensor:
        """Items the inverter can take: finite, no overflow when decompressed, in the config's
        range (>= 0 for a linear mel), at least one window long. The others are treated like NaN
        predictions: a warning once, skipped in the scores, silence in the media."""
        ok = _invertible(mel, self.config)
        if not bool(ok.all()) and not self._warned_nonfinite:
            self._warned_nonfinite = True
            short = mel.shape[-1] < self.config.min_frames
            why = (
                f"are shorter than one window ({mel.shape[-1]} < {self.config.min_frames} frames)"
                if short
                else "contain NaN/Inf, values that overflow when decompressed, or values outside"
                " the config's range"
            )
            rank_zero_warn(
                f"InversionCallback: {int((~ok).sum())} {what} item(s) {why}; they are skipped in"
                " the scores and logged as silence. Training goes on."
            )
        return ok

    def _sanitise(self, mel: Tensor) -> Tensor:
        """Items the inverter cannot take become silence, and a mel shorter than one window is
        padded with silence to one window (media are trimmed to the true length anyway)."""
        shape = mel.shape
        mel = mel.reshape(-1, *shape[-2:])  # (items, n_mels, frames), for 2-D mels too
        silence = self._silence.to(mel)
        ok = _invertible(mel, self.config, check_length=False)
        mel = torch.where(ok[:, None, None], torch.nan_to_num(mel), silence)
        short = self.config.min_frames - mel.shape[-1]
        if short > 0:
            mel = torch.cat([mel, silence.expand(mel.shape[0], -1, short)], dim=-1)
        return mel.reshape(*shape[:-1], mel.shape[-1])

    def _check_convention(self, items: ValidationItems) -> None:
        """Warn once if the predicted (or target) mel is not what the config computes from the
        target audio (a normalised mel, another preset); never stops training."""
        mel, target, target_mel = items.mel, items.target, items.target_mel
        if target is None or target.shape[-1] < self.config.min_samples:
            return
        ok = torch.isfinite(mel).flatten(1).all(1) & torch.isfinite(target).flatten(1).all(1)
        if not bool(ok.any()):
            return
        with torch.no_grad():
            computed = self.mel_transform(target[ok].to(mel.dtype))
        frames = self.config.valid_frames(items.lengths[ok]).clamp(max=computed.shape[-1])
        mask = frame_mask(frames, (int(ok.sum()),), computed.shape[-1], computed.device)
        checks = [(mel, prediction_mismatch)]
        if target_mel is not None:
            checks.append((target_mel, target_mel_mismatch))
        for value, judge in checks:
            message = judge(compare_mels(value[ok], computed, self.config, mask))
            if message is not None:
                rank_zero_warn(f"InversionCallback: {message}")

    # ------------------------------------------------------------------ epoch end
    @override
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._active(trainer):
            self._buffer.clear()
            return
        sanity = trainer.sanity_checking
        if not sanity:
            self.validation_runs += 1
        self._log_scores(pl_module)  # metric sync: runs on every rank
        if self._logging and len(self._buffer):
            self._log_media(trainer, sanity)
        self._buffer.clear()

    def _log_scores(self, pl_module: pl.LightningModule) -> None:
        values = self.scores.compute()  # syncs the states across ranks: every rank calls it
        if self._reference_pending:
            self.reference_score = self.scores.compute_reference()
        if self.reference_score is not None:
            values[self.scores.reference_key] = torch.tensor(self.reference_score)
        for key, value in values.items():
            # identical on all ranks already; sync_dist=True only averages equal numbers
            pl_module.log(key, value, on_step=False, on_epoch=True, sync_dist=True)

    # ------------------------------------------------------------------ media (global rank zero)
    def _log_media(self, trainer: pl.Trainer, sanity: bool) -> None:
        epoch, step = trainer.current_epoch, trainer.global_step
        folder = self._folder(epoch, step, sanity)
        captured = self._buffer.padded(self._silence)
        usable = self._usable_items(captured.mel, "captured predicted mel").tolist()
        captured.mel = self._sanitise(captured.mel)
        sr, lengths = self.config.sample_rate, captured.lengths.tolist()

        def clips(kind: str, waves: list[Tensor], caption: str) -> list[AudioClip]:
            return [
                AudioClip(kind, k, clip_audio(w, n, self.normalize), sr, caption.format(k=k))
                for k, (w, n) in enumerate(zip(waves, lengths, strict=True))
            ]

        # an item the inverter cannot take is logged as true silence (not normalised noise)
        preds = [
            w if ok else torch.zeros_like(w)
            for w, ok in zip(self._pred_waves(captured), usable, strict=True)
        ]
        groups = [clips("pred", preds, f"predicted mel {{k}}, epoch {epoch}")]
        if not self.references_logged:
            if self.log_targets and captured.target is not None:
                groups.append(clips("target", list(captured.target), "target {k}"))
            if self.log_reference and (
                captured.target is not None or captured.target_mel is not None
            ):
                waves = self._reference_waves(captured)
                groups.append(
                    clips("ref", waves, "target mel {k} inverted (Griffin-Lim reference)")
                )
        sinks, problems = media_sinks(
            trainer.loggers, trainer.default_root_dir, self.save_dir, self.sinks
        )
        for problem in problems:
            rank_zero_warn(f"InversionCallback: {problem}")
        image = None
        if self.log_mel_images and any(s.wants_images for s in sinks):
            image = self._figure(captured, epoch)
        key_prefix = f"{self.prefix}audio/" + ("" if self.name is None else f"{self.name}/")
        delivered = publish(
            sinks, groups, image, key_prefix, f"{self.prefix}mel", step, folder, _warn
        )
        if delivered & {"target", "ref"}:
            self.references_logged = True
        if not sanity:
            self.logged_epochs.append(epoch)

    def _folder(self, epoch: int, step: int, sanity: bool) -> str:
        if sanity:
            folder = "sanity_check"
        elif epoch in self.logged_epochs:  # several validation runs in one epoch
            folder = f"epoch={epoch}-step={step}"
        else:
            folder = f"epoch={epoch}"
        # two instances never overwrite each other's media
        return folder if self.name is None else f"{self.name}/{folder}"

    def _pred_waves(self, captured: CapturedBatch) -> list[Tensor]:
        """The captured items' inverted predictions: from the scoring where it ran, else now."""
        known = [s.pred_wave for s in self._buffer.items]
        return _fill(known, lambda idx: self._invert(captured.mel[idx]))

    def _reference_waves(self, captured: CapturedBatch) -> list[Tensor]:
        known = [s.ref_wave for s in self._buffer.items]

        def invert(idx: list[int]) -> Tensor:
            target = None if captured.target is None else captured.target[idx]
            target_mel = None if captured.target_mel is None else captured.target_mel[idx]
            return self._invert(self._reference_mel(target, target_mel))

        return _fill(known, invert)

    def _figure(self, captured: CapturedBatch, epoch: int) -> Any:
        def render() -> Any:
            preds = [m.cpu().float().numpy() for m in captured.mel]
            target_mel = captured.target_mel
            if target_mel is None and captured.target is not None:
                with torch.no_grad():
                    target_mel = self.mel_transform(captured.target)
            targets = (
                [None] * len(preds)
                if target_mel is None
                else [self._sanitise(m).cpu().float().numpy() for m in target_mel]
            )
            frames = self.config.valid_frames(captured.lengths).tolist()
            preds = [p[:, :f] for p, f in zip(preds, frames, strict=True)]
            targets = [
                None if t is None else t[:, :f] for t, f in zip(targets, frames, strict=True)
            ]
            figure = mel_figure(preds, targets, f"mels, epoch {epoch}", self.config)
            return None if figure is None else figure_to_array(figure)

        try:
            return render()
        except Exception as err:  # never kill training because a figure failed
            _warn(f"matplotlib failed to render the mel figure ({type(err).__name__}: {err})")
            return None


def _invertible(mel: Tensor, config: MelConfig, check_length: bool = True) -> Tensor:
    """Per item of ``(batch, n_mels, frames)``: whether :class:`MelInverter` accepts it."""
    finite = torch.isfinite(mel)
    ok = finite.flatten(1).all(1)
    lin = decompress(torch.where(finite, mel, torch.zeros_like(mel)), config)
    ok = ok & torch.isfinite(lin).flatten(1).all(1)
    if config.compression == "none" and not config.normalised:
        ok = ok & (lin >= 0).flatten(1).all(1)
    if check_length and mel.shape[-1] < config.min_frames:
        ok = torch.zeros_like(ok)
    return ok


def _warn(message: str) -> None:
    rank_zero_warn(f"InversionCallback: {message}")


def _fill(known: list[Tensor | None], compute: Callable[[list[int]], Tensor]) -> list[Tensor]:
    """``known`` with its ``None`` entries computed in one batch by ``compute(indices)``."""
    missing = [i for i, w in enumerate(known) if w is None]
    out = list(known)
    if missing:
        for i, wave in zip(missing, compute(missing), strict=True):
            out[i] = wave
    return out  # type: ignore[return-value]


def _check_counts(**values: int | None) -> None:
    lows = {"num_samples": 0, "every_n_epochs": 1, "score_items": 0}
    for arg, value in values.items():
        if arg == "score_items" and value is None:
            continue
        low = lows[arg]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            none = " or None" if arg == "score_items" else ""
            raise ValueError(f"{arg}: expected an integer >= {low}{none}, got {value!r}")


def _check_keys(
    mel_key: str, target_key: str | None, target_mel_key: str | None, lengths_key: str | None
) -> None:
    if not isinstance(mel_key, str) or not mel_key:
        raise ValueError(f"mel_key: expected a non-empty string, got {mel_key!r}")
    for arg, value in (
        ("target_key", target_key),
        ("target_mel_key", target_mel_key),
        ("lengths_key", lengths_key),
    ):
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{arg}: expected a non-empty string or None, got {value!r}")
