"""InversionCallback with real TensorBoard, W&B (offline) and MLflow (file store) loggers.

Each test runs a tiny Trainer for two epochs and reads back what the logger wrote to disk.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile as sf

from specinv_lightning import InversionCallback

try:  # tests/integration may or may not be a package
    from ._tiny import CLIP, CONFIG, SR, TinyData, TinyMelModel, trainer_kwargs
except ImportError:
    from _tiny import CLIP, CONFIG, SR, TinyData, TinyMelModel, trainer_kwargs

LENGTHS = [CLIP - k * 256 for k in range(4)]


@pytest.fixture(autouse=True)
def _eager_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """No torch.compile in these tests (compiling takes seconds per process on a small CPU)."""
    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "0")


def _check_wav(data: np.ndarray, sr: int, k: int) -> None:
    assert sr == SR
    assert data.shape == (LENGTHS[k],)
    assert np.isfinite(data).all() and np.abs(data).max() <= 1.0
    assert np.abs(data).max() == pytest.approx(0.99, abs=1e-3)


def test_tensorboard_audio_images_and_scalars(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = TensorBoardLogger(tmp_path, name="tb")
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4, lengths_key="length")
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger), callbacks=[cb])
    trainer.fit(TinyMelModel(), TinyData())

    ea = EventAccumulator(logger.log_dir, size_guidance={"audio": 0, "scalars": 0, "images": 0})
    ea.Reload()
    tags = ea.Tags()
    assert sorted(t for t in tags["audio"] if t.startswith("val/audio/")) == [
        "val/audio/pred_0",
        "val/audio/pred_1",
        "val/audio/ref_0",
        "val/audio/ref_1",
        "val/audio/target_0",
        "val/audio/target_1",
    ]
    steps = [trainer.global_step // 2, trainer.global_step]  # one train step per epoch
    for k in range(2):
        preds = ea.Audio(f"val/audio/pred_{k}")
        assert [e.step for e in preds] == steps  # every epoch
        assert len(ea.Audio(f"val/audio/target_{k}")) == 1  # references once
        assert len(ea.Audio(f"val/audio/ref_{k}")) == 1
        for event in [*preds, *ea.Audio(f"val/audio/target_{k}"), *ea.Audio(f"val/audio/ref_{k}")]:
            assert event.sample_rate == SR
            assert event.length_frames == LENGTHS[k]
            data, sr = sf.read(io.BytesIO(event.encoded_audio_string), dtype="float32")
            _check_wav(data, sr, k)
    images = ea.Images("val/mel")
    assert len(images) == 2 and images[0].width > 100 and images[0].height > 50
    for key in (
        "val/spectral_convergence_db",
        "val/mel_consistency_db",
        "val/log_spectral_distance_db",
        "val/ref_spectral_convergence_db",
    ):
        values = [e.value for e in ea.Scalars(key)]
        assert len(values) == 2 and all(math.isfinite(v) for v in values), key
    assert all(-30 < e.value < 0 for e in ea.Scalars("val/spectral_convergence_db"))


def test_wandb_offline_run_has_wav_media(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = pytest.importorskip("wandb")
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    logger = WandbLogger(offline=True, save_dir=str(tmp_path), project="specinv-test")
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4, lengths_key="length")
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger), callbacks=[cb])
    try:
        trainer.fit(TinyMelModel(), TinyData())
    finally:
        wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    media = sorted((runs[0] / "files" / "media" / "audio").rglob("*.wav"))
    # 2 predictions x 2 epochs + 2 targets + 2 Griffin-Lim references
    assert len(media) == 8, media
    for path in media:
        data, sr = sf.read(path, dtype="float32")
        assert sr == SR and data.shape[0] in LENGTHS[:2] and np.abs(data).max() <= 1.0
    assert len(list((runs[0] / "files" / "media" / "images").rglob("*.png"))) == 2


def test_mlflow_file_store_has_wav_artifacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # file: store, opt-in since mlflow 3.7
    from lightning.pytorch.loggers import MLFlowLogger

    logger = MLFlowLogger(experiment_name="specinv", tracking_uri=(tmp_path / "mlruns").as_uri())
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4, lengths_key="length")
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger), callbacks=[cb])
    trainer.fit(TinyMelModel(), TinyData())

    client = logger.experiment
    for epoch, names in (
        (0, ["pred_0", "pred_1", "ref_0", "ref_1", "target_0", "target_1"]),
        (1, ["pred_0", "pred_1"]),
    ):
        listed = client.list_artifacts(logger.run_id, f"audio/epoch={epoch}")
        wavs = sorted(Path(a.path).name for a in listed if a.path.endswith(".wav"))
        assert wavs == [f"{n}.wav" for n in names]
        local = Path(
            client.download_artifacts(logger.run_id, f"audio/epoch={epoch}", str(tmp_path))
        )
        for name in names:
            data, sr = sf.read(local / f"{name}.wav", dtype="float32")
            _check_wav(data, sr, int(name[-1]))
    history = client.get_metric_history(logger.run_id, "val/spectral_convergence_db")
    assert len(history) == 2 and all(-30 < m.value < 0 for m in history)
