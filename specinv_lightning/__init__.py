"""specinv_lightning: differentiable mel-spectrogram inversion on the training device, for Lightning."""

from specinv_lightning.config import PRESETS, MelConfig
from specinv_lightning.inverse import MelInverter
from specinv_lightning.mel import MelSpectrogram

__all__ = ["PRESETS", "MelConfig", "MelInverter", "MelSpectrogram"]
__version__ = "0.1.0"
