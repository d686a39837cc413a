"""Shared fixtures: the real-speech test clip and small generic helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile as sf
import torch
from torch import Tensor

# The tests run many tiny tensor ops: a multi-threaded intra-op pool buys nothing there and, on a
# loaded machine (parallel jobs, CI runners), its spinning threads slow such ops down 10-70x.
# SPECINV_TEST_THREADS=N overrides (0 keeps torch's default).
_THREADS = int(os.environ.get("SPECINV_TEST_THREADS", "1"))
if _THREADS > 0:
    torch.set_num_threads(_THREADS)

# MelInverter fuses its loop with torch.compile by default under no-grad; compiling costs seconds
# in every process (pytest, DDP workers, CLI subprocesses). The suite runs the eager kernels by
# default; tests/test_fused.py checks that fused and eager results are equal.
os.environ.setdefault("SPECINV_LIGHTNING_COMPILE", "0")

ASSETS = Path(__file__).parent / "assets"
SPEECH_PATH = ASSETS / "arctic_a0007.wav"
SPEECH_SR = 16000


@pytest.fixture(scope="session")
def speech_path() -> Path:
    """Path of the 4 s, 16 kHz CMU Arctic clip (see ``tests/assets/COPYING.arctic``)."""
    return SPEECH_PATH


@pytest.fixture(scope="session")
def _speech_master() -> Tensor:
    data, sr = sf.read(SPEECH_PATH, dtype="float32", always_2d=False)
    assert sr == SPEECH_SR, f"{SPEECH_PATH} has sample rate {sr}, expected {SPEECH_SR}"
    assert data.ndim == 1, f"{SPEECH_PATH} is expected to be mono"
    return torch.from_numpy(data)


@pytest.fixture
def speech(_speech_master: Tensor) -> Tensor:
    """Real speech, a 1-D float32 tensor at 16 kHz (a fresh copy per test: safe to modify)."""
    return _speech_master.clone()


@pytest.fixture(scope="session")
def speech_sr() -> int:
    """Sample rate of :func:`speech`."""
    return SPEECH_SR


def spectral_convergence_db(estimate: Tensor, reference: Tensor) -> float:
    """``20 log10(||estimate - reference||_F / ||reference||_F)`` over the whole tensor, in dB."""
    estimate, reference = estimate.detach().double(), reference.detach().double()
    num = torch.linalg.vector_norm(estimate - reference)
    return float(20.0 * torch.log10(num / torch.linalg.vector_norm(reference)))


@pytest.fixture(scope="session")
def sc_db():
    """The :func:`spectral_convergence_db` helper, as a fixture."""
    return spectral_convergence_db
