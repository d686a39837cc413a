"""Parity with torchaudio: filterbanks, MelSpectrogram, ``MelConfig.from_torchaudio``, Vocos features.

torchaudio is optional (only a test peer): every test here skips cleanly without it. Run with the
interpreter that has it, e.g. ``/work/venv-ta/bin/python -m pytest tests/parity``.
"""

from __future__ import annotations

import pytest
import torch

from specinv_lightning import MelConfig, MelInverter, MelSpectrogram
from specinv_lightning.functional import mel_filterbank

torchaudio = pytest.importorskip("torchaudio")
T = torchaudio.transforms

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SCALE_NORM = [("htk", None), ("htk", "slaney"), ("slaney", None), ("slaney", "slaney")]


def _rel_max_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    ours, ref = ours.double(), ref.double()
    return float((ours - ref).abs().max() / ref.abs().max())


@pytest.mark.parametrize(("mel_scale", "norm"), SCALE_NORM)
@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "f_min", "f_max"),
    [
        (22050, 1024, 80, 0.0, 8000.0),
        (24000, 1024, 100, 0.0, 12000.0),
        (16000, 400, 128, 0.0, 8000.0),  # torchaudio defaults: rank deficient
        (16000, 512, 40, 125.0, 7600.0),
    ],
)
def test_filterbank_matches_melscale_fbanks(mel_scale, norm, sr, n_fft, n_mels, f_min, f_max):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # torchaudio builds the bank in the default dtype
    try:
        ref = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1, f_min=f_min, f_max=f_max, n_mels=n_mels, sample_rate=sr,
            norm=norm, mel_scale=mel_scale,
        ).T  # fmt: skip
    finally:
        torch.set_default_dtype(previous)
    assert ref.dtype == torch.float64
    cfg = MelConfig(sample_rate=sr, n_fft=n_fft, n_mels=n_mels, f_min=f_min, f_max=f_max,
                    mel_scale=mel_scale, norm=norm)  # fmt: skip
    ours = mel_filterbank(cfg, dtype=torch.float64)
    assert ours.shape == ref.shape
    assert _rel_max_err(ours, ref) <= 1e-5
    # torchaudio's own float32 bank agrees to float32 rounding
    ref32 = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, f_min, f_max, n_mels, sr, norm, mel_scale
    ).T
    assert _rel_max_err(ours, ref32) <= 1e-4


def _transforms() -> dict[str, torch.nn.Module]:
    return {
        "defaults": T.MelSpectrogram(),
        "vocos": T.MelSpectrogram(
            sample_rate=24000, n_fft=1024, hop_length=256, n_mels=100, center=True, power=1
        ),  # fmt: skip
        "slaney_hamming_short_window": T.MelSpectrogram(
            sample_rate=16000,
            n_fft=512,
            win_length=400,
            hop_length=160,
            n_mels=64,
            f_min=50.0,
            f_max=7000.0,
            window_fn=torch.hamming_window,
            norm="slaney",
            mel_scale="slaney",
        ),  # fmt: skip
        "normalized_uncentred": T.MelSpectrogram(
            sample_rate=16000,
            n_fft=256,
            hop_length=64,
            n_mels=32,
            normalized=True,
            center=False,
            power=1.0,
        ),  # fmt: skip
        "constant_pad": T.MelSpectrogram(
            sample_rate=16000, n_fft=512, hop_length=128, n_mels=48, pad_mode="constant"
        ),  # fmt: skip
        "db_power": torch.nn.Sequential(
            T.MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=128, n_mels=48),
            T.AmplitudeToDB(stype="power", top_db=None),
        ),
        "db_magnitude": torch.nn.Sequential(
            T.MelSpectrogram(sample_rate=16000, n_fft=512, hop_length=128, n_mels=48, power=1),
            T.AmplitudeToDB(stype="magnitude", top_db=None),
        ),
    }


@pytest.mark.parametrize("name", list(_transforms()))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mel_spectrogram_matches_torchaudio(name: str, dtype: torch.dtype, speech) -> None:
    transform = _transforms()[name].to(dtype)
    cfg = MelConfig.from_torchaudio(transform)
    x = speech[:16000].to(dtype).reshape(1, 2, 8000)  # batch dims (..., samples)
    ref = transform(x)
    ours = MelSpectrogram(cfg)(x)
    assert ours.dtype == dtype
    assert ours.shape == ref.shape
    assert _rel_max_err(ours, ref) <= 1e-5
    if cfg.compression == "none":
        # relative error per element, on bins with energy
        mask = ref > 1e-3 * ref.max()
        assert ((ours - ref).abs()[mask] / ref[mask]).max() <= 1e-4


def test_from_torchaudio_fields() -> None:
    cfg = MelConfig.from_torchaudio(T.MelSpectrogram())
    assert cfg == MelConfig.from_preset("torchaudio")
    vocos = MelConfig.from_torchaudio(
        T.MelSpectrogram(sample_rate=24000, n_fft=1024, hop_length=256, n_mels=100, power=1),
        compression="log", log_floor=1e-7,
    )  # fmt: skip
    assert vocos == MelConfig.from_preset("vocos")
    db = MelConfig.from_torchaudio(torch.nn.Sequential(T.MelSpectrogram(), T.AmplitudeToDB()))
    assert (db.compression, db.log_multiplier, db.log_floor) == ("db", 10.0, 1e-10)
    cfg = MelConfig.from_torchaudio(T.MelSpectrogram(n_fft=512, win_length=300,
                                                     window_fn=torch.blackman_window))  # fmt: skip
    assert (cfg.window, cfg.win_length, cfg.hop_length) == ("blackman", 300, 150)


def _db_with_ref(ref_value: float) -> torch.nn.Module:
    db = T.AmplitudeToDB(top_db=None)
    db.ref_value = ref_value
    db.db_multiplier = float(torch.log10(torch.tensor(max(db.amin, ref_value))))
    return db


@pytest.mark.parametrize(
    ("transform", "match"),
    [
        (T.MelSpectrogram(pad=10), "pad"),
        (T.MelSpectrogram(power=None), "power"),
        (T.MelSpectrogram(window_fn=lambda n: torch.hann_window(n, periodic=False)), "window"),
        (torch.nn.Sequential(T.MelSpectrogram(), T.AmplitudeToDB(top_db=80.0)), "top_db"),
        (torch.nn.Sequential(T.MelSpectrogram(), _db_with_ref(2.0)), "ref_value"),
        (T.Spectrogram(), "MelSpectrogram"),
    ],
)
def test_from_torchaudio_rejects_what_it_cannot_express(transform, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MelConfig.from_torchaudio(transform)


def _vocos_features(audio: torch.Tensor) -> torch.Tensor:
    """gemelo-ai/vocos ``MelSpectrogramFeatures(padding="center")`` (vocos/feature_extractors.py)."""
    mel_spec = T.MelSpectrogram(sample_rate=24000, n_fft=1024, hop_length=256, n_mels=100,
                                center=True, power=1).to(audio.dtype)  # fmt: skip
    return torch.log(torch.clip(mel_spec(audio), min=1e-7))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_vocos_preset_matches_vocos_features(dtype: torch.dtype) -> None:
    x = 0.1 * torch.randn(2, 24000, generator=torch.Generator().manual_seed(0), dtype=dtype)
    x[1, 12000:] = 0.0  # silence reaches the log clip
    ref = _vocos_features(x)
    ours = MelSpectrogram("vocos")(x)
    assert ours.shape == ref.shape
    assert float((ours - ref).abs().max()) <= 1e-4  # log domain: absolute error
    assert float(ours.min()) == pytest.approx(float(torch.log(torch.tensor(1e-7))), rel=1e-6)


def test_inverter_beats_torchaudio_inverse_mel_griffin_lim(speech, sc_db) -> None:
    """The quality half of the benchmark claim: better mel consistency at the same iterations."""
    x = speech[8000:40000]  # 2 s
    mel_t = T.MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=256, n_mels=80, power=1.0,
                             norm="slaney", mel_scale="slaney")  # fmt: skip
    cfg = MelConfig.from_torchaudio(mel_t)
    mel = mel_t(x)
    torch.manual_seed(0)
    ref_wave = T.GriffinLim(n_fft=1024, hop_length=256, power=1.0, n_iter=32, length=x.shape[-1])(
        T.InverseMelScale(n_stft=513, n_mels=80, sample_rate=16000, norm="slaney",
                          mel_scale="slaney")(mel)
    )  # fmt: skip
    ours = MelInverter(cfg, n_iter=32)(mel, length=x.shape[-1])
    ref_sc = sc_db(mel_t(ref_wave), mel)
    our_sc = sc_db(mel_t(ours), mel)
    assert our_sc <= -25.0
    assert our_sc <= ref_sc - 3.0, (our_sc, ref_sc)
