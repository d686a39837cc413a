"""specinv_lightning: differentiable mel-spectrogram inversion on the training device, for Lightning."""

from specinv_lightning.callback import InversionCallback
from specinv_lightning.config import PRESETS, MelConfig
from specinv_lightning.inverse import MelInverter
from specinv_lightning.loggers import AudioClip, MediaSink
from specinv_lightning.loss import MultiResolutionSTFTLoss, WaveformReconstructionLoss
from specinv_lightning.mel import MelSpectrogram
from specinv_lightning.metrics import LogSpectralDistance, MelConsistency, SpectralConvergence

__all__ = ["PRESETS", "MelConfig", "MelInverter", "MelSpectrogram"]
__all__ += ["LogSpectralDistance", "MelConsistency", "SpectralConvergence"]
__all__ += ["MultiResolutionSTFTLoss", "WaveformReconstructionLoss"]
__all__ += ["AudioClip", "InversionCallback", "MediaSink"]
__version__ = "0.1.0"
