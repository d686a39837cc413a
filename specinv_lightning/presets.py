"""Named mel conventions of model families (``MelConfig.from_preset(name)``), as plain field dicts.

Each entry names the published feature code it reproduces; ``tests/test_presets.py`` checks each
one against a reference written from that code. :data:`DERIVED` lists the fields a preset derives
from others: they follow overridden inputs unless given explicitly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["PRESETS", "DERIVED", "SOURCES"]


def _hifigan_pad(fields: dict[str, Any]) -> int:
    """HiFi-GAN/BigVGAN pad ``(n_fft - hop_size) / 2`` samples on each side (then center=False)."""
    return (int(fields["n_fft"]) - int(fields["hop_length"])) // 2


# HiFi-GAN's recipe: reflect pad (n_fft - hop) / 2, uncentred periodic-Hann STFT,
# sqrt(|X|^2 + 1e-9), slaney mel, log(clamp(., 1e-5)); BigVGAN and Matcha-TTS reuse it.
_HIFIGAN: dict[str, Any] = dict(
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
)


def _bigvgan(sample_rate: int, n_mels: int, n_fft: int, hop: int, f_max: float | None) -> dict:
    return {
        **_HIFIGAN,
        "sample_rate": sample_rate,
        "n_mels": n_mels,
        "n_fft": n_fft,
        "win_length": n_fft,
        "hop_length": hop,
        "manual_pad": (n_fft - hop) // 2,
        "f_max": f_max,
    }


PRESETS: dict[str, dict[str, Any]] = {
    "hifigan": dict(_HIFIGAN),
    "bigvgan-24k-100": _bigvgan(24000, 100, 1024, 256, 12000.0),
    "bigvgan-v2-22k-80": _bigvgan(22050, 80, 1024, 256, None),
    "bigvgan-v2-24k-100": _bigvgan(24000, 100, 1024, 256, 12000.0),
    "bigvgan-v2-44k-128": _bigvgan(44100, 128, 1024, 256, None),
    "bigvgan-v2-44k-128-512x": _bigvgan(44100, 128, 2048, 512, None),
    # Matcha-TTS: the HiFi-GAN transform, normalised with the data set's statistics (LJSpeech's)
    "matcha": {**_HIFIGAN, "mel_mean": -5.536622, "mel_std": 2.116101},
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
    # ParallelWaveGAN logmelfilterbank (ESPnet's vocoder features): librosa STFT (centred,
    # reflect), |X|, slaney mel 80-7600 Hz, log10(max(., 1e-10))
    "parallel-wavegan": dict(
        sample_rate=22050,
        n_fft=1024,
        win_length=1024,
        hop_length=256,
        center=True,
        pad_mode="reflect",
        n_mels=80,
        f_min=80.0,
        f_max=7600.0,
        mel_scale="slaney",
        norm="slaney",
        power=1.0,
        compression="log10",
        log_floor=1e-10,
    ),
    # NeMo FilterbankFeatures (FastPitch / HiFi-GAN, LJSpeech): symmetric Hann, centred reflect
    # STFT, |X|, slaney mel 0-8000 Hz, log(x + 1e-5)
    "nemo": dict(
        sample_rate=22050,
        n_fft=1024,
        win_length=1024,
        hop_length=256,
        center=True,
        pad_mode="reflect",
        periodic_window=False,
        n_mels=80,
        f_min=0.0,
        f_max=8000.0,
        mel_scale="slaney",
        norm="slaney",
        power=1.0,
        compression="log",
        log_guard="add",
        log_floor=1e-5,
    ),
    # StyleTTS2 meldataset: torchaudio MelSpectrogram(n_mels=80, n_fft=2048, win_length=1200,
    # hop_length=300) at 24 kHz (power 2, htk, no norm), (log(1e-5 + mel) + 4) / 4
    "styletts2": dict(
        sample_rate=24000,
        n_fft=2048,
        win_length=1200,
        hop_length=300,
        center=True,
        pad_mode="reflect",
        n_mels=80,
        f_min=0.0,
        f_max=None,
        mel_scale="htk",
        norm=None,
        power=2.0,
        compression="log",
        log_guard="add",
        log_floor=1e-5,
        mel_mean=-4.0,
        mel_std=4.0,
    ),
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
PRESETS["nemo-44k"] = {
    **PRESETS["nemo"],
    "sample_rate": 44100,
    "n_fft": 2048,
    "win_length": 2048,
    "hop_length": 512,
    "f_max": None,
}
ALIASES = {"bigvgan": "bigvgan-24k-100", "espnet": "parallel-wavegan"}
for _alias, _name in ALIASES.items():
    PRESETS[_alias] = PRESETS[_name]

DERIVED: dict[str, dict[str, Callable[[dict[str, Any]], Any]]] = {
    name: {"manual_pad": _hifigan_pad}
    for name in PRESETS
    if name in ("hifigan", "matcha", "bigvgan") or name.startswith("bigvgan-")
}

SOURCES: dict[str, str] = {
    "hifigan": "jik876/hifi-gan meldataset.py mel_spectrogram (config_v1)",
    "bigvgan-24k-100": "NVIDIA/BigVGAN v1 bigvgan_24khz_100band (meldataset.py)",
    "bigvgan-v2-22k-80": "NVIDIA/BigVGAN v2 bigvgan_v2_22khz_80band_256x",
    "bigvgan-v2-24k-100": "NVIDIA/BigVGAN v2 bigvgan_v2_24khz_100band_256x",
    "bigvgan-v2-44k-128": "NVIDIA/BigVGAN v2 bigvgan_v2_44khz_128band_256x",
    "bigvgan-v2-44k-128-512x": "NVIDIA/BigVGAN v2 bigvgan_v2_44khz_128band_512x",
    "matcha": "shivammehta25/Matcha-TTS: HiFi-GAN mel, (mel - mel_mean) / mel_std (LJSpeech stats)",
    "vocos": "gemelo-ai/vocos MelSpectrogramFeatures (torchaudio, log clip 1e-7)",
    "tacotron2": "NVIDIA/tacotron2 layers.TacotronSTFT",
    "parallel-wavegan": "kan-bayashi/ParallelWaveGAN preprocess.logmelfilterbank (ESPnet vocoders)",
    "nemo": "NVIDIA/NeMo FilterbankFeatures, FastPitch/HiFi-GAN LJSpeech settings",
    "nemo-44k": "NVIDIA/NeMo FilterbankFeatures, 44.1 kHz TTS settings (NeMo TTS docs)",
    "styletts2": "yl4579/StyleTTS2 meldataset.preprocess",
    "torchaudio": "torchaudio.transforms.MelSpectrogram() defaults",
    "librosa": "librosa.feature.melspectrogram() defaults",
}
