"""InversionCallback for sampling-based models and bounded scoring, with real Trainers.

A loss-returning model with ``generate`` (called only for the batches needed), ``score_items``
bounding the inverted items on one process and under 2-process gloo DDP (equal scores), the
Griffin-Lim reference (audio and score once), extra metrics (STOI, a custom Metric, a
MetricCollection) and sinks (a user sink, Comet and Neptune logger doubles).
"""

from __future__ import annotations

import csv
import io
import sys
import types
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile as sf
import torch
from lightning.pytorch.loggers import CometLogger, CSVLogger, Logger
from torch.utils.data import DataLoader
from torchmetrics import MetricCollection

from specinv_lightning import AudioClip, InversionCallback, MediaSink, MelInverter, MelSpectrogram
from specinv_lightning.functional import spectrogram_magnitude, stft
from specinv_lightning.functional.metrics import (
    log_spectral_distance,
    mel_consistency,
    spectral_convergence,
)

try:  # tests/integration may or may not be a package
    from ._tiny import (
        CLIP,
        CONFIG,
        SPEECH,
        SR,
        CountingGenerate,
        CountingInverter,
        CountItems,
        LossOnlyModel,
        SpeechClips,
        TinyData,
        TinyMelModel,
        trainer_kwargs,
    )
except ImportError:
    from _tiny import (
        CLIP,
        CONFIG,
        SPEECH,
        SR,
        CountingGenerate,
        CountingInverter,
        CountItems,
        LossOnlyModel,
        SpeechClips,
        TinyData,
        TinyMelModel,
        trainer_kwargs,
    )

LENGTHS = [CLIP - (i % 4) * 256 for i in range(8)]
SCORES = (
    "val/mel_consistency_db",
    "val/spectral_convergence_db",
    "val/log_spectral_distance_db",
    "val/ref_spectral_convergence_db",
)


@pytest.fixture(autouse=True)
def _eager_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "0")


def _rows(logger: CSVLogger) -> list[dict[str, str]]:
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


def _expected(model: TinyMelModel, items: list[int], n_iter: int) -> dict[str, float]:
    """The scores of ``items`` computed by hand (init="zeros": batch independent)."""
    data = SpeechClips(8)
    audio = torch.stack([data[i]["audio"] for i in items])
    frames = torch.tensor([CONFIG.num_frames(LENGTHS[i]) for i in items])
    with torch.no_grad():
        mel, target_mel = model(audio)
        inverter = MelInverter(CONFIG, n_iter=n_iter, init="zeros")
        wave, ref = inverter(mel), inverter(target_mel)
    tm = spectrogram_magnitude(stft(audio[:, : wave.shape[-1]], CONFIG))
    pm, rm = spectrogram_magnitude(stft(wave, CONFIG)), spectrogram_magnitude(stft(ref, CONFIG))
    return {
        "val/mel_consistency_db": float(mel_consistency(wave, mel, CONFIG, lengths=frames)),
        "val/spectral_convergence_db": float(spectral_convergence(pm, tm, lengths=frames, db=True)),
        "val/log_spectral_distance_db": float(log_spectral_distance(pm, tm, lengths=frames)),
        "val/ref_spectral_convergence_db": float(
            spectral_convergence(rm, tm, lengths=frames, db=True)
        ),
    }


def test_generate_runs_only_for_needed_batches_of_a_loss_only_model(tmp_path: Path) -> None:
    generate = CountingGenerate()
    inverter = CountingInverter(CONFIG, n_iter=4, init="zeros")
    cb = InversionCallback(
        num_samples=2, lengths_key="length", score_items=3, generate=generate, inverter=inverter
    )
    logger = CSVLogger(tmp_path)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger), callbacks=[cb])
    model = LossOnlyModel()
    data = TinyData(batch_size=2)  # 4 batches of 2 items: items 0-3 are in the first two
    trainer.validate(model, data, verbose=False)
    trainer.validate(model, data, verbose=False)

    # generate ran for the batches holding the 3 scored (and 2 logged) items, never the others
    assert generate.indices == [[0, 1], [2, 3]] * 2
    # inverted: 3 scored items per run, plus their reference once (the first run); the 2 logged
    # items were scored, so they are not inverted again
    assert inverter.items == 3 + 3 + 3

    rows = _rows(logger)
    expected = _expected(model, [0, 1, 2], n_iter=4)
    for key in SCORES:
        values = _column(rows, key)
        assert len(values) == 2, key
        for value in values:
            assert value == pytest.approx(expected[key], rel=1e-4, abs=1e-5), key
    # the reference (target mel inverted) is closer to the target than the noisy prediction
    assert expected["val/ref_spectral_convergence_db"] < expected["val/spectral_convergence_db"]

    audio = Path(logger.log_dir) / "audio"
    first = sorted(p.name for p in (audio / "epoch=0").glob("*.wav"))
    assert first == [f"{n}_{k}.wav" for n in ("pred", "ref", "target") for k in range(2)]
    second = sorted(p.name for p in (audio / "epoch=0-step=0").glob("*.wav"))
    assert second == ["pred_0.wav", "pred_1.wav"]  # references once
    for k in range(2):
        data_k, sr = sf.read(audio / "epoch=0" / f"ref_{k}.wav", dtype="float32")
        target, _ = sf.read(audio / "epoch=0" / f"target_{k}.wav", dtype="float32")
        assert sr == SR and data_k.shape == target.shape == (LENGTHS[k],)
        # a Griffin-Lim reconstruction of the target: not the waveform, but its log-mel
        assert not np.allclose(data_k, target, atol=1e-2)
        mels = [MelSpectrogram(CONFIG)(torch.from_numpy(x)).flatten() for x in (data_k, target)]
        assert float(torch.corrcoef(torch.stack(mels))[0, 1]) > 0.9


def test_score_items_bounds_the_inverted_items(tmp_path: Path) -> None:
    inverter = CountingInverter(CONFIG, n_iter=4, init="zeros")
    cb = InversionCallback(
        num_samples=1,
        lengths_key="length",
        score_items=5,
        log_reference=False,
        inverter=inverter,
        metrics={"count": CountItems()},
    )
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    model = TinyMelModel()
    trainer.validate(model, TinyData(batch_size=3), verbose=False)  # batches of 3, 3, 2
    assert inverter.items == 5  # not 8; the logged item is one of the scored ones
    assert float(trainer.callback_metrics["val/count"]) == 5
    got = float(trainer.callback_metrics["val/spectral_convergence_db"])
    assert got == pytest.approx(_expected(model, [0, 1, 2, 3, 4], 4)["val/spectral_convergence_db"])
    assert "val/ref_spectral_convergence_db" not in trainer.callback_metrics


def _ddp_callback(record_dir: str | None = None) -> InversionCallback:
    return InversionCallback(
        num_samples=1,
        lengths_key="length",
        score_items=5,
        inverter=CountingInverter(CONFIG, n_iter=4, init="zeros", record_dir=record_dir),
        metrics=MetricCollection({"count": CountItems()}),
    )


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_score_items_split_across_ddp_ranks(tmp_path: Path) -> None:
    model = TinyMelModel()
    single = pl.Trainer(
        **trainer_kwargs(tmp_path / "one", logger=False), callbacks=[_ddp_callback()]
    )
    single.validate(model, TinyData(batch_size=2), verbose=False)
    expected = {k: float(v) for k, v in single.callback_metrics.items()}
    assert expected["val/count"] == 5

    record = tmp_path / "counts"
    trainer = pl.Trainer(
        **trainer_kwargs(tmp_path / "ddp", logger=False, devices=2, strategy="ddp_spawn"),
        callbacks=[_ddp_callback(str(record))],
    )
    # Lightning's DistributedSampler deals items round robin: rank 0 gets 0, 2, 4, 6, rank 1
    # gets 1, 3, 5, 7; the first 5 items overall are rank 0's first 3 and rank 1's first 2
    trainer.validate(model, TinyData(batch_size=2), verbose=False)
    got = {k: float(v) for k, v in trainer.callback_metrics.items()}
    assert got["val/count"] == 5  # N in total, not N x world size
    for key in SCORES:
        assert got[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    # inverted per rank: its scored items plus their references (first epoch)
    counts = {p.name: int(p.read_text()) for p in record.glob("rank*.txt")}
    assert counts == {"rank0.txt": 2 * 3, "rank1.txt": 2 * 2}


def _long_items(n: int = 4) -> list[dict[str, Any]]:
    """``n`` items of 1 s of real speech (STOI needs more than 0.4 s of speech), the last ones
    shorter than the batch (padded, with their true length)."""
    data, sr = sf.read(SPEECH, dtype="float32")
    audio = torch.from_numpy(data)
    items = []
    for i in range(n):
        clip = audio[i * 4000 : i * 4000 + SR].clone()
        length = SR - 2000 * i
        clip[length:] = 0.0
        items.append({"audio": clip, "length": length, "index": i})
    return items


def test_extra_metrics_stoi_and_custom_metric(tmp_path: Path) -> None:
    pytest.importorskip("pystoi")
    from torchmetrics.audio import ShortTimeObjectiveIntelligibility
    from torchmetrics.functional.audio import short_time_objective_intelligibility

    cb = InversionCallback(
        CONFIG,
        num_samples=1,
        n_iter=4,
        lengths_key="length",
        score_items=3,
        inverter_kwargs={"init": "zeros"},
        metrics={"stoi": ShortTimeObjectiveIntelligibility(SR), "count": CountItems()},
    )
    logger = CSVLogger(tmp_path)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger), callbacks=[cb])
    model = TinyMelModel()
    items = _long_items(4)
    trainer.validate(model, DataLoader(items, batch_size=2), verbose=False)
    rows = _rows(logger)
    assert _column(rows, "val/count") == [3.0]  # score_items, not the 4 items
    (stoi,) = _column(rows, "val/stoi")
    # by hand: STOI of each scored item's inversion at its own length
    audio = torch.stack([item["audio"] for item in items[:3]])
    with torch.no_grad():
        wave = MelInverter(CONFIG, n_iter=4, init="zeros")(model(audio)[0])
    per_item = [
        float(short_time_objective_intelligibility(wave[i, :n], audio[i, :n], SR))
        for i, n in enumerate(item["length"] for item in items[:3])
    ]
    assert min(per_item) > 0.2  # real speech, scored (pystoi returns 1e-5 when too short)
    assert stoi == pytest.approx(float(np.mean(per_item)), abs=1e-4)


class RecordingSink(MediaSink):
    name = "recorder"

    def __init__(self) -> None:
        self.audio: list[tuple[str, int, int, int, str]] = []
        self.images: list[tuple[str, tuple[int, ...]]] = []

    def log_audio(self, clips: Any, key_prefix: str, step: int, folder: str) -> None:
        for c in clips:
            assert isinstance(c, AudioClip) and c.audio.dtype == np.float32
            self.audio.append(
                (f"{key_prefix}{c.name}_{c.index}", c.sample_rate, len(c.audio), step, folder)
            )

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        self.images.append((key, image.shape))


class _Recorder:
    """Records every call made on it (a stand-in for a Comet experiment / Neptune run)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return call

    def __getitem__(self, key: str) -> Any:
        recorder = self

        class Field:
            def upload(self, value: Any) -> None:
                recorder.calls.append(("upload", (key, value), {}))

            def append(self, value: Any, step: int | None = None) -> None:
                recorder.calls.append(("append", (key, value), {"step": step}))

        return Field()


class CometDouble(CometLogger):
    """A ``CometLogger`` without comet_ml: its experiment records the calls."""

    def __init__(self) -> None:  # noqa: D107 - skips CometLogger.__init__ (needs comet_ml)
        Logger.__init__(self)
        self._recorder = _Recorder()
        self._experiment = None

    @property
    def experiment(self) -> Any:  # type: ignore[override]
        return self._recorder

    @property
    def name(self) -> str:
        return "comet"

    @property
    def version(self) -> str:
        return "0"

    @property
    def save_dir(self) -> None:
        return None

    def log_metrics(self, metrics: Any, step: Any = None) -> None:
        self._recorder.calls.append(("log_metrics", (metrics,), {"step": step}))

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        pass

    def finalize(self, status: str) -> None:
        pass

    def log_graph(self, *args: Any, **kwargs: Any) -> None:
        pass


class NeptuneLogger(Logger):
    """A logger double named like neptune's ``NeptuneLogger``; ``experiment`` is its run."""

    def __init__(self) -> None:
        super().__init__()
        self.run = _Recorder()

    @property
    def experiment(self) -> Any:
        return self.run

    @property
    def name(self) -> str:
        return "neptune"

    @property
    def version(self) -> str:
        return "0"

    def log_metrics(self, metrics: Any, step: Any = None) -> None:
        pass

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        pass


def test_user_sink_comet_and_neptune_receive_the_clips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # neptune's File type, as the adapter uses it (the neptune package is not installed here)
    neptune, types_mod = types.ModuleType("neptune"), types.ModuleType("neptune.types")

    class File:
        def __init__(self, content: Any, extension: str) -> None:
            self.content, self.extension = content, extension

        @classmethod
        def from_content(cls, content: bytes, extension: str) -> File:
            return cls(content, extension)

        @classmethod
        def as_image(cls, image: np.ndarray) -> File:
            return cls(image, "png")

    types_mod.File = File  # type: ignore[attr-defined]
    neptune.types = types_mod  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "neptune", neptune)
    monkeypatch.setitem(sys.modules, "neptune.types", types_mod)

    sink, comet, nep = RecordingSink(), CometDouble(), NeptuneLogger()
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4, lengths_key="length", sinks=[sink])
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=[comet, nep]), callbacks=[cb])
    trainer.fit(TinyMelModel(), TinyData(batch_size=4))

    steps = [1, 2]
    expected = [
        (f"val/audio/{n}_{k}", SR, LENGTHS[k], step, f"epoch={step - 1}")
        for step in steps
        for n in (("pred", "target", "ref") if step == 1 else ("pred",))
        for k in range(2)
    ]
    assert sorted(sink.audio) == sorted(expected)
    assert len(sink.images) == 2
    key, shape = sink.images[0]
    assert key == "val/mel" and shape[2] == 3 and shape[0] > 150 and shape[1] > 300

    audio_calls = [c for c in comet._recorder.calls if c[0] == "log_audio"]
    assert len(audio_calls) == len(expected)
    for _, (data,), kwargs in audio_calls:
        assert kwargs["sample_rate"] == SR and kwargs["step"] in steps
        assert data.shape[0] in LENGTHS[:2] and np.abs(data).max() <= 1.0
    names = sorted(kw["file_name"] for _, _, kw in audio_calls if kw["step"] == 1)
    assert names[0] == "val_audio_pred_0.wav" and len(names) == 6
    assert len([c for c in comet._recorder.calls if c[0] == "log_image"]) == 2

    uploads = [c[1] for c in nep.run.calls if c[0] == "upload"]
    assert sorted(k for k, _ in uploads)[:2] == [
        "val/audio/epoch=0/pred_0.wav",
        "val/audio/epoch=0/pred_1.wav",
    ]
    assert len(uploads) == len(expected)
    for _, file in uploads:
        data, sr = sf.read(io.BytesIO(file.content), dtype="float32")
        assert file.extension == "wav" and sr == SR and data.shape[0] in LENGTHS[:2]
    assert len([c for c in nep.run.calls if c[0] == "append"]) == 2
