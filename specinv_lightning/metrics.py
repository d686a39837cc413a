"""torchmetrics classes over :mod:`specinv_lightning.functional.metrics`, synced across DDP ranks.

Each metric keeps two states, ``total`` (sum of the per-item values) and ``count`` (number of
items), both reduced with ``dist_reduce_fx="sum"``; ``compute()`` returns ``total / count``: the
mean over all items seen on all ranks, equal to a single-process run over the same data however it
was batched or sharded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from specinv_lightning.config import MelConfig
from specinv_lightning.functional.metrics import (
    LSD_EPS,
    log_spectral_distance,
    mel_consistency,
    spectral_convergence,
)
from specinv_lightning.mel import MelSpectrogram

__all__ = ["SpectralConvergence", "LogSpectralDistance", "MelConsistency"]


class _PerItemMean(Metric):
    """Mean of per-item values: states ``total`` and ``count``, both summed across ranks."""

    full_state_update: bool = False
    is_differentiable: bool = True
    higher_is_better: bool = False

    total: Tensor
    count: Tensor

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state(
            "total", default=torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def _accumulate(self, values: Tensor) -> None:
        self.total = self.total + values.sum().to(self.total.dtype)
        self.count = self.count + values.numel()

    def compute(self) -> Tensor:
        """Mean of all per-item values seen so far (NaN before the first update)."""
        return (self.total / self.count).to(torch.get_default_dtype())

    def plot(self, val: Tensor | Sequence[Tensor] | None = None, ax: Any = None) -> Any:
        """Plot one value or a sequence of values (needs matplotlib).

        Args:
            val: Output(s) of ``compute``/``forward``; ``None`` plots the current ``compute()``.
            ax: Optional matplotlib axis.

        Returns:
            ``(figure, axis)``.
        """
        return self._plot(val, ax)


class SpectralConvergence(_PerItemMean):
    r"""Spectral convergence :math:`\|P - T\|_F / \|T\|_F`, per item over ``(freq, frames)``.

    ``compute()`` is the mean of the per-item ratios (or of their :math:`20\log_{10}` with
    ``db=True``) over every item seen on every rank. auraloss' ``SpectralConvergenceLoss`` computes
    one ratio over the whole batch instead, so the two differ unless the batch holds one item.

    Inputs to ``update(preds, target, lengths=None)``:
        - ``preds``: magnitudes (or complex spectrograms) ``(..., freq, frames)``;
        - ``target``: same shape, dtype and device;
        - ``lengths``: optional valid frames per item, shape ``preds.shape[:-2]`` or flattened.

    Args:
        db: Score each item in dB.
        **kwargs: torchmetrics ``Metric`` options (``sync_on_compute``, ``dist_sync_fn``, ...).

    Example:
        >>> import torch
        >>> from specinv_lightning import SpectralConvergence
        >>> metric = SpectralConvergence()
        >>> target = torch.ones(2, 4, 5)
        >>> metric.update(target * torch.tensor([1.5, 1.0])[:, None, None], target)
        >>> round(float(metric.compute()), 4)  # mean of the per-item ratios 0.5 and 0.0
        0.25
    """

    def __init__(self, db: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.db = bool(db)

    def update(
        self, preds: Tensor, target: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> None:
        """Add the per-item values of a batch."""
        self._accumulate(
            spectral_convergence(preds, target, db=self.db, reduction="none", lengths=lengths)
        )


class LogSpectralDistance(_PerItemMean):
    r"""Log-spectral distance in dB (mean over frames of the per-frame RMS dB error), per item.

    Per item, :math:`\frac{1}{N}\sum_t \sqrt{\frac{1}{F}\sum_f
    (10\log_{10}\frac{P_{f,t}^2+\epsilon}{T_{f,t}^2+\epsilon})^2}` over its ``N`` valid frames
    (see :func:`~specinv_lightning.functional.log_spectral_distance`); ``compute()`` is the mean
    over every item seen on every rank.

    Inputs to ``update(preds, target, lengths=None)``: magnitudes (>= 0) or complex spectrograms
    ``(..., freq, frames)`` of the same shape; optional valid frames per item.

    Args:
        eps: Power floor added to ``P^2`` and ``T^2`` (default ``1e-10``).
        **kwargs: torchmetrics ``Metric`` options.

    Example:
        >>> import torch
        >>> from specinv_lightning import LogSpectralDistance
        >>> metric = LogSpectralDistance()
        >>> metric.update(10 * torch.ones(1, 3, 4), torch.ones(1, 3, 4))
        >>> round(float(metric.compute()), 4)
        20.0
    """

    def __init__(self, eps: float = LSD_EPS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not eps > 0:
            raise ValueError(f"eps: expected a value > 0, got {eps}")
        self.eps = float(eps)

    def update(
        self, preds: Tensor, target: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> None:
        """Add the per-item values of a batch."""
        self._accumulate(
            log_spectral_distance(preds, target, reduction="none", lengths=lengths, eps=self.eps)
        )


class MelConsistency(_PerItemMean):
    r"""Mel consistency of waveforms with reference mels: spectral convergence in dB, per item.

    For each item, :math:`20\log_{10}(\|F|STFT(x)|^p - M\|_F / \|M\|_F)` where ``M`` is the
    decompressed reference mel and the waveform's mel is computed (uncompressed) with the
    config's forward transform; frames are trimmed to the common count (at most one frame of
    difference). See :func:`~specinv_lightning.functional.mel_consistency`. The mel transform is a
    submodule, so its buffers follow ``.to(device)``.

    Inputs to ``update(waveform, mel, lengths=None)``:
        - ``waveform``: ``(..., samples)``;
        - ``mel``: compressed reference mel ``(..., n_mels, frames)``, same leading shape;
        - ``lengths``: optional valid mel frames per item.

    Args:
        config: The transform (``MelConfig``, preset name or dict).
        **kwargs: torchmetrics ``Metric`` options.

    Example:
        >>> import torch
        >>> from specinv_lightning import MelConsistency, MelInverter, MelSpectrogram
        >>> mel = MelSpectrogram("hifigan")(torch.randn(2, 22050))
        >>> metric = MelConsistency("hifigan")
        >>> metric.update(MelInverter("hifigan", n_iter=8)(mel, length=22050), mel)
        >>> bool(metric.compute() < -10)
        True
    """

    def __init__(self, config: MelConfig | str | Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.transform = MelSpectrogram(config)
        self.config = self.transform.config

    def update(
        self, waveform: Tensor, mel: Tensor, lengths: Tensor | Sequence[int] | None = None
    ) -> None:
        """Add the per-item values of a batch."""
        self._accumulate(
            mel_consistency(
                waveform,
                mel,
                self.config,
                reduction="none",
                lengths=lengths,
                fb=self.transform.fb,
                window=self.transform.window,
            )
        )
