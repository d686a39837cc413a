"""The scores of :class:`~specinv_lightning.InversionCallback`: one torchmetrics ``MetricCollection``.

Built-in scores, all in dB (lower is better):

* ``mel_consistency_db``: does the inverted audio reproduce the predicted mel
  (:class:`~specinv_lightning.MelConsistency`);
* with a target waveform, ``spectral_convergence_db`` and ``log_spectral_distance_db`` of the
  inverted audio's STFT magnitude against the target's.

Extra metrics (any torchmetrics ``Metric`` taking ``update(preds, target)`` waveforms, e.g.
``ShortTimeObjectiveIntelligibility``) are updated with ``(inverted, target)``, each item trimmed
to its valid length. Every state is summed across DDP ranks at ``compute()``, so a DDP run logs
what one process logs over the same items. The reference score (the target's own mel inverted with
the same inverter, ``ref_spectral_convergence_db``) has its own metric: it is computed once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn
from torchmetrics import Metric, MetricCollection

from specinv_lightning._callback_batch import ValidationItems
from specinv_lightning.config import MelConfig
from specinv_lightning.functional.stft import spectrogram_magnitude, stft
from specinv_lightning.metrics import LogSpectralDistance, MelConsistency, SpectralConvergence

__all__ = ["BUILTIN_SCORES", "InversionScores", "as_metric_dict"]

BUILTIN_SCORES = ("mel_consistency_db", "spectral_convergence_db", "log_spectral_distance_db")
REFERENCE_SCORE = "ref_spectral_convergence_db"


def as_metric_dict(metrics: Mapping[str, Metric] | MetricCollection | None) -> dict[str, Metric]:
    """The user's extra metrics as ``{name: Metric}`` (a ``MetricCollection`` keeps its names,
    prefix and postfix included).

    Raises:
        ValueError: naming ``metrics`` for anything else, or a name taken by a built-in score.
    """
    if metrics is None:
        return {}
    if isinstance(metrics, MetricCollection):
        found = dict(metrics.items(keep_base=False, copy_state=False))
    elif isinstance(metrics, Mapping):
        found = dict(metrics)
    else:
        raise ValueError(
            "metrics: expected a dict of torchmetrics Metrics or a MetricCollection, got"
            f" {type(metrics).__name__}"
        )
    for name, metric in found.items():
        if not isinstance(name, str) or not name or not isinstance(metric, Metric):
            raise ValueError(
                f"metrics: expected non-empty string names and torchmetrics Metric values, got"
                f" {name!r}: {type(metric).__name__}"
            )
        if name in (*BUILTIN_SCORES, REFERENCE_SCORE):
            raise ValueError(f"metrics: {name!r} is a built-in score; choose another name")
    return found


class InversionScores(nn.Module):
    """Built-in and extra scores of the inverted audio, in one ``MetricCollection``.

    Args:
        config: The mel transform.
        prefix: Prefix of every key (``"val/"``).
        with_target: Whether there is a target waveform (spectral scores, extra metrics).
        extra: Extra metrics, ``{name: Metric}`` (see :func:`as_metric_dict`).
    """

    def __init__(
        self, config: MelConfig, prefix: str, with_target: bool, extra: Mapping[str, Metric]
    ) -> None:
        super().__init__()
        if extra and not with_target:
            raise ValueError(
                f"metrics: {sorted(extra)} compare the inverted audio with the target waveform;"
                " they need target_key"
            )
        self.config = config
        self.prefix = prefix
        self.with_target = with_target
        builtin: dict[str, Metric] = {"mel_consistency_db": MelConsistency(config)}
        if with_target:
            builtin["spectral_convergence_db"] = SpectralConvergence(db=True)
            builtin["log_spectral_distance_db"] = LogSpectralDistance()
        self.extra_names = list(extra)
        try:
            self.metrics = MetricCollection(
                {**builtin, **extra}, prefix=prefix, compute_groups=False
            )
        except (KeyError, ValueError) as err:  # e.g. a name that is a MetricCollection method
            raise ValueError(f"metrics: {err}; choose other names") from err
        self.reference = SpectralConvergence(db=True)
        self.reference_key = f"{prefix}{REFERENCE_SCORE}"
        self._failed: set[str] = set()

    def _metric(self, name: str) -> Metric:
        return dict(self.metrics.items(keep_base=True, copy_state=False))[name]

    @property
    def window(self) -> Tensor:
        return self._metric("mel_consistency_db").transform.window  # type: ignore[return-value]

    def _magnitudes(self, wave: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
        window = self.window.to(wave.dtype)
        n = min(wave.shape[-1], target.shape[-1])
        pred = spectrogram_magnitude(stft(wave[..., :n], self.config, window=window))
        tgt = spectrogram_magnitude(
            stft(target[..., :n].to(wave.dtype), self.config, window=window)
        )
        return pred, tgt

    def update(self, wave: Tensor, items: ValidationItems) -> None:
        """Add the scores of the inverted audio ``wave`` of ``items`` (all finite)."""
        self._metric("mel_consistency_db").update(wave, items.mel, lengths=items.frames)
        if items.target is None:
            return
        pred, tgt = self._magnitudes(wave, items.target)
        frames = items.frames.clamp(max=pred.shape[-1])
        self._metric("spectral_convergence_db").update(pred, tgt, lengths=frames)
        self._metric("log_spectral_distance_db").update(pred, tgt, lengths=frames)
        for name in self.extra_names:
            self._update_extra(name, wave, items.target, items.lengths)

    def _update_extra(self, name: str, wave: Tensor, target: Tensor, lengths: Tensor) -> None:
        metric = self._metric(name)
        target = target.to(wave.dtype)
        try:
            if bool((lengths == wave.shape[-1]).all()) and target.shape[-1] == wave.shape[-1]:
                metric.update(wave, target)
                return
            for i, n in enumerate(lengths.tolist()):  # each item at its own valid length
                n = min(int(n), wave.shape[-1], target.shape[-1])
                metric.update(wave[i : i + 1, :n], target[i : i + 1, :n])
        except Exception as err:  # a user metric must not stop training
            self._warn_once(name, f"update failed ({type(err).__name__}: {err})")

    def update_reference(self, ref_wave: Tensor, items: ValidationItems) -> None:
        """Add the reference score: the inverted target mel ``ref_wave`` against the target."""
        if items.target is None:
            return
        pred, tgt = self._magnitudes(ref_wave, items.target)
        self.reference.update(pred, tgt, lengths=items.frames.clamp(max=pred.shape[-1]))

    def compute(self) -> dict[str, Tensor]:
        """Every score (synced across ranks: every rank must call it), then reset.

        Returns the finite scalar values by key (a metric returning a dict gives
        ``<key>/<entry>``); a metric that fails warns once and is left out.
        """
        out: dict[str, Tensor] = {}
        for key, metric in self.metrics.items(keep_base=False, copy_state=False):
            try:
                value = metric.compute()
            except Exception as err:
                self._warn_once(key, f"compute failed ({type(err).__name__}: {err})")
                value = None
            finally:
                metric.reset()
            out.update(_scalars(key, value))
        return out

    def compute_reference(self) -> float | None:
        """The synced reference score (every rank must call it), then reset; None without items."""
        value = self.reference.compute()
        self.reference.reset()
        value = float(value)
        return value if value == value and abs(value) != float("inf") else None

    def _warn_once(self, name: str, what: str) -> None:
        if name not in self._failed:
            self._failed.add(name)
            rank_zero_warn(
                f"InversionCallback: metric {name!r}: {what}; skipped, training goes on."
            )


def _scalars(key: str, value: Any) -> dict[str, Tensor]:
    if isinstance(value, Mapping):
        out: dict[str, Tensor] = {}
        for k, v in value.items():
            out.update(_scalars(f"{key}/{k}", v))
        return out
    if isinstance(value, Tensor) and value.numel() == 1 and bool(torch.isfinite(value)):
        return {key: value.reshape(()).float()}
    return {}
