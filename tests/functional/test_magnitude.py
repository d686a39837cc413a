"""Linear mel -> linear spectrum: pinv, NNLS (FISTA) and normalised transpose."""

from __future__ import annotations

import pytest
import torch

from specinv_lightning import MelConfig
from specinv_lightning.functional import (
    filterbank_lipschitz,
    filterbank_pinv,
    mel_filterbank,
    nnls_spectrum,
    pinv_spectrum,
    project_onto_mel,
    rescale_onto_mel,
    stft,
    transpose_spectrum,
)

HIFIGAN_16K = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)
TORCHAUDIO = MelConfig.from_preset("torchaudio")  # n_fft=400, 128 HTK mels: rank deficient


def _problem(cfg: MelConfig, speech: torch.Tensor, seconds: float = 0.25):
    """A known non-negative spectrum S (real speech, |X|^power), its filterbank and mel M = F S."""
    x = speech[8000 : 8000 + int(seconds * 16000)].double()
    spectrum = stft(x, cfg).abs() ** cfg.power
    fb = mel_filterbank(cfg, torch.float64)
    return spectrum, fb, filterbank_pinv(fb), fb @ spectrum


def _residual(fb: torch.Tensor, spectrum: torch.Tensor, mel: torch.Tensor) -> float:
    return float(torch.linalg.norm(fb @ spectrum - mel) / torch.linalg.norm(mel))


def _projected_gradient(fb, spectrum, mel) -> float:
    """Relative norm of the NNLS KKT violation (zero exactly at the optimum)."""
    grad = fb.T @ (fb @ spectrum - mel)
    violation = torch.where(spectrum > 0, grad, grad.clamp(max=0.0))
    return float(torch.linalg.norm(violation) / torch.linalg.norm(fb.T @ mel))


@pytest.mark.parametrize("cfg", [HIFIGAN_16K, TORCHAUDIO], ids=["hifigan16k", "torchaudio"])
def test_nnls_beats_pinv_and_converges(cfg: MelConfig, speech) -> None:
    spectrum, fb, fb_pinv, mel = _problem(cfg, speech)
    pinv = pinv_spectrum(mel, fb_pinv)
    nnls = nnls_spectrum(mel, fb, fb_pinv)
    for out in (pinv, nnls):
        assert out.shape == spectrum.shape
        assert torch.isfinite(out).all() and (out >= 0).all()
    res_pinv, res_nnls = _residual(fb, pinv, mel), _residual(fb, nnls, mel)
    assert res_nnls < 0.1 * res_pinv, (res_nnls, res_pinv)
    # a real tolerance: the mel is matched to 1e-4 and the KKT conditions hold to 1e-4
    assert res_nnls <= 1e-4
    assert _projected_gradient(fb, nnls, mel) <= 1e-4
    # a tighter tolerance / more iterations gets (weakly) closer
    tighter = nnls_spectrum(mel, fb, fb_pinv, max_iter=400, tol=1e-8)
    assert _residual(fb, tighter, mel) <= res_nnls * (1 + 1e-9)


def test_pinv_residual_comes_only_from_the_clamp(speech) -> None:
    spectrum, fb, fb_pinv, mel = _problem(HIFIGAN_16K, speech)
    unclamped = fb_pinv @ mel
    assert _residual(fb, unclamped, mel) <= 1e-10  # F P M = M for M in range(F)
    assert (unclamped < 0).any()  # ... but it has negative bins, which the clamp removes
    assert _residual(fb, pinv_spectrum(mel, fb_pinv), mel) > 1e-3


def test_rank_deficient_filterbank(speech) -> None:
    spectrum, fb, fb_pinv, mel = _problem(TORCHAUDIO, speech)
    assert torch.linalg.matrix_rank(fb) < fb.shape[0]
    assert torch.isfinite(fb_pinv).all()
    assert float(fb_pinv.abs().max()) < 1e3  # the SVD cut-off, not 1 / (tiny singular value)
    for out in (pinv_spectrum(mel, fb_pinv), nnls_spectrum(mel, fb, fb_pinv),
                transpose_spectrum(mel, fb)):  # fmt: skip
        assert torch.isfinite(out).all() and (out >= 0).all()
    assert _residual(fb, pinv_spectrum(mel, fb_pinv), mel) <= 1e-2
    assert _residual(fb, nnls_spectrum(mel, fb, fb_pinv), mel) <= 1e-4


@pytest.mark.parametrize("cfg", [HIFIGAN_16K, TORCHAUDIO], ids=["hifigan16k", "torchaudio"])
def test_transpose_is_exact_for_a_flat_spectrum(cfg: MelConfig) -> None:
    fb = mel_filterbank(cfg, torch.float64)
    flat = torch.full((cfg.n_freqs, 5), 0.37, dtype=torch.float64)
    out = transpose_spectrum(fb @ flat, fb)
    covered = (fb.T @ fb.sum(dim=1)) > 0  # bins that some filter sees
    torch.testing.assert_close(out[covered], flat[covered], rtol=1e-12, atol=0)
    assert float(out[~covered].abs().sum()) == 0.0
    assert (out >= 0).all()


def test_project_onto_mel_moves_onto_the_constraint(speech) -> None:
    spectrum, fb, fb_pinv, mel = _problem(HIFIGAN_16K, speech)
    guess = spectrum * torch.rand(spectrum.shape, generator=torch.Generator().manual_seed(0),
                                  dtype=torch.float64) * 2  # fmt: skip
    before = _residual(fb, guess, mel)
    after = project_onto_mel(guess, mel, fb, fb_pinv)
    assert (after >= 0).all()
    assert _residual(fb, after, mel) < 0.25 * before
    # a spectrum already consistent with the mel is a fixed point
    torch.testing.assert_close(project_onto_mel(spectrum, mel, fb, fb_pinv), spectrum,
                               rtol=1e-9, atol=1e-9 * float(spectrum.max()))  # fmt: skip


LIBROSA_16K = MelConfig.from_preset("librosa", sample_rate=16000, f_max=6000.0)  # power 2


def test_rescale_onto_mel_moves_onto_the_constraint(speech) -> None:
    spectrum, fb, _, mel = _problem(LIBROSA_16K, speech)
    guess = spectrum * torch.rand(spectrum.shape, generator=torch.Generator().manual_seed(0),
                                  dtype=torch.float64) * 2  # fmt: skip
    before = _residual(fb, guess, mel)
    three = rescale_onto_mel(guess, mel, fb)
    many = rescale_onto_mel(guess, mel, fb, sweeps=50)
    assert (three >= 0).all() and (many >= 0).all()
    assert _residual(fb, three, mel) < 0.5 * before
    assert _residual(fb, many, mel) < 0.1 * before
    # bins above f_max (no filter) pass through; a consistent spectrum is a fixed point
    untouched = fb.sum(dim=0) == 0
    assert untouched.any()
    assert torch.equal(three[untouched], guess[untouched])
    torch.testing.assert_close(rescale_onto_mel(spectrum, mel, fb), spectrum,
                               rtol=1e-9, atol=1e-9 * float(spectrum.max()))  # fmt: skip


def test_rescale_onto_mel_is_finite_at_zeros_with_finite_gradients(speech) -> None:
    spectrum, fb, _, mel = _problem(LIBROSA_16K, speech)
    spectrum, fb, mel = spectrum.float(), fb.float(), mel.float()
    spectrum[:, :5] = 0.0  # silent frames in the spectrum, not in the mel
    spectrum[:, 5:10] *= 1e-19  # and far below it (F S squared underflows float32)
    spectrum.requires_grad_()
    mel.requires_grad_()
    out = rescale_onto_mel(spectrum, mel, fb)
    assert torch.isfinite(out).all() and (out >= 0).all()
    assert float(out[:, :5].detach().abs().max()) == 0.0  # nothing to rescale: stays zero
    out.sum().backward()
    assert torch.isfinite(spectrum.grad).all() and torch.isfinite(mel.grad).all()
    # a zero mel rescales every bin a filter covers to zero (DC and bins above f_max pass)
    covered = fb.sum(dim=0) > 0
    silent = rescale_onto_mel(spectrum.detach(), torch.zeros_like(mel), fb)
    assert float(silent[covered].abs().max()) == 0.0
    assert torch.equal(silent[~covered], spectrum.detach()[~covered])


def test_lipschitz_constant() -> None:
    fb = mel_filterbank(HIFIGAN_16K, torch.float64)
    lip = filterbank_lipschitz(fb)
    eig = torch.linalg.eigvalsh(fb @ fb.T).max()
    assert lip == pytest.approx(float(eig), rel=1e-10)


@pytest.mark.parametrize("method", ["pinv", "nnls", "transpose"])
def test_batched_and_differentiable(method: str, speech) -> None:
    _, fb, fb_pinv, mel = _problem(HIFIGAN_16K, speech)
    mel = torch.stack([mel, 0.5 * mel]).unsqueeze(1).requires_grad_(True)  # (2, 1, n_mels, T)
    fns = {
        "pinv": lambda m: pinv_spectrum(m, fb_pinv),
        "nnls": lambda m: nnls_spectrum(m, fb, fb_pinv, max_iter=50),
        "transpose": lambda m: transpose_spectrum(m, fb),
    }
    out = fns[method](mel)
    assert out.shape == (2, 1, HIFIGAN_16K.n_freqs, mel.shape[-1])
    # batch items are solved independently (a linear problem: half the mel, half the spectrum)
    torch.testing.assert_close(out[1], 0.5 * out[0], rtol=1e-6, atol=1e-9)
    out.square().sum().backward()
    assert torch.isfinite(mel.grad).all() and float(mel.grad.abs().sum()) > 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtypes(dtype: torch.dtype, speech) -> None:
    spectrum, fb, fb_pinv, mel = _problem(HIFIGAN_16K, speech)
    fb, fb_pinv, mel = fb.to(dtype), fb_pinv.to(dtype), mel.to(dtype)
    for out in (pinv_spectrum(mel, fb_pinv), nnls_spectrum(mel, fb, fb_pinv),
                transpose_spectrum(mel, fb)):  # fmt: skip
        assert out.dtype == dtype and torch.isfinite(out).all()
    assert filterbank_pinv(fb).dtype == dtype
    assert _residual(fb.double(), nnls_spectrum(mel, fb, fb_pinv).double(), mel.double()) <= 1e-3
