"""``MelConfig.from_torchaudio``: read the fields of a torchaudio mel transform (private)."""

from __future__ import annotations

from typing import Any

import torch


def torchaudio_fields(transform: Any) -> dict[str, Any]:
    """MelConfig fields of a ``torchaudio.transforms.MelSpectrogram`` (optionally wrapped in
    ``torch.nn.Sequential`` with a trailing ``AmplitudeToDB``).

    Raises:
        ValueError: If the transform uses a window or option MelConfig cannot express.
    """
    db = None
    if isinstance(transform, torch.nn.Sequential):
        mods = list(transform)
        if not mods or len(mods) > 2:
            raise ValueError(
                "transform: expected MelSpectrogram or Sequential(MelSpectrogram, AmplitudeToDB)"
            )
        transform, db = mods[0], (mods[1] if len(mods) == 2 else None)
    spec = getattr(transform, "spectrogram", None)
    mel = getattr(transform, "mel_scale", None)
    if spec is None or mel is None:
        raise ValueError(
            f"transform: expected a torchaudio.transforms.MelSpectrogram, got {type(transform).__name__}"
        )
    window = _identify_window(spec.window, spec.win_length)
    if getattr(spec, "pad", 0):
        raise ValueError("transform: MelSpectrogram(pad=...) is not supported; use manual_pad")
    if spec.normalized not in (False, True, "window"):
        raise ValueError(f"transform: normalized={spec.normalized!r} is not supported")
    if spec.power not in (1.0, 2.0, 1, 2):
        raise ValueError(f"transform: power must be 1 or 2, got {spec.power}")
    fields: dict[str, Any] = dict(
        sample_rate=int(transform.sample_rate),
        n_fft=int(spec.n_fft),
        win_length=int(spec.win_length),
        hop_length=int(spec.hop_length),
        window=window,
        center=bool(spec.center),
        pad_mode=str(spec.pad_mode),
        n_mels=int(mel.n_mels),
        f_min=float(mel.f_min),
        f_max=None if mel.f_max is None else float(mel.f_max),
        mel_scale=str(mel.mel_scale),
        norm=mel.norm,
        power=float(spec.power),
        normalized=bool(spec.normalized),
        compression="none",
    )
    if db is not None:
        if getattr(db, "top_db", None) is not None:
            raise ValueError(
                "transform: AmplitudeToDB(top_db=...) is not invertible; use top_db=None"
            )
        if float(getattr(db, "db_multiplier", 0.0)) != 0.0:
            raise ValueError(
                "transform: AmplitudeToDB(ref_value != 1) is not supported; use ref_value=1.0"
            )
        fields.update(
            compression="db",
            log_floor=float(db.amin),
            log_multiplier=float(db.multiplier),
        )
    return fields


def _identify_window(window: Any, win_length: int) -> str:
    """Name the periodic window a torchaudio transform holds, or raise ValueError."""
    w = window.detach().double().cpu()
    for name, fn in (
        ("hann", torch.hann_window),
        ("hamming", torch.hamming_window),
        ("blackman", torch.blackman_window),
    ):
        if torch.allclose(w, fn(win_length, periodic=True, dtype=torch.float64), atol=1e-6):
            return name
    if torch.allclose(w, torch.ones_like(w)):
        return "rectangular"
    raise ValueError(
        "transform: only periodic hann/hamming/blackman/rectangular windows are supported"
    )
