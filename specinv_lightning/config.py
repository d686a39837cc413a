"""``MelConfig``: one frozen description of a forward mel transform, and named presets.

The same config drives :class:`~specinv_lightning.MelSpectrogram` (waveform -> mel) and
:class:`~specinv_lightning.MelInverter` (mel -> waveform), so forward and inverse can never disagree.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Any

__all__ = ["MelConfig", "PRESETS", "WINDOWS", "COMPRESSIONS", "as_config"]

WINDOWS = ("hann", "hamming", "blackman", "rectangular")
COMPRESSIONS = ("none", "log", "log10", "db")
MEL_SCALES = ("htk", "slaney")
PAD_MODES = ("reflect", "constant", "replicate", "circular")


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
       for ``"log"`` and ``b = 10`` for ``"log10"`` and ``"db"``. For ``"db"`` the multiplier
       defaults to 10 for a power mel and 20 for a magnitude mel (torchaudio's ``AmplitudeToDB``).

    Args:
        sample_rate: Sample rate of the waveform in Hz.
        n_fft: FFT size.
        win_length: Window length (``<= n_fft``). Defaults to ``n_fft``.
        hop_length: Hop between frames. Defaults to ``win_length // 4``.
        window: Periodic window: ``"hann"``, ``"hamming"``, ``"blackman"`` or ``"rectangular"``.
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
    window: str = "hann"
    center: bool = True
    pad_mode: str = "reflect"
    manual_pad: int = 0
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float | None = None
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    power: float = 1.0
    mag_eps: float = 0.0
    normalized: bool = False
    compression: str = "log"
    log_floor: float = 1e-5
    log_multiplier: float | None = None

    def __post_init__(self) -> None:
        def _set(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name in ("sample_rate", "n_fft", "n_mels", "manual_pad", "win_length", "hop_length"):
            value = getattr(self, name)
            if value is not None or name in ("sample_rate", "n_fft", "n_mels", "manual_pad"):
                _set(name, _as_int(name, value))
        for name in ("f_min", "f_max", "power", "mag_eps", "log_floor", "log_multiplier"):
            value = getattr(self, name)
            if value is not None or name in ("f_min", "power", "mag_eps", "log_floor"):
                _set(name, _as_float(name, value))
        for name in ("center", "normalized"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"MelConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.sample_rate <= 0:
            raise ValueError(f"MelConfig.sample_rate must be > 0, got {self.sample_rate}")
        if self.n_fft < 2:
            raise ValueError(f"MelConfig.n_fft must be >= 2, got {self.n_fft}")
        if self.n_mels < 1:
            raise ValueError(f"MelConfig.n_mels must be >= 1, got {self.n_mels}")
        if self.manual_pad < 0:
            raise ValueError(f"MelConfig.manual_pad must be >= 0, got {self.manual_pad}")
        win_length = self.n_fft if self.win_length is None else self.win_length
        if not 1 <= win_length <= self.n_fft:
            raise ValueError(
                f"MelConfig.win_length must be in [1, n_fft={self.n_fft}], got {self.win_length}"
            )
        _set("win_length", win_length)
        hop_length = win_length // 4 if self.hop_length is None else self.hop_length
        if not 1 <= hop_length <= win_length:
            raise ValueError(
                f"MelConfig.hop_length must be in [1, win_length={win_length}], got {self.hop_length}"
            )
        _set("hop_length", hop_length)
        if self.window not in WINDOWS:
            raise ValueError(f"MelConfig.window must be one of {WINDOWS}, got {self.window!r}")
        if self.pad_mode not in PAD_MODES:
            raise ValueError(
                f"MelConfig.pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}"
            )
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if f_max > nyquist + 1e-9:
            raise ValueError(
                f"MelConfig.f_max must be <= sample_rate / 2 = {nyquist}, got {self.f_max}"
            )
        _set("f_max", f_max)
        _set("f_min", float(self.f_min))
        if not 0.0 <= self.f_min < f_max:
            raise ValueError(f"MelConfig.f_min must be in [0, f_max={f_max}), got {self.f_min}")
        if self.mel_scale not in MEL_SCALES:
            raise ValueError(
                f"MelConfig.mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}"
            )
        if self.norm not in (None, "slaney"):
            raise ValueError(f"MelConfig.norm must be None or 'slaney', got {self.norm!r}")
        if float(self.power) not in (1.0, 2.0):
            raise ValueError(f"MelConfig.power must be 1.0 or 2.0, got {self.power}")
        _set("power", float(self.power))
        if not (self.mag_eps >= 0 and math.isfinite(self.mag_eps)):
            raise ValueError(f"MelConfig.mag_eps must be a finite value >= 0, got {self.mag_eps}")
        if self.compression not in COMPRESSIONS:
            raise ValueError(
                f"MelConfig.compression must be one of {COMPRESSIONS}, got {self.compression!r}"
            )
        if not (self.log_floor > 0 and math.isfinite(self.log_floor)):
            raise ValueError(f"MelConfig.log_floor must be > 0, got {self.log_floor}")
        if self.log_multiplier is None:
            default = (10.0 if self.power == 2.0 else 20.0) if self.compression == "db" else 1.0
            _set("log_multiplier", default)
        elif not (self.log_multiplier != 0 and math.isfinite(self.log_multiplier)):
            raise ValueError(
                f"MelConfig.log_multiplier must be finite and non-zero, got {self.log_multiplier}"
            )
        _set("log_multiplier", float(self.log_multiplier))

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

    # ------------------------------------------------------------------ presets & (de)serialisation
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> MelConfig:
        """Build the config of a named model family, optionally overriding fields.

        Args:
            name: One of :data:`PRESETS` (``"hifigan"``, ``"bigvgan-24k-100"``, ``"vocos"``,
                ``"tacotron2"``, ``"torchaudio"``, ``"librosa"``, ...).
            **overrides: Fields to change, e.g. ``sample_rate=16000``.

        Raises:
            ValueError: If the preset is unknown or an override is not a field.
        """
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            raise ValueError(
                f"Unknown MelConfig preset {name!r}; expected one of {sorted(PRESETS)}"
            )
        return cls.from_dict({**PRESETS[key], **overrides})

    def to_dict(self) -> dict[str, Any]:
        """Plain ``dict`` of the fields (YAML/JSON friendly)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MelConfig:
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

    @classmethod
    def from_torchaudio(cls, transform: Any, **overrides: Any) -> MelConfig:
        """Describe a ``torchaudio.transforms.MelSpectrogram`` (optionally wrapped in
        ``torch.nn.Sequential`` with a trailing ``AmplitudeToDB``).

        Raises:
            ValueError: If the transform uses a window or option MelConfig cannot express.
        """
        import torch

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
        fields.update(overrides)
        return cls(**fields)


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


def _identify_window(window: Any, win_length: int) -> str:
    """Name the periodic window a torchaudio transform holds, or raise ValueError."""
    import torch

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


PRESETS: dict[str, dict[str, Any]] = {
    # jik876/hifi-gan meldataset.py (config_v1): manual reflect pad, center=False, sqrt(|X|^2+1e-9)
    "hifigan": dict(
        sample_rate=22050,
        n_fft=1024,
        win_length=1024,
        hop_length=256,
        center=False,
        manual_pad=384,
        n_mels=80,
        f_min=0.0,
        f_max=8000.0,
        mel_scale="slaney",
        norm="slaney",
        power=1.0,
        mag_eps=1e-9,
        compression="log",
        log_floor=1e-5,
    ),
    # NVIDIA/BigVGAN bigvgan_24khz_100band: same recipe as HiFi-GAN at 24 kHz, fmax 12 kHz
    "bigvgan-24k-100": dict(
        sample_rate=24000,
        n_fft=1024,
        win_length=1024,
        hop_length=256,
        center=False,
        manual_pad=384,
        n_mels=100,
        f_min=0.0,
        f_max=12000.0,
        mel_scale="slaney",
        norm="slaney",
        power=1.0,
        mag_eps=1e-9,
        compression="log",
        log_floor=1e-5,
    ),
    # gemelo-ai/vocos MelSpectrogramFeatures: torchaudio MelSpectrogram(power=1, center), log clip 1e-7
    "vocos": dict(
        sample_rate=24000,
        n_fft=1024,
        win_length=1024,
        hop_length=256,
        center=True,
        pad_mode="reflect",
        n_mels=100,
        f_min=0.0,
        f_max=None,
        mel_scale="htk",
        norm=None,
        power=1.0,
        compression="log",
        log_floor=1e-7,
    ),
    # NVIDIA/tacotron2 hparams + layers.TacotronSTFT: centred reflect STFT, slaney mel, log clamp 1e-5
    "tacotron2": dict(
        sample_rate=22050,
        n_fft=1024,
        win_length=1024,
        hop_length=256,
        center=True,
        pad_mode="reflect",
        n_mels=80,
        f_min=0.0,
        f_max=8000.0,
        mel_scale="slaney",
        norm="slaney",
        power=1.0,
        compression="log",
        log_floor=1e-5,
    ),
    # torchaudio.transforms.MelSpectrogram() defaults
    "torchaudio": dict(
        sample_rate=16000,
        n_fft=400,
        win_length=400,
        hop_length=200,
        center=True,
        pad_mode="reflect",
        n_mels=128,
        f_min=0.0,
        f_max=None,
        mel_scale="htk",
        norm=None,
        power=2.0,
        compression="none",
    ),
    # librosa.feature.melspectrogram() defaults (librosa >= 0.10 pads with zeros)
    "librosa": dict(
        sample_rate=22050,
        n_fft=2048,
        win_length=2048,
        hop_length=512,
        center=True,
        pad_mode="constant",
        n_mels=128,
        f_min=0.0,
        f_max=None,
        mel_scale="slaney",
        norm="slaney",
        power=2.0,
        compression="none",
    ),
}
PRESETS["bigvgan"] = PRESETS["bigvgan-24k-100"]


def as_config(config: MelConfig | str | dict) -> MelConfig:
    """Accept a :class:`MelConfig`, a preset name or a dict (e.g. from LightningCLI YAML)."""
    if isinstance(config, MelConfig):
        return config
    if isinstance(config, str):
        return MelConfig.from_preset(config)
    if isinstance(config, dict):
        return MelConfig.from_dict(config)
    raise ValueError(
        f"config: expected a MelConfig, preset name or dict, got {type(config).__name__}"
    )
