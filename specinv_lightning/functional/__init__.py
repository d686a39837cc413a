"""Pure tensor functions: filterbanks, STFT, compression, mel -> magnitude, phase retrieval, metrics."""

from specinv_lightning.functional.compression import compress, decompress
from specinv_lightning.functional.filterbank import hz_to_mel, mel_filterbank, mel_to_hz
from specinv_lightning.functional.magnitude import (
    BandedFilterbank,
    active_bins,
    filterbank_blocks,
    filterbank_lipschitz,
    filterbank_pinv,
    nnls_spectrum,
    pinv_spectrum,
    project_onto_mel,
    project_onto_mel_,
    transpose_spectrum,
)
from specinv_lightning.functional.metrics import (
    log_spectral_distance,
    mel_consistency,
    multi_resolution_stft_loss,
    spectral_convergence,
    spectral_inconsistency,
    stft_loss,
)
from specinv_lightning.functional.phase import griffin_lim, initial_phase
from specinv_lightning.functional.stft import (
    istft,
    make_window,
    spectrogram_magnitude,
    stft,
    window_envelope,
)

__all__ = [
    "active_bins",
    "compress",
    "decompress",
    "filterbank_lipschitz",
    "filterbank_pinv",
    "griffin_lim",
    "hz_to_mel",
    "initial_phase",
    "istft",
    "make_window",
    "mel_filterbank",
    "mel_to_hz",
    "nnls_spectrum",
    "pinv_spectrum",
    "project_onto_mel",
    "project_onto_mel_",
    "BandedFilterbank",
    "filterbank_blocks",
    "spectrogram_magnitude",
    "stft",
    "transpose_spectrum",
    "window_envelope",
]
__all__ += [
    "log_spectral_distance",
    "mel_consistency",
    "multi_resolution_stft_loss",
    "spectral_convergence",
    "spectral_inconsistency",
    "stft_loss",
]
