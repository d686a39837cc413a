"""The captured-item buffer of :class:`~specinv_lightning.InversionCallback`.

Holds at most ``capacity`` validation items (the first ones of the epoch), detached and trimmed to
their valid length, together with their inverted audio when the scoring already computed it (so an
item that is both scored and logged is inverted once). Emptied at every validation epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from specinv_lightning._callback_batch import ValidationItems

__all__ = ["CaptureBuffer", "CapturedItem", "CapturedBatch"]


@dataclass
class CapturedItem:
    """One captured validation item (detached, on the callback's device, trimmed)."""

    mel: Tensor  # (n_mels, frames)
    length: int  # valid samples
    target: Tensor | None  # (samples,)
    target_mel: Tensor | None  # (n_mels, frames)
    pred_wave: Tensor | None = None  # (samples,) the inverted prediction, if already computed
    ref_wave: Tensor | None = None  # (samples,) the inverted target mel, if already computed


@dataclass
class CapturedBatch:
    """The captured items padded into one batch (mels padded with silence)."""

    mel: Tensor  # (k, n_mels, frames)
    lengths: Tensor  # (k,)
    target: Tensor | None  # (k, samples), NaN/Inf -> 0
    target_mel: Tensor | None  # (k, n_mels, frames)


class CaptureBuffer:
    """The first ``capacity`` items of a validation epoch.

    Example:
        >>> buf = CaptureBuffer(2)
        >>> buf.wanted, len(buf)
        (2, 0)
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: list[CapturedItem] = []

    def __len__(self) -> int:
        return len(self.items)

    @property
    def wanted(self) -> int:
        """How many more items the buffer takes."""
        return self.capacity - len(self.items)

    def clear(self) -> None:
        self.items = []

    def add(
        self, items: ValidationItems, pred_wave: Tensor | None, ref_wave: Tensor | None
    ) -> None:
        """Keep the first :attr:`wanted` of ``items``; ``pred_wave``/``ref_wave`` hold the
        inverted audio of the first ``len(pred_wave)`` of them (or ``None``)."""
        lengths, frames = items.lengths.tolist(), items.frames.tolist()
        for i in range(min(self.wanted, len(items))):
            n, f = int(lengths[i]), int(frames[i])
            self.items.append(
                CapturedItem(
                    mel=items.mel[i, :, :f].clone(),
                    length=n,
                    target=None if items.target is None else items.target[i, :n].clone(),
                    target_mel=(
                        None if items.target_mel is None else items.target_mel[i, :, :f].clone()
                    ),
                    pred_wave=_row(pred_wave, i, n),
                    ref_wave=_row(ref_wave, i, n),
                )
            )

    def padded(self, silence: Tensor) -> CapturedBatch:
        """All items in one batch; ``silence`` is the config's compressed floor ``(n_mels, 1)``."""
        items = self.items
        dtype, device = items[0].mel.dtype, items[0].mel.device
        frames = max(s.mel.shape[-1] for s in items)
        silence = silence.to(device=device, dtype=dtype)
        mel = silence.expand(len(items), -1, frames).clone()
        for i, s in enumerate(items):
            mel[i, :, : s.mel.shape[-1]] = s.mel
        lengths = torch.tensor([s.length for s in items], device=device)
        target = None
        if all(s.target is not None for s in items):
            n = max(int(s.target.shape[-1]) for s in items)  # type: ignore[union-attr]
            target = torch.zeros(len(items), n, dtype=dtype, device=device)
            for i, s in enumerate(items):
                target[i, : s.target.shape[-1]] = torch.nan_to_num(s.target.to(dtype))  # type: ignore[union-attr]
        target_mel = None
        if all(s.target_mel is not None for s in items):
            target_mel = silence.expand_as(mel).clone()
            for i, s in enumerate(items):
                target_mel[i, :, : s.target_mel.shape[-1]] = s.target_mel  # type: ignore[union-attr]
        return CapturedBatch(mel, lengths, target, target_mel)


def _row(wave: Tensor | None, i: int, n: int) -> Tensor | None:
    if wave is None or i >= wave.shape[0]:
        return None
    return wave[i, :n].clone()
