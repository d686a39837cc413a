"""Named mel conventions of model families (``MelConfig.from_preset(name)``), as plain field dicts.

Each entry names the published feature code it reproduces; the parity tests check them against it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS"]

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
