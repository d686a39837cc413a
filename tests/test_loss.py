"""MultiResolutionSTFTLoss (auraloss parity) and WaveformReconstructionLoss (training through GL)."""

from __future__ import annotations

import pytest
import torch

from specinv_lightning import (
    MelConfig,
    MelInverter,
    MelSpectrogram,
    MultiResolutionSTFTLoss,
    WaveformReconstructionLoss,
)
from specinv_lightning.functional import mel_consistency

CFG16 = MelConfig.from_preset("hifigan", sample_rate=16000)


# ------------------------------------------------------------------ MultiResolutionSTFTLoss
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mrstft_matches_auraloss_defaults(dtype) -> None:
    auraloss = pytest.importorskip("auraloss")
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(3, 1, 6000, generator=gen, dtype=dtype)
    target[1] *= 0.01  # loud and quiet items: the batch-wide SC ratio matters
    pred = target + 0.3 * torch.randn(target.shape, generator=gen, dtype=dtype)
    ours = MultiResolutionSTFTLoss()(pred, target)
    ref = auraloss.freq.MultiResolutionSTFTLoss()(pred, target)
    torch.testing.assert_close(ours, ref.to(ours.dtype), rtol=1e-6, atol=1e-7)
    # (B, T) gives the same value as (B, 1, T)
    torch.testing.assert_close(MultiResolutionSTFTLoss()(pred[:, 0], target[:, 0]), ours)


def test_mrstft_matches_auraloss_custom_and_gradients() -> None:
    auraloss = pytest.importorskip("auraloss")
    gen = torch.Generator().manual_seed(1)
    target = torch.randn(2, 1, 4000, generator=gen)
    target[0, 0, :1000] = 0.0  # silence: eps floor
    base = target + 0.2 * torch.randn(target.shape, generator=gen)
    settings = dict(
        fft_sizes=[256, 512], hop_sizes=[64, 128], win_lengths=[200, 512], w_sc=0.5, w_log_mag=2.0
    )
    ours_in = base.clone().requires_grad_()
    ref_in = base.clone().requires_grad_()
    ours, parts = MultiResolutionSTFTLoss(**settings, window="hann_window")(
        ours_in, target, return_components=True
    )
    ref = auraloss.freq.MultiResolutionSTFTLoss(**settings)(ref_in, target)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours, 0.5 * parts["sc"] + 2.0 * parts["log_mag"])
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-5, atol=1e-8)


def test_mrstft_mel_scale_matches_auraloss() -> None:
    auraloss = pytest.importorskip("auraloss")
    pytest.importorskip("librosa")
    gen = torch.Generator().manual_seed(3)
    target = torch.randn(2, 1, 8000, generator=gen)
    base = target + 0.3 * torch.randn(target.shape, generator=gen)
    settings = dict(fft_sizes=[512, 1024], hop_sizes=[128, 256], win_lengths=[512, 1024], w_sc=0.7)
    mel = dict(scale="mel", n_bins=64, sample_rate=16000)
    ours_in, ref_in = base.clone().requires_grad_(), base.clone().requires_grad_()
    ours = MultiResolutionSTFTLoss(**settings, **mel)(ours_in, target)
    ref = auraloss.freq.MultiResolutionSTFTLoss(**settings, **mel)(ref_in, target)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours_in.grad, ref_in.grad, rtol=1e-4, atol=1e-8)
    with pytest.raises(ValueError, match="sample_rate"):
        MultiResolutionSTFTLoss(scale="mel", n_bins=64)
    with pytest.raises(ValueError, match="n_bins"):
        MultiResolutionSTFTLoss(scale="mel", sample_rate=16000)
    with pytest.raises(ValueError, match="n_bins"):  # empty bands at fft 512 -> log(0)
        MultiResolutionSTFTLoss(scale="mel", n_bins=256, sample_rate=16000)
    with pytest.raises(ValueError, match="scale"):
        MultiResolutionSTFTLoss(scale="chroma", n_bins=12, sample_rate=16000)


def test_mrstft_silence_and_errors() -> None:
    loss = MultiResolutionSTFTLoss()
    x = torch.zeros(2, 4000, requires_grad=True)
    value = loss(x, torch.zeros(2, 4000))
    assert float(value.detach()) == 0.0
    value.backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(2, 4000), torch.zeros(2, 3999))
    with pytest.raises(ValueError, match="at least 1025 samples"):
        loss(torch.zeros(2, 1000), torch.zeros(2, 1000))
    with pytest.raises(ValueError, match="NaN/Inf"):
        loss(torch.full((2, 4000), float("nan")), torch.zeros(2, 4000))
    with pytest.raises(ValueError, match="window"):
        MultiResolutionSTFTLoss(window="triangle")
    with pytest.raises(ValueError, match="same length"):
        MultiResolutionSTFTLoss(fft_sizes=[512], hop_sizes=[128, 64], win_lengths=[512])


# ------------------------------------------------------------------ WaveformReconstructionLoss
def _clip(speech: torch.Tensor, n: int = 1, seconds: float = 0.5) -> torch.Tensor:
    length = int(16000 * seconds)
    return speech[8000 : 8000 + n * length].reshape(n, length)


def test_free_mel_optimised_through_inversion(speech) -> None:
    """Only the waveform term (mel_weight=0): the gradient comes through Griffin-Lim."""
    torch.manual_seed(0)
    wave = _clip(speech)  # 0.5 s of real speech
    target_mel = MelSpectrogram(CFG16)(wave)
    mel = (target_mel + 0.5 * torch.randn_like(target_mel)).requires_grad_()
    loss_fn = WaveformReconstructionLoss(CFG16, n_iter=4, mel_weight=0.0)
    inverter = MelInverter(CFG16, n_iter=8)

    def consistency() -> tuple[float, float]:
        with torch.no_grad():
            rec = inverter(mel, length=wave.shape[-1])
            return (
                float(mel_consistency(rec, target_mel, CFG16)),  # against the true mel
                float(mel_consistency(rec, mel, CFG16)),  # against its own (optimised) mel
            )

    before = consistency()
    opt = torch.optim.Adam([mel], lr=0.05)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = loss_fn(mel, wave)
        loss.backward()
        assert torch.isfinite(mel.grad).all() and mel.grad.abs().sum() > 0
        losses.append(float(loss.detach()))
        opt.step()
    after = consistency()
    assert losses[-1] < 0.85 * losses[0], losses
    assert after[0] < before[0] - 3.0, (before, after)
    assert after[1] < before[1] - 0.5, (before, after)


@pytest.mark.parametrize("init", ["pghi", "target"])
def test_true_mel_is_a_stationary_point(speech, init) -> None:
    """At the target's own mel the waveform term is zero and its gradient vanishes; at a
    perturbed mel the gradient is large and points back towards the true mel."""
    wave = _clip(speech, n=2)
    true_mel = MelSpectrogram(CFG16)(wave)
    noise = torch.randn(true_mel.shape, generator=torch.Generator().manual_seed(0))
    loss_fn = WaveformReconstructionLoss(CFG16, n_iter=2, mel_weight=0.0, init=init)
    grads = []
    for mel0 in (true_mel, true_mel + 0.5 * noise):
        mel = mel0.clone().requires_grad_()
        loss = loss_fn(mel, wave)
        loss.backward()
        assert torch.isfinite(mel.grad).all()
        grads.append(mel.grad)
        if mel0 is true_mel:
            assert float(loss.detach()) < 1e-6
    assert float(grads[0].norm()) < 1e-3 * float(grads[1].norm())
    # a descent step from the perturbed mel moves towards the true mel
    cos = torch.nn.functional.cosine_similarity(-grads[1].flatten(), -noise.flatten(), dim=0)
    assert float(cos) > 0.05


def test_components_mel_term_and_teacher_forcing(speech) -> None:
    wave = _clip(speech, n=2)
    mel = MelSpectrogram(CFG16)(wave)
    random_init = WaveformReconstructionLoss(CFG16, n_iter=4, init="random", reference="target")
    teacher = WaveformReconstructionLoss(CFG16, n_iter=4, init="target", reference="target")
    loss_r, parts_r = random_init(mel, wave, return_components=True)
    loss_t, parts_t = teacher(mel, wave, return_components=True)
    # the mel term vanishes for the target's own mel; teacher forcing reconstructs far better
    assert float(parts_r["mel"]) < 1e-6 and float(parts_t["mel"]) < 1e-6
    torch.testing.assert_close(loss_r, parts_r["stft"] + parts_r["mel"])
    assert float(parts_t["stft"]) < 0.5 * float(parts_r["stft"])
    # the mel term is the L1 to the target's compressed mel
    shifted = mel + 0.25
    _, parts = random_init(shifted, wave, return_components=True)
    assert abs(float(parts["mel"]) - 0.25) < 1e-5
    # (B, 1, T) target is accepted
    torch.testing.assert_close(random_init(mel, wave[:, None]), loss_r)


def test_checkpoint_matches_plain_backward(speech) -> None:
    wave = _clip(speech, n=2, seconds=0.3)
    mel0 = MelSpectrogram(CFG16)(wave) + 0.1
    grads, values = [], []
    for checkpoint in (False, True):
        mel = mel0.clone().requires_grad_()
        loss = WaveformReconstructionLoss(CFG16, n_iter=4, checkpoint=checkpoint)(mel, wave)
        loss.backward()
        grads.append(mel.grad)
        values.append(loss.detach())
    torch.testing.assert_close(values[0], values[1])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_silence_and_log_floor_gradients_finite() -> None:
    wave = torch.zeros(2, 4000)
    floor = torch.log(torch.tensor(CFG16.log_floor))
    frames = CFG16.num_frames(4000)
    for init in ("random", "zeros", "target"):
        loss_fn = WaveformReconstructionLoss(CFG16, n_iter=3, init=init)
        for mel0 in (torch.full((2, 80, frames), float(floor)), torch.full((2, 80, frames), -30.0)):
            mel = mel0.clone().requires_grad_()
            loss = loss_fn(mel, wave)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(mel.grad).all(), init


def test_lengths_mask_padding(speech) -> None:
    wave = _clip(speech, n=2, seconds=0.4)
    mel = MelSpectrogram(CFG16)(wave) + 0.2 * torch.randn(2, 80, CFG16.num_frames(6400))
    lengths = torch.tensor([6400, 3000])
    loss_fn = WaveformReconstructionLoss(CFG16, n_iter=2)
    base = loss_fn(mel, wave, lengths=lengths)
    garbage = wave.clone()
    garbage[1, 3000:] = torch.randn(3400)
    # target samples past each length are ignored
    torch.testing.assert_close(loss_fn(mel, garbage, lengths=lengths), base)
    assert float((loss_fn(mel, garbage) - loss_fn(mel, wave)).abs()) > 1e-3
    # mel frames past each length do not enter the mel term
    mel_only = WaveformReconstructionLoss(CFG16, mel_weight=1.0, stft_weight=0.0)
    valid = CFG16.num_frames(3000)
    mel_garbage = mel.clone()
    mel_garbage[1, :, valid:] = 5.0
    torch.testing.assert_close(
        mel_only(mel_garbage, wave, lengths=lengths), mel_only(mel, wave, lengths=lengths)
    )


def test_reconstruction_loss_bad_input(speech) -> None:
    wave = _clip(speech, n=2, seconds=0.3)
    mel = MelSpectrogram(CFG16)(wave)
    loss_fn = WaveformReconstructionLoss(CFG16, n_iter=1)
    with pytest.raises(ValueError, match="at most one frame"):
        loss_fn(mel[..., :-2], wave)
    loss_fn(mel[..., :-1], wave)  # one frame of difference is fine
    with pytest.raises(ValueError, match="leading dims"):
        loss_fn(mel, wave[:1])
    with pytest.raises(ValueError, match="NaN/Inf"):
        loss_fn(mel, wave * float("nan"))
    with pytest.raises(ValueError, match="NaN/Inf"):
        loss_fn(mel * float("inf"), wave)
    with pytest.raises(ValueError, match="n_mels"):
        loss_fn(mel[:, :40], wave)
    with pytest.raises(ValueError, match="lengths"):
        loss_fn(mel, wave, lengths=[10, 10, 10])
    with pytest.raises(ValueError, match="lengths"):
        loss_fn(mel, wave, lengths=[0, 100])
    with pytest.raises(ValueError, match="init"):
        WaveformReconstructionLoss(CFG16, init="teacher")
    with pytest.raises(ValueError, match="reference"):
        WaveformReconstructionLoss(CFG16, reference="wave")
    with pytest.raises(ValueError, match="not both 0"):
        WaveformReconstructionLoss(CFG16, mel_weight=0.0, stft_weight=0.0)


def test_gradients_finite_hifigan_22k() -> None:
    torch.manual_seed(0)
    wave = 0.1 * torch.randn(2, 22050)
    mel = (MelSpectrogram("hifigan")(wave) + 0.3 * torch.randn(2, 80, 86)).requires_grad_()
    loss = WaveformReconstructionLoss("hifigan", n_iter=3, mel_weight=0.0)(mel, wave)
    loss.backward()
    assert torch.isfinite(mel.grad).all()


def test_ready_inverter_is_used(speech) -> None:
    wave = speech[:16000][None]
    mel = MelSpectrogram(CFG16)(wave)
    inverter = MelInverter(CFG16, n_iter=3, init="zeros")
    loss = WaveformReconstructionLoss(inverter=inverter, mel_weight=0.0)
    assert loss.inverter is inverter and loss.config == CFG16
    same = WaveformReconstructionLoss(
        CFG16, n_iter=3, mel_weight=0.0, init="zeros", detach_phase=False
    )
    torch.testing.assert_close(loss(mel, wave), same(mel, wave))
    with pytest.raises(ValueError, match=r"do not also pass \['n_iter'\]"):
        WaveformReconstructionLoss(inverter=inverter, n_iter=8)
    with pytest.raises(ValueError, match="config: differs from inverter.config"):
        WaveformReconstructionLoss("hifigan", inverter=inverter)
    with pytest.raises(ValueError, match="inverter: expected a MelInverter"):
        WaveformReconstructionLoss(inverter="hifigan")
    with pytest.raises(ValueError, match="config: expected"):
        WaveformReconstructionLoss()


def test_pghi_init_in_the_loss(speech) -> None:
    wave = speech[:16000][None]
    mel = (MelSpectrogram(CFG16)(wave) + 0.1).requires_grad_()
    loss = WaveformReconstructionLoss(CFG16, n_iter=3, init="pghi")
    assert loss.inverter.init == "pghi"
    loss(mel, wave).backward()
    assert torch.isfinite(mel.grad).all() and mel.grad.abs().sum() > 0


@pytest.mark.parametrize("level", [40.0, 95.0])
@pytest.mark.parametrize("reference", ["inversion", "target"])
def test_one_overflowing_frame_gives_finite_loss_and_gradients(level: float, reference) -> None:
    # one predicted frame at log-mel 40 is a 1e17-loud frame: formerly an inf loss, NaN gradients
    wave = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    mel = MelSpectrogram(CFG16)(wave)
    mel[0, :, 10] = level
    mel.requires_grad_()
    loss = WaveformReconstructionLoss(CFG16, n_iter=2, reference=reference)(mel, wave)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(mel.grad).all()
