"""Pure tensor functions: filterbanks, STFT, compression, mel -> magnitude, phase retrieval, metrics.

This is the math a user calls; the engine's private machinery (frame-major transforms, in-place
operators, fused kernels, the choice of loop) lives in the ``_``-prefixed modules beside it.
"""

from specinv_lightning.functional.compression import (
    clamp_to_floor,
    compress,
    compressed_floor,
    decompress,
)
from specinv_lightning.functional.filterbank import hz_to_mel, mel_filterbank, mel_to_hz
from specinv_lightning.functional.initial import INITS, initial_phase
from specinv_lightning.functional.magnitude import (
    filterbank_lipschitz,
    filterbank_pinv,
    nnls_spectrum,
    pinv_spectrum,
    project_onto_mel,
    rescale_onto_mel,
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
from specinv_lightning.functional.peaks import peak_fit, peak_model, peak_spectrum
from specinv_lightning.functional.pghi import pghi_phase
from specinv_lightning.functional.phase import (
    ALGORITHMS,
    Algorithm,
    LoopWeights,
    griffin_lim,
    register_algorithm,
)
from specinv_lightning.functional.stft import (
    istft,
    make_window,
    spectrogram_magnitude,
    stft,
    window_envelope,
)

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "INITS",
    "LoopWeights",
    "clamp_to_floor",
    "compress",
    "compressed_floor",
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
    "peak_fit",
    "peak_model",
    "peak_spectrum",
    "pghi_phase",
    "pinv_spectrum",
    "project_onto_mel",
    "rescale_onto_mel",
    "register_algorithm",
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
