"""Batch parsing for :class:`~specinv_lightning.InversionCallback`.

``parse_items`` turns what a validation batch produced (the ``validation_step`` outputs, or what
``generate(pl_module, batch)`` returned) into :class:`ValidationItems`: validated, detached tensors
on the callback's device, with the valid length of each item in samples and in frames.

Where each value comes from:

* the predicted mel (``mel_key``): from the outputs only (a dict holding it, or the mel tensor
  itself), never from the batch, so an input mel in the batch is never mistaken for a prediction;
* the target waveform, target mel and lengths: from the outputs, else from the batch when the batch
  is a dict (so ``generate`` may return just the mel).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from specinv_lightning.config import MelConfig
from specinv_lightning.functional._checks import check_lengths

__all__ = ["ItemKeys", "ValidationItems", "parse_items"]

_WHO = "InversionCallback"


@dataclass(frozen=True)
class ItemKeys:
    """Where the callback finds each value (see :class:`~specinv_lightning.InversionCallback`)."""

    mel: str
    target: str | None
    target_mel: str | None
    lengths: str | None
    lengths_unit: Literal["samples", "frames"]


@dataclass
class ValidationItems:
    """The items of one validation batch, as the callback uses them (detached, on its device).

    Attributes:
        mel: Predicted compressed mel ``(batch, n_mels, frames)``.
        target: Target waveform ``(batch, samples)`` or ``None``.
        target_mel: Target compressed mel ``(batch, n_mels, frames)`` or ``None``.
        lengths: Valid samples per item ``(batch,)``.
        frames: Valid mel frames per item ``(batch,)`` (at most ``mel.shape[-1]``).
    """

    mel: Tensor
    target: Tensor | None
    target_mel: Tensor | None
    lengths: Tensor
    frames: Tensor

    def __len__(self) -> int:
        return int(self.mel.shape[0])

    def select(self, index: slice | Tensor) -> ValidationItems:
        """The items at ``index`` (a slice or a boolean mask)."""

        def pick(x: Tensor | None) -> Tensor | None:
            return None if x is None else x[index]

        return ValidationItems(
            self.mel[index], pick(self.target), pick(self.target_mel), self.lengths[index],
            self.frames[index],
        )  # fmt: skip

    def head(self, n: int) -> ValidationItems:
        """The first ``n`` items."""
        return self if n >= len(self) else self.select(slice(0, n))


def _lookup(data: Mapping[str, Any], batch: Any, key: str) -> Any:
    if key in data:
        return data[key]
    if isinstance(batch, Mapping) and key in batch:
        return batch[key]
    raise KeyError(key)


def _as_mapping(outputs: Any, keys: ItemKeys, source: str) -> Mapping[str, Any]:
    if isinstance(outputs, Mapping):
        return outputs
    if isinstance(outputs, Tensor) and outputs.dim() == 3:
        return {keys.mel: outputs}  # the predicted mel itself
    kind = type(outputs).__name__
    if isinstance(outputs, Tensor):
        kind = f"a {outputs.dim()}-d Tensor (a loss?)"
    raise ValueError(
        f"{_WHO}: {source} returned {kind}; expected the predicted mel (batch, n_mels, frames) or"
        f" a dict with key {keys.mel!r}. For a model whose validation_step does not return its"
        " mel (it returns a loss, None, ...), pass generate=lambda pl_module, batch: mel (or a"
        " dict), e.g. a call to its sampler."
    )


def _fetch(outputs: Any, batch: Any, keys: ItemKeys, source: str) -> dict[str, Any]:
    data = _as_mapping(outputs, keys, source)
    if keys.mel not in data:
        raise ValueError(
            f"{_WHO}: {source} has no key mel_key={keys.mel!r}; keys present:"
            f" {sorted(map(str, data))}"
        )
    found = {"mel": data[keys.mel]}
    missing = []
    for arg, key in (
        ("target_key", keys.target),
        ("target_mel_key", keys.target_mel),
        ("lengths_key", keys.lengths),
    ):
        if key is None:
            continue
        try:
            found[arg] = _lookup(data, batch, key)
        except KeyError:
            missing.append(f"{arg}={key!r}")
    if missing:
        hint = (
            " (set target_key=None if there is no target waveform)"
            if "target_key" in str(missing)
            else ""
        )
        in_batch = sorted(map(str, batch)) if isinstance(batch, Mapping) else "not a dict"
        raise ValueError(
            f"{_WHO}: {source} has no key {', '.join(missing)}{hint}; keys present:"
            f" {sorted(map(str, data))} (batch keys: {in_batch})"
        )
    return found


def _as_batch(value: Any, key: str, dim: int, device: torch.device) -> Tensor:
    if not isinstance(value, Tensor):
        raise ValueError(f"{_WHO}: {key!r}: expected a tensor, got {type(value).__name__}")
    x = value.detach()
    if x.dim() == dim + 1 and x.shape[1] == 1:  # (batch, 1, ...) channel dim
        x = x.squeeze(1)
    if x.dim() != dim:
        raise ValueError(
            f"{_WHO}: {key!r}: expected a batched tensor with {dim} dims, got shape"
            f" {tuple(value.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{_WHO}: {key!r}: got an empty batch")
    if not x.is_floating_point():
        raise ValueError(f"{_WHO}: {key!r}: expected a float tensor, got {x.dtype}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x.to(device)


def _mel(
    value: Any, key: str, config: MelConfig, device: torch.device, batch: int | None
) -> Tensor:
    mel = _as_batch(value, key, 3, device)
    if mel.shape[-2] != config.n_mels or (batch is not None and mel.shape[0] != batch):
        want = "batch" if batch is None else str(batch)
        raise ValueError(
            f"{_WHO}: {key!r}: expected shape ({want}, n_mels={config.n_mels}, frames), got"
            f" {tuple(mel.shape)}; does the callback's config match the model's?"
        )
    return mel


def parse_items(
    outputs: Any,
    batch: Any,
    keys: ItemKeys,
    config: MelConfig,
    device: torch.device,
    source: str = "validation_step",
) -> ValidationItems:
    """Validated :class:`ValidationItems` from ``outputs`` (and ``batch`` for the targets).

    Raises:
        ValueError: naming the key and what was expected (a configuration error).
    """
    data = _fetch(outputs, batch, keys, source)
    mel = _mel(data["mel"], keys.mel, config, device, None)
    n = mel.shape[0]
    target = None
    if keys.target is not None:
        target = _as_batch(data["target_key"], keys.target, 2, device)
        if target.shape[0] != n:
            raise ValueError(
                f"{_WHO}: {keys.target!r}: expected {n} items like {keys.mel!r}, got shape"
                f" {tuple(target.shape)}"
            )
    target_mel = None
    if keys.target_mel is not None:
        target_mel = _mel(data["target_mel_key"], keys.target_mel, config, device, n)
    full = target.shape[-1] if target is not None else config.num_samples(mel.shape[-1])
    if keys.lengths is not None:
        raw = check_lengths(data["lengths_key"], n, f"{_WHO}: {keys.lengths!r}").to(device)
        if keys.lengths_unit == "frames":
            raw = config.num_samples(raw)
        lengths = raw.clamp(min=1, max=full)
    else:
        lengths = torch.full((n,), full, dtype=torch.long, device=device)
    frames = config.valid_frames(lengths).clamp(max=mel.shape[-1])
    return ValidationItems(mel, target, target_mel, lengths, frames)
