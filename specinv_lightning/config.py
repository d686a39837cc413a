"""``MelConfig``: one frozen description of a forward mel transform (presets in ``presets.py``).

The same config drives :class:`~specinv_lightning.MelSpectrogram` (waveform -> mel) and
:class:`~specinv_lightning.MelInverter` (mel -> waveform), so forward and inverse can never disagree.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from specinv_lightning.presets import DERIVED, PRESETS

__all__ = ["MelConfig", "PRESETS", "WINDOWS", "COMPRESSIONS", "as_config"]

Window = Literal["hann", "hamming", "blackman", "rectangular"]
LogGuard = Literal["clamp", "add"]
Stats = float | Sequence[float] | str | os.PathLike[str] | None
Compression = Literal["none", "log", "log10", "db"]
MelScale = Literal["htk", "slaney"]
PadMode = Literal["reflect", "constant", "replicate", "circular"]
WINDOWS: tuple[str, ...] = get_args(Window)
COMPRESSIONS: tuple[str, ...] = get_args(Compression)
_CHOICES: dict[str, tuple[Any, ...]] = {
    "window": WINDOWS,
    "pad_mode": get_args(PadMode),
    "mel_scale": get_args(MelScale),
    "norm": (None, "slaney"),
    "power": (1.0, 2.0),
    "compression": COMPRESSIONS,
    "log_guard": get_args(LogGuard),
}
_OPTIONAL = ("win_length", "hop_length", "f_max", "log_multiplier")  # None: derived


@dataclass(frozen=True)
class MelConfig:
    """Everything needed to reproduce (and so to undo) one mel-spectrogram transform.

    The forward transform is, in order:

    1. optional manual reflect padding of ``manual_pad`` samples on both sides (HiFi-GAN, BigVGAN);
    2. STFT with a periodic ``window`` of ``win_length`` (zero-padded to ``n_fft``), ``hop_length``,
       ``center`` (padding ``n_fft // 2`` with ``pad_mode``);
    3. magnitude ``(re^2 + im^2 + mag_eps) ** (power / 2)``, divided by ``sqrt(sum(window^2))``
       when ``normalized`` (torchaudio's ``normalized=True``);
    4. mel filterbank (``mel_scale``, ``norm``, ``f_min``, ``f_max``, ``n_mels``);
    5. compression: ``"none"``, or ``log_multiplier * log_b(max(x, log_floor))`` with ``b = e``
       for ``"log"`` and ``b = 10`` for ``"log10"`` and ``"db"`` (``log_guard="add"``:
       ``log_b(x + log_floor)``, as NeMo and StyleTTS2 do). For ``"db"`` the multiplier defaults
       to 10 for a power mel and 20 for a magnitude mel (torchaudio's ``AmplitudeToDB``);
    6. normalisation: ``(c - mel_mean) / mel_std`` with scalars or per-band statistics (Matcha-TTS,
       StyleTTS2, ESPnet's global mean/variance), when either is given.

    Args:
        sample_rate: Sample rate of the waveform in Hz.
        n_fft: FFT size.
        win_length: Window length (``<= n_fft``). Defaults to ``n_fft``.
        hop_length: Hop between frames. Defaults to ``win_length // 4``.
        window: ``"hann"``, ``"hamming"``, ``"blackman"`` or ``"rectangular"``.
        center: Pad ``n_fft // 2`` on both sides before framing (``torch.stft(center=True)``).
        pad_mode: Padding mode for ``center`` (``"reflect"``, ``"constant"``, ...).
        manual_pad: Samples reflect-padded on both sides before the STFT, as HiFi-GAN does
            with ``(n_fft - hop_length) // 2`` and ``center=False``.
        n_mels: Number of mel bands.
        f_min: Lowest filter edge in Hz.
        f_max: Highest filter edge in Hz (``<= sample_rate / 2``). Defaults to ``sample_rate / 2``.
        mel_scale: ``"htk"`` or ``"slaney"``.
        norm: ``None`` or ``"slaney"`` (area normalisation of each filter).
        power: 1.0 for a magnitude mel, 2.0 for a power mel.
        mag_eps: Added under the square root of the magnitude (HiFi-GAN/BigVGAN use ``1e-9``).
        normalized: Divide the spectrogram by ``sqrt(sum(window^2))`` (torchaudio's
            ``normalized=True``).
        compression: ``"none"``, ``"log"``, ``"log10"`` or ``"db"``.
        log_floor: Clamp floor applied before the logarithm.
        log_multiplier: Factor in front of the logarithm (see above); ``None`` picks the default.
        log_guard: ``"clamp"`` (``log(max(x, log_floor))``) or ``"add"`` (``log(x + log_floor)``).
        mel_mean: Mean subtracted after compression: a number, ``n_mels`` per-band values, or the
            path of a ``.npy``/``.pt`` file holding them (or a dict with ``"mean"``/``"std"``, or
            ESPnet's ``.npz`` with ``count``/``sum``/``sum_square``). ``None``: 0.
        mel_std: Divisor after subtracting ``mel_mean`` (> 0), in the same forms. ``None``: 1.
        periodic_window: Periodic window (``torch.hann_window`` default); ``False`` for the
            symmetric window NeMo uses.

    Example:
        >>> from specinv_lightning import MelConfig
        >>> cfg = MelConfig.from_preset("hifigan")
        >>> cfg.n_mels, cfg.sample_rate, cfg.manual_pad
        (80, 22050, 384)
        >>> MelConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int | None = None
    hop_length: int | None = None
    window: Window = "hann"
    center: bool = True
    pad_mode: PadMode = "reflect"
    manual_pad: int = 0
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    mel_scale: MelScale = "slaney"
    norm: Literal["slaney"] | None = "slaney"
    power: float = 1.0
    mag_eps: float = 0.0
    normalized: bool = False
    compression: Compression = "log"
    log_floor: float = 1e-5
    log_multiplier: float | None = None
    log_guard: LogGuard = "clamp"
    mel_mean: Stats = None
    mel_std: Stats = None
    periodic_window: bool = True

    def __post_init__(self) -> None:
        self._coerce()
        self._derive()
        self._validate()

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _coerce(self) -> None:
        """Numbers from YAML/CLI strings or numpy scalars to ``int``/``float`` (ValueError else)."""
        for name in ("sample_rate", "n_fft", "n_mels", "manual_pad", "win_length", "hop_length"):
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:
                self._set(name, _as_int(name, value))
        for name in ("f_min", "f_max", "power", "mag_eps", "log_floor", "log_multiplier"):
            value = getattr(self, name)
            if value is not None or name not in _OPTIONAL:
                self._set(name, _as_float(name, value))
        for name in ("center", "normalized", "periodic_window"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MelConfig.{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("mel_mean", "mel_std"):
            self._set(name, _as_stats(name, getattr(self, name)))

    def _derive(self) -> None:
        """Defaults that depend on other fields: ``win_length``, ``hop_length``, ``f_max``,
        ``log_multiplier``."""
        if self.win_length is None:
            self._set("win_length", self.n_fft)
        if self.hop_length is None:
            self._set("hop_length", max(1, self.win_length // 4))
        if self.f_max is None:
            self._set("f_max", self.sample_rate / 2)
        if self.log_multiplier is None:
            db = self.compression == "db"
            self._set("log_multiplier", (10.0 if self.power == 2.0 else 20.0) if db else 1.0)

    def _validate(self) -> None:
        """Ranges and choices; each error names the field."""
        for name, low in (("sample_rate", 1), ("n_fft", 2), ("n_mels", 1), ("manual_pad", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"MelConfig.{name} must be >= {low}, got {getattr(self, name)}")
        if not 1 <= self.win_length <= self.n_fft:
            raise ValueError(
                f"MelConfig.win_length must be in [1, n_fft={self.n_fft}], got {self.win_length}"
            )
        if not 1 <= self.hop_length <= self.win_length:
            raise ValueError(
                f"MelConfig.hop_length must be in [1, win_length={self.win_length}], got"
                f" {self.hop_length}"
            )
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"MelConfig.{name} must be one of {choices}, got {getattr(self, name)!r}"
                )
        nyquist = self.sample_rate / 2
        if self.f_max > nyquist + 1e-9:
            raise ValueError(
                f"MelConfig.f_max must be <= sample_rate / 2 = {nyquist}, got {self.f_max}"
            )
        if not 0.0 <= self.f_min < self.f_max:
            raise ValueError(
                f"MelConfig.f_min must be in [0, f_max={self.f_max}), got {self.f_min}"
            )
        if self.mag_eps < 0:
            raise ValueError(f"MelConfig.mag_eps must be a finite value >= 0, got {self.mag_eps}")
        if not self.log_floor > 0:
            raise ValueError(f"MelConfig.log_floor must be > 0, got {self.log_floor}")
        if self.log_multiplier == 0:
            raise ValueError(
                f"MelConfig.log_multiplier must be finite and non-zero, got {self.log_multiplier}"
            )
        for name in ("mel_mean", "mel_std"):
            value = getattr(self, name)
            if isinstance(value, tuple) and len(value) != self.n_mels:
                raise ValueError(
                    f"MelConfig.{name} must be a number or n_mels={self.n_mels} per-band values,"
                    f" got {len(value)} values"
                )
        std = self.mel_std if isinstance(self.mel_std, tuple) else (self.mel_std,)
        std = (1.0,) if self.mel_std is None else std
        if min(std) <= 0:
            raise ValueError(f"MelConfig.mel_std must be > 0, got {self.mel_std}")

    @property
    def normalised(self) -> bool:
        """Whether the mel is normalised (``mel_mean`` or ``mel_std`` given)."""
        return self.mel_mean is not None or self.mel_std is not None

    # ------------------------------------------------------------------ derived quantities
    @property
    def n_freqs(self) -> int:
        """Number of one-sided frequency bins, ``n_fft // 2 + 1``."""
        return self.n_fft // 2 + 1

    @property
    def min_samples(self) -> int:
        """Fewest waveform samples the forward transform accepts (at least one full frame)."""
        # reflect padding of p samples needs an input longer than p
        floor = self.manual_pad + 1
        if self.center:
            # reflect padding needs at least n_fft // 2 + 1 samples
            return max(floor, self.n_fft // 2 + 1 - 2 * self.manual_pad)
        return max(floor, self.n_fft - 2 * self.manual_pad)

    @property
    def min_frames(self) -> int:
        """Fewest mel frames that can be inverted: ``num_samples(min_frames) >= min_samples``.

        A mel with fewer frames spans less than one analysis window of a waveform the forward
        transform accepts (e.g. 4 frames for a centred 1024/256 STFT, 2 for HiFi-GAN).
        """
        short = self.min_samples - self.num_samples(1)
        return 1 + max(0, -(-short // self.hop_length))

    def num_frames(self, num_samples: int) -> int:
        """Number of frames the forward transform yields for ``num_samples`` samples."""
        padded = num_samples + 2 * self.manual_pad + (2 * (self.n_fft // 2) if self.center else 0)
        return 1 + (padded - self.n_fft) // self.hop_length

    def num_samples(self, num_frames: int) -> int:
        """Waveform length whose forward transform has exactly ``num_frames`` frames.

        ``(num_frames - 1) * hop_length`` for a centred STFT (as ``torch.istft`` returns), and
        ``num_frames * hop_length`` for HiFi-GAN-style padding.
        """
        if self.center:
            return (num_frames - 1) * self.hop_length - 2 * self.manual_pad
        return (num_frames - 1) * self.hop_length + self.n_fft - 2 * self.manual_pad

    def valid_frames(self, num_samples: Any) -> Any:
        """Mel frames that hold an item of ``num_samples`` valid samples (for masking padded items).

        :meth:`num_frames` of the length, and at least :attr:`min_frames` (an item shorter than one
        window still occupies the frames of one). Works element-wise on integer tensors.

        Example:
            >>> cfg = MelConfig.from_preset("hifigan")
            >>> cfg.valid_frames(22050), cfg.valid_frames(10)
            (86, 2)
        """
        if hasattr(num_samples, "clamp"):
            frames = self.num_frames(num_samples.clamp(min=self.min_samples))
            return frames.clamp(min=self.min_frames)
        return max(self.num_frames(max(int(num_samples), self.min_samples)), self.min_frames)

    # ------------------------------------------------------------------ presets & (de)serialisation
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MelConfig:
        """Build the config of a named model family, optionally overriding fields.

        Args:
            name: One of :data:`PRESETS` (``"hifigan"``, ``"bigvgan-v2-24k-100"``, ``"vocos"``,
                ``"matcha"``, ``"nemo"``, ``"styletts2"``, ...).
            **overrides: Fields to change, e.g. ``sample_rate=16000``. Fields the preset derives
                from others (e.g. HiFi-GAN's ``manual_pad = (n_fft - hop_length) // 2``) follow
                their overridden inputs unless given too.

        Raises:
            ValueError: If the preset is unknown or an override is not a field.
        """
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            raise ValueError(
                f"Unknown MelConfig preset {name!r}; expected one of {sorted(PRESETS)}"
            )
        fields = {**PRESETS[key], **overrides}
        for field, rule in DERIVED.get(key, {}).items():  # follow overridden inputs
            if field not in overrides:
                fields[field] = rule(fields)
        return cls.from_dict(fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of the fields (YAML/JSON friendly)."""

        def plain(value: Any) -> Any:
            return list(value) if isinstance(value, tuple) else value

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MelConfig:
        """Build a config from a plain ``dict``; ``{"preset": name, ...}`` is also accepted.

        Raises:
            ValueError: On unknown keys, naming them.
        """
        data = dict(data)
        preset = data.pop("preset", None)
        if preset is not None:
            return cls.from_preset(preset, **data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown MelConfig field(s) {unknown}; valid fields: {sorted(names)}")
        return cls(**data)

    @staticmethod
    def identify(waveform: Any, mel: Any, sample_rate: int | None = None, **kwargs: Any) -> Any:
        """Find the preset (and normalisation) that reproduces ``mel`` from ``waveform``:
        see :func:`specinv_lightning.identify.identify` (returns an ``Identification`` with the
        config, the preset name and the fit error in dB, or no config when none fits)."""
        from specinv_lightning.identify import identify

        return identify(waveform, mel, sample_rate=sample_rate, **kwargs)

    @classmethod
    def from_torchaudio(cls, transform: Any, **overrides: Any) -> MelConfig:
        """Describe a ``torchaudio.transforms.MelSpectrogram`` (optionally wrapped in
        ``torch.nn.Sequential`` with a trailing ``AmplitudeToDB``), optionally overriding fields.

        Raises:
            ValueError: If the transform uses a window or option MelConfig cannot express, or an
                override is not a field.
        """
        from specinv_lightning._torchaudio import torchaudio_fields

        return cls.from_dict({**torchaudio_fields(transform), **overrides})


def _as_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` (integral floats and numeric strings accepted), else ValueError."""
    if not isinstance(value, bool):
        if isinstance(value, numbers.Integral):
            return int(value)
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            as_float = math.nan
        if math.isfinite(as_float) and as_float.is_integer():
            return int(as_float)
    raise ValueError(f"MelConfig.{name} must be an integer, got {value!r}")


def _as_float(name: str, value: Any) -> float:
    """``value`` as a finite ``float`` (numeric strings such as YAML's ``1e-5`` accepted)."""
    if not isinstance(value, bool):
        try:
            as_float = float(value)
        except (TypeError, ValueError):
            as_float = math.nan
        if math.isfinite(as_float):
            return as_float
    raise ValueError(f"MelConfig.{name} must be a finite number, got {value!r}")


def _as_stats(name: str, value: Any) -> float | tuple[float, ...] | None:
    """``mel_mean``/``mel_std`` as a float or a tuple of floats (files loaded), else ValueError."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        value = _load_stats(name, os.fspath(value))
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        values: tuple[float, ...] = (float(value),)
    else:
        try:
            values = tuple(float(v) for v in _flat(value))
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"MelConfig.{name} must be a number, per-band numbers or a stats file path, got"
                f" {value!r}"
            ) from err
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"MelConfig.{name} must hold finite numbers, got {value!r}")
    scalar = isinstance(value, numbers.Real) or (len(values) == 1 and _ndim(value) == 0)
    return values[0] if scalar else values


def _flat(value: Any) -> list[Any]:
    """A flat list of the numbers in a sequence, array or tensor (nested lists flattened)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, numbers.Real):
        return [value]
    if isinstance(value, (str, bytes, Mapping)):
        raise TypeError(f"not a sequence of numbers: {value!r}")
    return [x for item in value for x in _flat(item)]


def _ndim(value: Any) -> int:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return len(shape)
    return 0 if isinstance(value, numbers.Real) else 1


def _load_stats(name: str, path: str) -> Any:
    """The statistics stored at ``path`` for ``name`` (``mel_mean`` or ``mel_std``)."""
    import numpy as np

    kind = "mean" if name == "mel_mean" else "std"
    if not os.path.isfile(path):
        raise ValueError(f"MelConfig.{name}: no stats file at {path!r}")
    try:
        if path.endswith(".pt"):
            import torch

            data = torch.load(path, map_location="cpu", weights_only=True)
        elif path.endswith((".npy", ".npz")):
            data = np.load(path, allow_pickle=False)
        else:
            raise ValueError("expected a .npy, .npz or .pt file")
        if hasattr(data, "files"):  # .npz: ESPnet's feats_stats (count, sum, sum_square)
            data = {key: data[key] for key in data.files}
        if isinstance(data, Mapping):
            data = _stats_from_mapping(data, kind)
    except Exception as err:
        raise ValueError(f"MelConfig.{name}: cannot read stats file {path!r} ({err})") from err
    return data


def _stats_from_mapping(data: Mapping[str, Any], kind: str) -> Any:
    if kind in data:
        return data[kind]
    if {"count", "sum", "sum_square"} <= set(data):
        import numpy as np

        count = float(np.asarray(data["count"]).sum())
        mean = np.asarray(data["sum"], dtype=np.float64) / count
        if kind == "mean":
            return mean
        var = np.asarray(data["sum_square"], dtype=np.float64) / count - mean**2
        return np.sqrt(np.maximum(var, 1e-20))
    raise ValueError(
        f"expected a '{kind}' entry or ESPnet's count/sum/sum_square, got {sorted(data)}"
    )


def as_config(config: MelConfig | str | Mapping[str, Any]) -> MelConfig:
    """Accept a :class:`MelConfig`, a preset name or a mapping (e.g. from LightningCLI YAML)."""
    if isinstance(config, MelConfig):
        return config
    if isinstance(config, str):
        return MelConfig.from_preset(config)
    if isinstance(config, Mapping):
        return MelConfig.from_dict(config)
    raise ValueError(
        f"config: expected a MelConfig, preset name or mapping, got {type(config).__name__}"
    )
