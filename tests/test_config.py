"""MelConfig: preset values, validation, (de)serialisation and frame/sample bookkeeping."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from specinv_lightning import PRESETS, MelConfig, MelSpectrogram
from specinv_lightning.functional import istft, stft

ALL_PRESETS = sorted(PRESETS)


def test_hifigan_preset_values() -> None:
    cfg = MelConfig.from_preset("hifigan")
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_length) == (22050, 1024, 256, 1024)
    assert cfg.n_mels == 80
    assert (cfg.f_min, cfg.f_max) == (0.0, 8000.0)
    assert (cfg.mel_scale, cfg.norm) == ("slaney", "slaney")
    assert (cfg.compression, cfg.log_floor, cfg.log_multiplier) == ("log", 1e-5, 1.0)
    assert cfg.manual_pad == 384 == (cfg.n_fft - cfg.hop_length) // 2
    assert cfg.center is False
    assert cfg.mag_eps == 1e-9
    assert cfg.power == 1.0
    assert cfg.window == "hann"
    assert cfg.normalized is False


def test_bigvgan_preset_values() -> None:
    cfg = MelConfig.from_preset("bigvgan-24k-100")
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_length) == (24000, 1024, 256, 1024)
    assert (cfg.n_mels, cfg.f_min, cfg.f_max) == (100, 0.0, 12000.0)
    assert (cfg.mel_scale, cfg.norm, cfg.power) == ("slaney", "slaney", 1.0)
    assert (cfg.center, cfg.manual_pad, cfg.mag_eps) == (False, 384, 1e-9)
    assert (cfg.compression, cfg.log_floor) == ("log", 1e-5)
    # aliases and spelling variants resolve to the same preset
    assert MelConfig.from_preset("bigvgan") == cfg
    assert MelConfig.from_preset("BigVGAN_24k_100") == cfg


def test_vocos_preset_values() -> None:
    cfg = MelConfig.from_preset("vocos")
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_length) == (24000, 1024, 256, 1024)
    assert (cfg.n_mels, cfg.f_min, cfg.f_max) == (100, 0.0, 12000.0)
    assert (cfg.mel_scale, cfg.norm, cfg.power) == ("htk", None, 1.0)
    assert (cfg.center, cfg.pad_mode, cfg.manual_pad, cfg.mag_eps) == (True, "reflect", 0, 0.0)
    assert (cfg.compression, cfg.log_floor, cfg.log_multiplier) == ("log", 1e-7, 1.0)


def test_tacotron2_preset_values() -> None:
    cfg = MelConfig.from_preset("tacotron2")
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_length) == (22050, 1024, 256, 1024)
    assert (cfg.n_mels, cfg.f_min, cfg.f_max) == (80, 0.0, 8000.0)
    assert (cfg.mel_scale, cfg.norm, cfg.power) == ("slaney", "slaney", 1.0)
    assert (cfg.center, cfg.pad_mode, cfg.manual_pad) == (True, "reflect", 0)
    assert (cfg.compression, cfg.log_floor) == ("log", 1e-5)


def test_torchaudio_preset_values() -> None:
    # torchaudio.transforms.MelSpectrogram() defaults
    cfg = MelConfig.from_preset("torchaudio")
    assert (cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.hop_length) == (16000, 400, 400, 200)
    assert (cfg.n_mels, cfg.f_min, cfg.f_max) == (128, 0.0, 8000.0)
    assert (cfg.mel_scale, cfg.norm, cfg.power) == ("htk", None, 2.0)
    assert (cfg.center, cfg.pad_mode, cfg.normalized) == (True, "reflect", False)
    assert cfg.compression == "none"


def test_librosa_preset_values() -> None:
    # librosa.feature.melspectrogram() defaults (librosa >= 0.10 pads with zeros)
    cfg = MelConfig.from_preset("librosa")
    assert (cfg.sample_rate, cfg.n_fft, cfg.win_length, cfg.hop_length) == (22050, 2048, 2048, 512)
    assert (cfg.n_mels, cfg.f_min, cfg.f_max) == (128, 0.0, 11025.0)
    assert (cfg.mel_scale, cfg.norm, cfg.power) == ("slaney", "slaney", 2.0)
    assert (cfg.center, cfg.pad_mode) == (True, "constant")
    assert cfg.compression == "none"


def test_defaults_derive_win_hop_fmax() -> None:
    cfg = MelConfig(sample_rate=16000, n_fft=512)
    assert cfg.win_length == 512
    assert cfg.hop_length == 128
    assert cfg.f_max == 8000.0
    cfg = MelConfig(sample_rate=16000, n_fft=512, win_length=400)
    assert cfg.hop_length == 100
    assert cfg.n_freqs == 257


@pytest.mark.parametrize(
    ("compression", "power", "expected"),
    [("db", 2.0, 10.0), ("db", 1.0, 20.0), ("log", 1.0, 1.0), ("log10", 2.0, 1.0)],
)
def test_log_multiplier_defaults(compression: str, power: float, expected: float) -> None:
    cfg = MelConfig(compression=compression, power=power)
    assert cfg.log_multiplier == expected
    assert MelConfig(compression=compression, power=power, log_multiplier=3.0).log_multiplier == 3.0


def test_preset_overrides() -> None:
    cfg = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)
    assert cfg.sample_rate == 16000
    assert cfg.f_max == 8000.0
    assert cfg.n_mels == 80 and cfg.manual_pad == 384
    with pytest.raises(ValueError, match="bogus"):
        MelConfig.from_preset("hifigan", bogus=1)


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_dict_round_trip_json_and_yaml_safe(name: str) -> None:
    cfg = MelConfig.from_preset(name)
    data = cfg.to_dict()
    assert set(data) == {f.name for f in dataclasses.fields(MelConfig)}
    for key, value in data.items():
        assert value is None or type(value) in (int, float, str, bool), (key, value)
    assert MelConfig.from_dict(data) == cfg
    assert MelConfig.from_dict(json.loads(json.dumps(data))) == cfg
    yaml = pytest.importorskip("yaml")
    assert MelConfig.from_dict(yaml.safe_load(yaml.safe_dump(data))) == cfg


@pytest.mark.parametrize(
    "cfg",
    [
        MelConfig(compression="db", power=1.0, log_floor=1e-10),
        MelConfig(compression="log10", log_multiplier=20.0, window="hamming", win_length=800),
        MelConfig(center=False, manual_pad=100, normalized=True, mag_eps=1e-9, norm=None),
    ],
)
def test_dict_round_trip_custom(cfg: MelConfig) -> None:
    data = json.loads(json.dumps(cfg.to_dict()))
    assert MelConfig.from_dict(data) == cfg
    assert MelConfig.from_dict(data).log_multiplier == cfg.log_multiplier


def test_yaml_strings_are_coerced() -> None:
    # PyYAML (YAML 1.1) loads "1e-5" as a string; a config written by hand must still work
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load("preset: hifigan\nlog_floor: 1e-5\nf_max: 8000\nn_mels: 80.0\n")
    cfg = MelConfig.from_dict(data)
    assert cfg == MelConfig.from_preset("hifigan")
    assert isinstance(cfg.log_floor, float) and isinstance(cfg.n_mels, int)


def test_preset_dict() -> None:
    cfg = MelConfig.from_dict({"preset": "vocos", "n_mels": 80})
    assert cfg == MelConfig.from_preset("vocos", n_mels=80)
    assert cfg.n_mels == 80 and cfg.mel_scale == "htk"
    assert MelConfig.from_dict({"preset": "hifigan"}) == MelConfig.from_preset("hifigan")
    with pytest.raises(ValueError, match="nope"):
        MelConfig.from_dict({"preset": "nope"})


def test_frozen_and_hashable() -> None:
    cfg = MelConfig.from_preset("hifigan")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_mels = 100  # type: ignore[misc]
    assert hash(cfg) == hash(MelConfig.from_preset("hifigan"))
    assert cfg != MelConfig.from_preset("hifigan", n_mels=100)
    assert dataclasses.replace(cfg, n_mels=100).n_mels == 100


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(sample_rate=16000, f_max=8001.0), "f_max"),
        (dict(f_min=-1.0), "f_min"),
        (dict(f_min=9000.0, f_max=8000.0), "f_min"),
        (dict(n_fft=512, win_length=1024), "win_length"),
        (dict(n_fft=512, win_length=0), "win_length"),
        (dict(n_fft=512, hop_length=0), "hop_length"),
        (dict(n_fft=512, hop_length=1024), "hop_length"),
        (dict(power=3.0), "power"),
        (dict(power=0.5), "power"),
        (dict(compression="sqrt"), "compression"),
        (dict(norm="l2"), "norm"),
        (dict(mel_scale="bark"), "mel_scale"),
        (dict(window="kaiser"), "window"),
        (dict(pad_mode="zeros"), "pad_mode"),
        (dict(n_mels=0), "n_mels"),
        (dict(n_mels=80.5), "n_mels"),
        (dict(n_fft=1), "n_fft"),
        (dict(sample_rate=0), "sample_rate"),
        (dict(sample_rate=True), "sample_rate"),
        (dict(manual_pad=-1), "manual_pad"),
        (dict(log_floor=0.0), "log_floor"),
        (dict(log_floor="tiny"), "log_floor"),
        (dict(log_multiplier=0.0), "log_multiplier"),
        (dict(mag_eps=-1e-9), "mag_eps"),
        (dict(mag_eps=math.nan), "mag_eps"),
        (dict(center="yes"), "center"),
        (dict(hop_length=128.5), "hop_length"),
    ],
)
def test_invalid_fields_raise_naming_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        MelConfig(**kwargs)
    # the same through from_dict (LightningCLI / YAML path)
    with pytest.raises(ValueError, match=field):
        MelConfig.from_dict(kwargs)


def test_unknown_preset_and_key() -> None:
    with pytest.raises(ValueError, match="preset") as info:
        MelConfig.from_preset("wavenet")
    assert "hifigan" in str(info.value)  # lists the valid names
    with pytest.raises(ValueError, match="n_melz"):
        MelConfig.from_dict({"n_melz": 80})


def test_f_max_at_nyquist_accepted() -> None:
    assert MelConfig(sample_rate=16000, f_max=8000).f_max == 8000.0


@pytest.mark.parametrize("name", ALL_PRESETS)
@pytest.mark.parametrize("num_samples", [None, 1, 255, 256, 257, 3000])
def test_num_frames_matches_mel_output(name: str, num_samples: int | None) -> None:
    cfg = MelConfig.from_preset(name, sample_rate=16000, f_max=None)
    n = cfg.min_samples if num_samples is None else cfg.min_samples + num_samples
    mel = MelSpectrogram(cfg)(torch.randn(n, generator=torch.Generator().manual_seed(n)))
    assert mel.shape == (cfg.n_mels, cfg.num_frames(n))


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_min_samples_is_the_true_minimum(name: str) -> None:
    cfg = MelConfig.from_preset(name)
    mel = MelSpectrogram(cfg)
    assert mel(torch.randn(cfg.min_samples)).shape[-1] == cfg.num_frames(cfg.min_samples) >= 1
    if cfg.pad_mode == "reflect" or cfg.manual_pad:
        # one sample fewer cannot be padded: the module must say so with a ValueError
        with pytest.raises(ValueError, match="waveform"):
            mel(torch.randn(cfg.min_samples - 1))


@pytest.mark.parametrize("name", ALL_PRESETS)
@pytest.mark.parametrize("num_frames", [0, 1, 2, 7, 50])
def test_num_samples_round_trips_through_num_frames(name: str, num_frames: int) -> None:
    cfg = MelConfig.from_preset(name)
    frames = cfg.min_frames + num_frames
    n = cfg.num_samples(frames)
    assert n >= cfg.min_samples
    assert cfg.num_frames(n) == frames
    # the iSTFT of that many frames has exactly num_samples samples and its STFT has the frames
    wave = istft(torch.zeros(cfg.n_freqs, frames, dtype=torch.complex64), cfg)
    assert wave.shape == (n,)
    assert stft(wave, cfg).shape == (cfg.n_freqs, frames)
    # and the forward transform of num_samples(T) samples has exactly T frames
    assert MelSpectrogram(cfg)(torch.randn(n)).shape[-1] == frames


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_min_frames_is_minimal(name: str) -> None:
    cfg = MelConfig.from_preset(name)
    assert cfg.num_samples(cfg.min_frames) >= cfg.min_samples
    if cfg.min_frames > 1:
        assert cfg.num_samples(cfg.min_frames - 1) < cfg.min_samples


def test_min_frames_values() -> None:
    assert MelConfig.from_preset("hifigan").min_frames == 2
    assert MelConfig.from_preset("vocos").min_frames == 4  # one 1024 window at hop 256
    assert MelConfig.from_preset("hifigan").min_samples == 385  # reflect pad of 384 needs 385


def test_num_samples_hifigan_is_frames_times_hop() -> None:
    cfg = MelConfig.from_preset("hifigan")
    assert cfg.num_samples(100) == 100 * 256
    assert cfg.num_frames(100 * 256) == 100
    cfg = MelConfig.from_preset("vocos")
    assert cfg.num_samples(100) == 99 * 256
    assert cfg.num_frames(24000) == 1 + 24000 // 256


def test_enum_fields_are_literal_types_a_cli_validates() -> None:
    # LightningCLI (jsonargparse) reads the dataclass types: a wrong choice fails at parse time
    jsonargparse = pytest.importorskip("jsonargparse")
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(MelConfig, "mel")
    ok = parser.parse_args(["--mel.window=hamming", "--mel.compression=log10"])
    assert ok.mel.window == "hamming"
    with pytest.raises(jsonargparse.ArgumentError, match="window"):
        parser.parse_args(["--mel.window=hanning"])


def test_overrides_raise_the_same_error_everywhere() -> None:
    class FakeSpectrogram:  # just what torchaudio's MelSpectrogram holds
        window, win_length, hop_length, n_fft = torch.hann_window(400), 400, 200, 400
        center, pad_mode, normalized, power, pad = True, "reflect", False, 2.0, 0

    class FakeMelScale:
        n_mels, f_min, f_max, mel_scale, norm = 40, 0.0, None, "htk", None

    class FakeTransform:
        sample_rate, spectrogram, mel_scale = 16000, FakeSpectrogram(), FakeMelScale()

    cfg = MelConfig.from_torchaudio(FakeTransform(), n_mels=64)
    assert (cfg.n_mels, cfg.n_fft, cfg.window, cfg.compression) == (64, 400, "hann", "none")
    for build in (
        lambda: MelConfig.from_torchaudio(FakeTransform(), n_melz=64),
        lambda: MelConfig.from_preset("hifigan", n_melz=64),
        lambda: MelConfig.from_dict({"preset": "hifigan", "n_melz": 64}),
    ):
        with pytest.raises(ValueError, match=r"Unknown MelConfig field\(s\) \['n_melz'\]"):
            build()


def test_any_mapping_is_a_config() -> None:
    from types import MappingProxyType

    from specinv_lightning.config import as_config

    assert as_config(MappingProxyType({"preset": "hifigan"})) == MelConfig.from_preset("hifigan")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_valid_frames_cover_the_signal(name: str) -> None:
    cfg = MelConfig.from_preset(name)
    lengths = torch.tensor([1, cfg.min_samples, cfg.min_samples + 1, 3 * cfg.hop_length, 22050])
    frames = cfg.valid_frames(lengths)
    assert frames.tolist() == [cfg.valid_frames(int(n)) for n in lengths]
    assert bool((frames >= cfg.min_frames).all())
    # at and above the minimum length: exactly the frames the forward transform yields
    for n in [n for n in lengths.tolist() if n >= cfg.min_samples]:
        assert cfg.valid_frames(n) == max(cfg.num_frames(n), cfg.min_frames)
        assert MelSpectrogram(cfg)(torch.zeros(n)).shape[-1] == cfg.num_frames(n)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_compressed_floor_is_the_mel_of_silence(name: str) -> None:
    from specinv_lightning.functional import clamp_to_floor, compressed_floor

    cfg = MelConfig.from_preset(name)
    silence = MelSpectrogram(cfg).double()(torch.zeros(1, 4 * cfg.n_fft, dtype=torch.float64))
    floor = compressed_floor(cfg)
    assert floor.shape == (cfg.n_mels, 1)
    torch.testing.assert_close(silence[0], floor.expand_as(silence[0]), rtol=0, atol=1e-9)
    torch.testing.assert_close(clamp_to_floor(floor - 5.0, cfg), floor)
