"""The example: training entry point end to end, its configs, the datamodule and the synthetic data."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("jsonargparse")

from examples.data import AudioDataModule, ensure_synthetic_dataset  # noqa: E402
from examples.model import MelVAE  # noqa: E402
from examples.train import ExampleCLI  # noqa: E402
from specinv_lightning import InversionCallback, MelConfig  # noqa: E402

EXAMPLE = str(ROOT / "configs" / "example.yaml")
TINY = [
    "--trainer.max_steps=3",
    "--trainer.limit_val_batches=1",
    "--trainer.log_every_n_steps=1",
    "--data.num_synthetic=4",
    "--data.val_fraction=0.5",
    "--data.train_items_per_epoch=6",
    "--data.batch_size=2",
    "--model.hidden_channels=16",
    "--inversion.n_iter=4",
    "--inversion.num_samples=2",
]


def test_train_entry_point_end_to_end(tmp_path: Path) -> None:
    """``python examples/train.py fit -c configs/example.yaml`` for a few steps, in a subprocess."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "examples" / "train.py"),
        "fit",
        "-c",
        EXAMPLE,
        f"--trainer.default_root_dir={run_dir}",
        f"--data.cache_dir={tmp_path / 'cache'}",
        "--trainer.enable_progress_bar=false",
        *TINY,
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    log_dir = run_dir / "lightning_logs" / "version_0"
    assert f"TensorBoard logs (audio, mel images, SC curves): {log_dir}" in proc.stdout
    assert "wav files" in proc.stdout and str(log_dir / "audio" / "epoch=0") in proc.stdout
    # the synthetic dataset was generated into the cache we asked for, at the config's rate
    cached = sorted((tmp_path / "cache" / "synthetic_speech").rglob("*.wav"))
    assert len(cached) == 4 and all(sf.info(p).samplerate == 16000 for p in cached)

    assert list(log_dir.glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(log_dir), size_guidance={"audio": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"val/spectral_convergence_db", "val/mel_consistency_db", "train/loss"} <= set(
        tags["scalars"]
    )
    sc = acc.Scalars("val/spectral_convergence_db")[-1].value
    assert np.isfinite(sc) and sc > -30.0  # untrained after 3 steps: finite, far from perfect
    pred_tags = [t for t in tags["audio"] if "pred" in t]
    assert pred_tags, tags["audio"]
    audio_event = acc.Audio(pred_tags[0])[-1]
    assert audio_event.sample_rate == 16000

    wavs = sorted((log_dir / "audio" / "epoch=0").glob("*.wav"))
    assert len([w for w in wavs if w.name.startswith("pred")]) == 2, wavs
    for wav in wavs:
        data, sr = sf.read(wav, dtype="float32")
        assert sr == 16000 and data.ndim == 1 and 0 < len(data) <= 16000
        assert np.isfinite(data).all() and np.abs(data).max() > 1e-3
    assert list((log_dir / "checkpoints").glob("*.ckpt"))
    assert not (tmp_path / "runs").exists(), "overrides must move every output"


@pytest.mark.parametrize(
    ("config", "preset"),
    [
        ("hifigan", "hifigan"),
        ("vocos", "vocos"),
        ("bigvgan", "bigvgan"),
        ("tacotron2", "tacotron2"),
    ],
)
def test_preset_configs_set_model_data_and_callback(
    tmp_path: Path, config: str, preset: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py"])
    args = ["-c", EXAMPLE, "-c", str(ROOT / "configs" / f"{config}.yaml")]
    args += [f"--trainer.default_root_dir={tmp_path}", f"--data.cache_dir={tmp_path}"]
    cli = ExampleCLI(MelVAE, AudioDataModule, args=args, run=False)
    expected = MelConfig.from_preset(preset)
    callbacks = [cb for cb in cli.trainer.callbacks if isinstance(cb, InversionCallback)]
    assert len(callbacks) == 1
    assert cli.model.config == expected
    assert cli.datamodule.config == expected
    assert callbacks[0].config == expected


def _print_config(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    yaml = pytest.importorskip("yaml")

    with pytest.raises(SystemExit) as exit_info:
        ExampleCLI(MelVAE, AudioDataModule, args=[*args, "--print_config"], run=False)
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_gpu_and_wandb_configs_parse(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py"])
    gpu = _print_config(["-c", EXAMPLE, "-c", str(ROOT / "configs" / "gpu.yaml")], capsys)
    assert gpu["trainer"]["accelerator"] == "gpu"
    assert gpu["trainer"]["precision"] in ("bf16-mixed", "16-mixed")
    assert gpu["data"]["batch_size"] > 16
    wb = _print_config(["-c", EXAMPLE, "-c", str(ROOT / "configs" / "wandb_offline.yaml")], capsys)
    (logger,) = wb["trainer"]["logger"]
    assert logger["class_path"].endswith("WandbLogger") and logger["init_args"]["offline"] is True


def _write_folder(folder: Path) -> dict[str, float]:
    """Files of other rates/channels, a short one, and broken ones; returns durations (s)."""
    folder.mkdir(parents=True)
    t44 = np.arange(int(1.5 * 44100)) / 44100
    left = 0.8 * np.sin(2 * np.pi * 440 * t44)
    sf.write(folder / "stereo_44k.wav", np.stack([left, np.zeros_like(left)], 1), 44100)
    t8 = np.arange(int(2.0 * 8000)) / 8000
    sf.write(folder / "mono_8k.flac", 0.5 * np.sin(2 * np.pi * 300 * t8), 8000)
    sf.write(folder / "short_16k.wav", np.full(4000, 0.3), 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 4)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "readme.txt").write_text("not audio")
    return {"stereo_44k.wav": 1.5, "mono_8k.flac": 2.0, "short_16k.wav": 0.25}


def test_datamodule_reads_resamples_and_skips_corrupt(tmp_path: Path) -> None:
    durations = _write_folder(tmp_path / "audio")
    mel = {"preset": "tacotron2", "sample_rate": 16000}
    dm = AudioDataModule(
        data_dir=str(tmp_path / "audio"),
        mel=mel,
        segment_seconds=0.5,
        batch_size=2,
        val_fraction=0.3,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.prepare_data()
        dm.setup("fit")
    messages = "\n".join(str(w.message) for w in caught)
    assert "skipped 2 unreadable audio file(s)" in messages
    assert "corrupt.wav" in messages and "empty.wav" in messages
    assert sorted(Path(p).name for p, _ in dm.skipped) == ["corrupt.wav", "empty.wav"]

    files = [*dm.train_files, *dm.val_files]
    assert sorted(p.name for p in files) == sorted(durations)
    clips = [*dm.train_set.clips, *dm.val_set.clips]
    for path, clip in zip(files, clips, strict=True):
        assert clip.dtype == np.float32 and clip.ndim == 1
        assert abs(len(clip) - durations[path.name] * 16000) <= 2  # resampled to 16 kHz
    stereo = clips[[p.name for p in files].index("stereo_44k.wav")]
    # mixdown is the channel mean: 0.8 sine on the left, silence on the right -> 0.4 peak
    assert abs(float(np.abs(stereo[1000:-1000]).max()) - 0.4) < 0.01

    assert dm.val_files == [p for p in sorted(files) if p in dm.val_files]
    val_a = next(iter(dm.val_dataloader()))
    val_b = next(iter(dm.val_dataloader()))
    assert torch.equal(val_a["audio"], val_b["audio"])  # deterministic validation crops
    segment = 8000
    for batch in dm.train_dataloader():
        assert batch["audio"].shape[-1] == segment
        for audio, length in zip(batch["audio"], batch["lengths"], strict=True):
            assert 0 < int(length) <= segment
            assert torch.all(audio[int(length) :] == 0)  # padding after the valid samples
    names = [p.name for p in files]
    position = names.index("short_16k.wav")
    n_train = len(dm.train_files)
    dataset = dm.train_set if position < n_train else dm.val_set
    item = dataset[position if position < n_train else position - n_train]
    assert int(item["lengths"]) == 4000 and item["audio"].shape[-1] == segment
    assert torch.allclose(item["audio"][:4000], torch.tensor(0.3), atol=1e-3)


def test_datamodule_all_files_broken(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.wav").write_bytes(b"nope")
    dm = AudioDataModule(data_dir=str(folder), mel="tacotron2")
    with pytest.warns(UserWarning, match="a.wav"), pytest.raises(ValueError, match="none of the 1"):
        dm.setup("fit")
    with pytest.raises(ValueError, match="not a directory"):
        AudioDataModule(data_dir=str(tmp_path / "missing"))


def test_synthetic_dataset_is_deterministic_and_cached(tmp_path: Path) -> None:
    first = ensure_synthetic_dataset(tmp_path / "a", 16000, num_utterances=3, seed=7)
    files = sorted(first.glob("*.wav"))
    assert len(files) == 3 and (first / "COMPLETE").is_file()
    stamps = [p.stat().st_mtime_ns for p in files]
    assert ensure_synthetic_dataset(tmp_path / "a", 16000, num_utterances=3, seed=7) == first
    assert [p.stat().st_mtime_ns for p in files] == stamps  # reused, not regenerated
    again = ensure_synthetic_dataset(tmp_path / "b", 16000, num_utterances=3, seed=7)
    for a, b in zip(files, sorted(again.glob("*.wav")), strict=True):
        assert a.read_bytes() == b.read_bytes()
    other = ensure_synthetic_dataset(tmp_path / "c", 16000, num_utterances=3, seed=8)
    assert files[0].read_bytes() != sorted(other.glob("*.wav"))[0].read_bytes()
    data, sr = sf.read(files[0])
    assert sr == 16000 and 1.4 * sr <= len(data) <= 3.1 * sr and 0.2 < np.abs(data).max() <= 1.0
    # speech-like: most energy below 4 kHz, but not a pure tone
    spec = np.abs(np.fft.rfft(data)) ** 2
    freqs = np.fft.rfftfreq(len(data), 1 / sr)
    assert spec[freqs < 4000].sum() / spec.sum() > 0.9
    assert (spec > spec.max() * 1e-3).sum() > 100


@pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")
def test_model_validation_output_and_waveform_loss() -> None:
    torch.manual_seed(0)
    model = MelVAE(
        mel={"preset": "tacotron2", "sample_rate": 16000},
        hidden_channels=16,
        waveform_loss_weight=0.5,
        waveform_loss_n_iter=2,
    )
    audio = 0.1 * torch.randn(2, 8000)
    batch = {"audio": audio, "lengths": torch.tensor([8000, 5000])}
    loss = model.training_step(batch, 0)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.inference_mode():
        out = model.validation_step(batch, 0)
    frames = model.config.num_frames(8000)
    assert out["mel"].shape == (2, model.config.n_mels, frames)
    assert out["audio"] is audio and out["lengths"].tolist() == [8000, 5000]
    sample = model.sample(2, 37)
    assert sample.shape == (2, model.config.n_mels, 37) and torch.isfinite(sample).all()


@pytest.mark.filterwarnings(r"ignore:You are trying to `self.log\(\)`")
def test_waveform_loss_items_subsamples_the_batch(monkeypatch) -> None:
    # waveform_loss_items=k: the waveform loss sees the first k items only (the mel L1 all)
    torch.manual_seed(0)
    model = MelVAE(
        mel={"preset": "tacotron2", "sample_rate": 16000},
        hidden_channels=16,
        waveform_loss_weight=0.5,
        waveform_loss_n_iter=1,
        waveform_loss_items=2,
    )
    seen: list[tuple[int, list[int]]] = []
    original = model.waveform_loss.forward

    def spy(mel, audio, lengths=None):
        seen.append((mel.shape[0], [int(v) for v in lengths]))
        return original(mel, audio, lengths=lengths)

    monkeypatch.setattr(model.waveform_loss, "forward", spy)
    audio = 0.1 * torch.randn(5, 8000)
    lengths = torch.tensor([8000, 7000, 6000, 5000, 4000])
    loss = model.training_step({"audio": audio, "lengths": lengths}, 0)
    assert torch.isfinite(loss) and seen == [(2, [8000, 7000])]
    with pytest.raises(ValueError, match="waveform_loss_items"):
        MelVAE(waveform_loss_weight=0.5, waveform_loss_items=0)


def test_waveform_loss_overlay_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # configs/waveform_loss.yaml turns the loss on with the settings README recommends
    monkeypatch.setattr(sys, "argv", ["train.py"])
    args = ["-c", EXAMPLE, "-c", str(ROOT / "configs" / "waveform_loss.yaml")]
    args += [f"--trainer.default_root_dir={tmp_path}", f"--data.cache_dir={tmp_path}"]
    cli = ExampleCLI(MelVAE, AudioDataModule, args=args, run=False)
    model = cli.model
    loss = model.waveform_loss
    assert loss is not None and model.hparams.waveform_loss_weight == pytest.approx(0.03)
    assert model.hparams.waveform_loss_items == 4 and loss.inverter.n_iter == 2
    assert loss.init == "pghi-fast" and loss.reference == "inversion" and loss.mel_weight == 0.0
