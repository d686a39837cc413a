"""``MelSpectrogram``: waveform -> (compressed) mel exactly as a :class:`MelConfig` describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from specinv_lightning.config import MelConfig, as_config
from specinv_lightning.functional._checks import check_waveform
from specinv_lightning.functional.compression import compress
from specinv_lightning.functional.filterbank import mel_filterbank
from specinv_lightning.functional.stft import make_window, spectrogram_magnitude, stft

__all__ = ["MelSpectrogram", "as_config"]


class MelSpectrogram(nn.Module):
    """Waveform ``(..., samples)`` -> mel ``(..., n_mels, frames)``, compressed per the config.

    Reproduces HiFi-GAN/BigVGAN (manual reflect pad, ``sqrt(|X|^2 + 1e-9)``, ``log(clamp(., 1e-5))``),
    Vocos, Tacotron2, torchaudio and librosa mel transforms through their presets.

    Args:
        config: The transform (a :class:`MelConfig`, a preset name or a dict).

    Example:
        >>> import torch
        >>> from specinv_lightning import MelSpectrogram
        >>> mel = MelSpectrogram("hifigan")(torch.randn(2, 22050))
        >>> tuple(mel.shape)
        (2, 80, 86)
    """

    window: Tensor
    fb: Tensor

    def __init__(self, config: MelConfig | str | Mapping[str, Any]) -> None:
        super().__init__()
        self.config = as_config(config)
        # float64 masters, cast to the input's dtype per call (float32 and float64 both exact)
        self.register_buffer("window", make_window(self.config, torch.float64), persistent=False)
        self.register_buffer("fb", mel_filterbank(self.config, torch.float64), persistent=False)

    def linear(self, waveform: Tensor) -> Tensor:
        """Uncompressed (linear) mel of ``waveform``."""
        waveform = check_waveform(waveform, self.config.min_samples, "waveform")
        dtype = waveform.dtype
        spec = stft(waveform, self.config, window=self.window.to(dtype))
        mag = spectrogram_magnitude(spec, self.config.power, self.config.mag_eps)
        return torch.matmul(self.fb.to(dtype), mag)

    def forward(self, waveform: Tensor) -> Tensor:
        """Compressed mel ``(..., n_mels, frames)`` of a real waveform ``(..., samples)``."""
        return compress(self.linear(waveform), self.config)
