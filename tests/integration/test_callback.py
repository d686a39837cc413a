"""InversionCallback with a real Trainer and a tiny mel predictor on real speech.

CSVLogger / no logger / save_dir wav files, scores checked against the functional API, resume from
a checkpoint, every_n_epochs, generate=, non-finite predictions, failing loggers, configuration
errors.
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile as sf
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from specinv_lightning import InversionCallback, MelConfig, MelInverter
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
        SR,
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
        SR,
        LossOnlyModel,
        SpeechClips,
        TinyData,
        TinyMelModel,
        trainer_kwargs,
    )


@pytest.fixture(autouse=True)
def _eager_kernels(monkeypatch: pytest.MonkeyPatch) -> None:
    """No torch.compile in these tests (compiling takes seconds per process on a small CPU)."""
    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "0")


LENGTHS = [CLIP - (i % 4) * 256 for i in range(8)]  # true lengths of SpeechClips items


def _wavs(folder: Path) -> dict[str, tuple[np.ndarray, int]]:
    return {p.name: sf.read(p, dtype="float32") for p in sorted(folder.glob("*.wav"))}


def _csv_metrics(logger: CSVLogger) -> list[dict[str, str]]:
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        return list(csv.DictReader(f))


def _column(rows: list[dict[str, str]], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key)]


def test_csv_logger_wav_files_and_scores(tmp_path: Path) -> None:
    logger = CSVLogger(tmp_path)
    cb = InversionCallback(CONFIG, num_samples=3, n_iter=8, lengths_key="length")
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger), callbacks=[cb])
    trainer.fit(TinyMelModel(), TinyData(batch_size=2))  # the 3 samples span two batches

    audio = Path(logger.log_dir) / "audio"
    assert sorted(p.name for p in audio.iterdir()) == ["epoch=0", "epoch=1"]
    first, second = _wavs(audio / "epoch=0"), _wavs(audio / "epoch=1")
    # predictions every time, targets once (references)
    # and the Griffin-Lim reference (the target's mel inverted) once, next to the target
    assert sorted(first) == [f"{n}_{k}.wav" for n in ("pred", "ref", "target") for k in range(3)]
    assert sorted(second) == [f"pred_{k}.wav" for k in range(3)]
    for name, (data, sr) in {**first, **second}.items():
        k = int(name[-5])
        assert sr == SR
        assert data.shape == (LENGTHS[k],)  # trimmed to the true length
        assert np.isfinite(data).all() and np.abs(data).max() <= 1.0
        assert np.abs(data).max() == pytest.approx(0.99, abs=1e-6)  # peak normalised
    # the reference is the (peak-normalised) target waveform itself
    target = SpeechClips(8)[1]["audio"][: LENGTHS[1]].numpy()
    np.testing.assert_allclose(
        first["target_1.wav"][0], target * 0.99 / np.abs(target).max(), atol=1e-6
    )
    # the prediction is a real reconstruction: correlated with the target, not noise
    pred = first["pred_0.wav"][0]
    ref = first["target_0.wav"][0]
    assert (audio / "epoch=0" / "mel.png").is_file()

    rows = _csv_metrics(logger)
    for key in (
        "val/spectral_convergence_db",
        "val/mel_consistency_db",
        "val/log_spectral_distance_db",
        "val/ref_spectral_convergence_db",
    ):
        values = _column(rows, key)
        assert len(values) == 2, key  # one value per validation epoch
        assert all(math.isfinite(v) for v in values)
    sc = _column(rows, "val/spectral_convergence_db")
    assert all(-30.0 < v < 0.0 for v in sc)  # in dB: a ratio below 1
    assert all(v < -10.0 for v in _column(rows, "val/mel_consistency_db"))
    state = cb.state_dict()
    assert state.pop("reference_score") == pytest.approx(
        _column(rows, "val/ref_spectral_convergence_db")[0], abs=1e-4
    )
    assert state == {
        "references_logged": True,
        "validation_runs": 2,
        "logged_epochs": [0, 1],
    }
    assert pred.shape == ref.shape


def _expected_scores(model: TinyMelModel, n_iter: int, init: str = "zeros") -> dict[str, float]:
    """The callback's scores recomputed by hand with the functional API over the whole set."""
    data = SpeechClips(8)
    audio = torch.stack([data[i]["audio"] for i in range(8)])
    lengths = torch.tensor(LENGTHS)
    with torch.no_grad():
        mel, target_mel = model(audio)
        inverter = MelInverter(CONFIG, n_iter=n_iter, init=init)
        wave, ref = inverter(mel), inverter(target_mel)
    frames = torch.tensor([CONFIG.num_frames(int(n)) for n in lengths])
    n = wave.shape[-1]
    pm = spectrogram_magnitude(stft(wave, CONFIG))
    tm = spectrogram_magnitude(stft(audio[:, :n], CONFIG))
    rm = spectrogram_magnitude(stft(ref, CONFIG))  # the Griffin-Lim reference
    return {
        "val/ref_spectral_convergence_db": float(
            spectral_convergence(rm, tm, lengths=frames, db=True)
        ),
        "val/mel_consistency_db": float(mel_consistency(wave, mel, CONFIG, lengths=frames)),
        "val/spectral_convergence_db": float(spectral_convergence(pm, tm, lengths=frames, db=True)),
        "val/log_spectral_distance_db": float(log_spectral_distance(pm, tm, lengths=frames)),
    }


@pytest.mark.parametrize(("init", "rel"), [("zeros", 1e-4), ("pghi-fast", 2e-2), ("pghi", 2e-2)])
def test_scores_equal_functional_metrics(tmp_path: Path, init: str, rel: float) -> None:
    # zeros: exactly batch independent; pghi-fast (the callback's default) and pghi: an item's
    # last valid frame may see its padding (its phase reads the next frame), so batches 3, 3, 2
    # differ very slightly
    model = TinyMelModel()
    kwargs = {"inverter_kwargs": {"init": init}} if init != "pghi-fast" else {}
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=8, lengths_key="length", **kwargs)
    assert cb.inverter.init == init
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    trainer.validate(model, TinyData(batch_size=3))  # batches of 3, 3, 2: scores are per item
    got = {k: float(v) for k, v in trainer.callback_metrics.items() if k != "val/loss"}
    expected = _expected_scores(model, n_iter=8, init=init)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=rel, abs=1e-5), key


def test_ready_inverter_gives_the_same_scores(tmp_path: Path) -> None:
    model = TinyMelModel()
    inverter = MelInverter(CONFIG, n_iter=8, init="zeros")
    cb = InversionCallback(num_samples=2, lengths_key="length", inverter=inverter)
    assert cb.inverter is inverter and cb.config == CONFIG
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    trainer.validate(model, TinyData(batch_size=3))
    got = {k: float(v) for k, v in trainer.callback_metrics.items() if k != "val/loss"}
    for key, value in _expected_scores(model, n_iter=8).items():
        assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    with pytest.raises(ValueError, match=r"do not also pass \['n_iter'\]"):
        InversionCallback(n_iter=4, inverter=inverter)
    with pytest.raises(ValueError, match="differs from inverter.config"):
        InversionCallback("vocos", inverter=inverter)


def test_no_logger_and_save_dir(tmp_path: Path) -> None:
    save = tmp_path / "saved"
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4, save_dir=save, normalize=None)
    trainer = pl.Trainer(
        **trainer_kwargs(tmp_path / "root", logger=False, max_epochs=1), callbacks=[cb]
    )
    trainer.fit(TinyMelModel(), TinyData())
    files = _wavs(save / "audio" / "epoch=0")
    assert sorted(files) == [f"{n}_{k}.wav" for n in ("pred", "ref", "target") for k in range(2)]
    for data, sr in files.values():
        assert sr == SR and data.shape == (CLIP,) and np.abs(data).max() <= 1.0
    # normalize=None: the reference is the target itself, not rescaled
    np.testing.assert_allclose(
        files["target_0.wav"][0], SpeechClips(8)[0]["audio"].numpy(), atol=1e-7
    )

    # no logger and no save_dir: default_root_dir
    cb = InversionCallback(CONFIG, num_samples=1, n_iter=4, target_key=None)
    root = tmp_path / "plain"
    trainer = pl.Trainer(**trainer_kwargs(root, logger=False, max_epochs=1), callbacks=[cb])
    trainer.fit(TinyMelModel(keys={"audio": None}), TinyData())
    assert sorted(_wavs(root / "audio" / "epoch=0")) == ["pred_0.wav"]
    # without a target waveform only mel consistency is scored
    assert "val/mel_consistency_db" in trainer.callback_metrics
    assert "val/spectral_convergence_db" not in trainer.callback_metrics
    assert "val/ref_spectral_convergence_db" not in trainer.callback_metrics


def test_every_n_epochs_generate_and_bounded_scoring(tmp_path: Path) -> None:
    def generate(pl_module: TinyMelModel, batch: dict) -> dict:
        return {"prediction": pl_module(batch["audio"])[0], "wave": batch["audio"]}

    cb = InversionCallback(
        CONFIG,
        num_samples=2,
        every_n_epochs=2,
        n_iter=4,
        mel_key="prediction",
        target_key="wave",
        generate=generate,
        score_items=2,  # the captured samples only
        log_on_sanity_check=True,
    )
    logger = CSVLogger(tmp_path)
    trainer = pl.Trainer(
        **trainer_kwargs(tmp_path, logger=logger, max_epochs=3, num_sanity_val_steps=1),
        callbacks=[cb],
    )
    trainer.fit(TinyMelModel(keys={"mel": "pred"}), TinyData())
    audio = Path(logger.log_dir) / "audio"
    assert sorted(p.name for p in audio.iterdir()) == ["epoch=0", "epoch=2", "sanity_check"]
    # references were logged at the sanity check, not again
    assert sorted(p.name for p in (audio / "sanity_check").glob("*.wav")) == [
        f"{n}_{k}.wav" for n in ("pred", "ref", "target") for k in range(2)
    ]
    assert sorted(p.name for p in (audio / "epoch=0").glob("*.wav")) == ["pred_0.wav", "pred_1.wav"]
    assert cb.validation_runs == 3 and cb.logged_epochs == [0, 2]
    # scores every validation epoch, even without media
    assert len(_column(_csv_metrics(logger), "val/spectral_convergence_db")) == 3


def test_resume_from_checkpoint_keeps_state(tmp_path: Path) -> None:
    ckpt_dir = tmp_path / "ckpt"

    def callbacks() -> list[pl.Callback]:
        return [
            InversionCallback(CONFIG, num_samples=2, n_iter=4),
            InversionCallback(
                CONFIG,
                num_samples=1,
                n_iter=4,
                name="second",
                prefix="val2/",
                log_targets=False,
                log_reference=False,
            ),
            ModelCheckpoint(dirpath=ckpt_dir, save_last=True),
        ]

    first = callbacks()
    trainer = pl.Trainer(
        **trainer_kwargs(
            tmp_path, logger=CSVLogger(tmp_path, version=0), max_epochs=1, enable_checkpointing=True
        ),
        callbacks=first,
    )
    trainer.fit(TinyMelModel(), TinyData())
    ckpt = torch.load(ckpt_dir / "last.ckpt", weights_only=False)
    keys = [k for k in ckpt["callbacks"] if k.startswith("InversionCallback")]
    assert len(keys) == 2  # two instances coexist
    assert ckpt["callbacks"][first[0].state_key]["references_logged"] is True
    assert ckpt["callbacks"][first[1].state_key]["references_logged"] is False

    second = callbacks()
    logger = CSVLogger(tmp_path, version=1)
    trainer = pl.Trainer(
        **trainer_kwargs(tmp_path, logger=logger, max_epochs=2, enable_checkpointing=True),
        callbacks=second,
    )
    trainer.fit(TinyMelModel(), TinyData(), ckpt_path=ckpt_dir / "last.ckpt")
    # the reference score was computed once, in the first run, and restored
    assert first[0].reference_score is not None and second[1].reference_score is None
    assert second[0].state_dict() == {
        "references_logged": True,
        "reference_score": first[0].reference_score,
        "validation_runs": 2,
        "logged_epochs": [0, 1],
    }
    # the resumed run logs epoch 1 predictions only: references are not logged again
    audio = Path(logger.log_dir) / "audio"
    files = sorted(str(p.relative_to(audio)) for p in audio.rglob("*.wav"))
    assert files == ["epoch=1/pred_0.wav", "epoch=1/pred_1.wav", "second/epoch=1/pred_0.wav"]
    assert "val2/spectral_convergence_db" in trainer.callback_metrics


class _BrokenWriter:
    """Delegates to a SummaryWriter but fails on media."""

    def __init__(self, writer: object) -> None:
        self._writer = writer

    def __getattr__(self, name: str) -> object:
        return getattr(self._writer, name)

    def add_audio(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full (add_audio)")

    def add_image(self, *args: object, **kwargs: object) -> None:
        raise OSError("disk full (add_image)")


class BrokenTensorBoardLogger(TensorBoardLogger):
    @property
    def experiment(self) -> _BrokenWriter:  # type: ignore[override]
        return _BrokenWriter(super().experiment)


def test_failing_logger_does_not_stop_training(tmp_path: Path) -> None:
    csv_logger = CSVLogger(tmp_path / "csv")
    loggers = [BrokenTensorBoardLogger(tmp_path / "tb"), csv_logger]
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=loggers), callbacks=[cb])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(TinyMelModel(), TinyData())
    messages = [str(w.message) for w in caught]
    assert any("TensorBoardLogger" in m and "disk full (add_audio)" in m for m in messages)
    assert any("TensorBoardLogger" in m and "disk full (add_image)" in m for m in messages)
    assert trainer.state.finished and trainer.current_epoch == 2
    # the other logger still got everything
    audio = Path(csv_logger.log_dir) / "audio"
    assert len(list((audio / "epoch=0").glob("*.wav"))) == 6  # pred, target, ref x 2
    assert len(list((audio / "epoch=1").glob("*.wav"))) == 2
    # scalars still reached the broken logger's scalar API
    assert "val/spectral_convergence_db" in trainer.callback_metrics


def test_non_finite_prediction_warns_and_goes_on(tmp_path: Path) -> None:
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4, lengths_key="length")
    logger = CSVLogger(tmp_path)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger, max_epochs=1), callbacks=[cb])
    with pytest.warns(UserWarning, match="NaN/Inf"):
        trainer.fit(TinyMelModel(nan_item=1), TinyData())
    files = _wavs(Path(logger.log_dir) / "audio" / "epoch=0")
    data, sr = files["pred_1.wav"]
    assert data.shape == (LENGTHS[1],) and np.isfinite(data).all()
    assert np.isfinite(files["pred_0.wav"][0]).all() and np.abs(files["pred_0.wav"][0]).max() > 0.5
    # scores skip the non-finite items (6 of 8 items scored) and stay finite
    for key in ("val/spectral_convergence_db", "val/mel_consistency_db"):
        assert math.isfinite(float(trainer.callback_metrics[key]))
    assert int(cb.scores.metrics["spectral_convergence_db"].count) == 0  # reset after logging


def test_missing_key_error_names_present_keys(tmp_path: Path) -> None:
    cb = InversionCallback(CONFIG, num_samples=1, n_iter=2)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    with pytest.raises(
        ValueError, match=r"mel_key='mel'.*keys present: \['audio', 'length', 'loss', 'pred'\]"
    ):
        trainer.validate(TinyMelModel(keys={"mel": "pred"}), TinyData())

    # the target is looked up in the outputs, then in the batch: "wave" is in neither
    cb = InversionCallback(CONFIG, num_samples=1, n_iter=2, target_key="wave")
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    with pytest.raises(ValueError, match=r"target_key='wave'.*target_key=None.*batch keys"):
        trainer.validate(TinyMelModel(keys={"audio": None}), TinyData())

    # a validation_step that returns only its loss, without generate=: a clear error
    cb = InversionCallback(CONFIG, num_samples=1, n_iter=2)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    with pytest.raises(ValueError, match=r"returned a 0-d Tensor \(a loss\?\).*generate="):
        trainer.validate(LossOnlyModel(), TinyData())

    cb = InversionCallback("hifigan", num_samples=1, n_iter=2)  # 80 bands, the model has 32
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    with pytest.raises(ValueError, match="n_mels=80"):
        trainer.validate(TinyMelModel(), TinyData())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"config": "no-such-preset"}, "no-such-preset"),
        ({"num_samples": -1}, "num_samples"),
        ({"num_samples": 2.0}, "num_samples"),
        ({"every_n_epochs": 0}, "every_n_epochs"),
        ({"n_iter": -3}, "n_iter"),
        ({"normalize": "rms"}, "normalize"),
        ({"mel_key": ""}, "mel_key"),
        ({"lengths_unit": "ms"}, "lengths_unit"),
        ({"generate": "not callable"}, "generate"),
        ({"score_items": -1}, "score_items"),
        ({"score_items": 1.5}, "score_items"),
        ({"metrics": {"stoi": "not a metric"}}, "metrics"),
        ({"sinks": ["not a sink"]}, "sinks"),
        ({"inverter_kwargs": {"algorithm": "nope"}}, "algorithm"),
        ({"inverter_kwargs": {"bogus": 1}}, "inverter_kwargs"),
    ],
)
def test_bad_configuration_fails_early(kwargs: dict, match: str) -> None:
    kwargs = {"config": CONFIG, **kwargs}
    with pytest.raises(ValueError, match=match):
        InversionCallback(**kwargs)


def test_several_validations_per_epoch_keep_every_file(tmp_path: Path) -> None:
    cb = InversionCallback(CONFIG, num_samples=1, n_iter=2, log_targets=False, save_dir=tmp_path)
    trainer = pl.Trainer(
        **trainer_kwargs(
            tmp_path, logger=False, max_epochs=1, limit_train_batches=4, val_check_interval=2
        ),
        callbacks=[cb],
    )
    trainer.fit(TinyMelModel(), TinyData(n_train=8, batch_size=2))
    folders = sorted(p.name for p in (tmp_path / "audio").iterdir())
    assert folders == ["epoch=0", "epoch=0-step=4"]  # the second run does not overwrite the first
    assert cb.validation_runs == 2
    assert len(cb._buffer) == 0  # nothing held between validation runs


class NormalisedTinyModel(TinyMelModel):
    """Predicts Matcha-style normalised log-mels, ``(log-mel - MEAN) / STD``; can also return a
    target mel shifted by ``target_offset``."""

    MEAN, STD = -6.0, 2.5

    def __init__(self, target_offset: float | None = None) -> None:
        super().__init__()
        self.target_offset = target_offset

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred, target = super().forward(audio)
        return (pred - self.MEAN) / self.STD, (target - self.MEAN) / self.STD

    def validation_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        out = super().validation_step(batch, batch_idx)
        if self.target_offset is not None:
            out["target_mel"] = self(batch["audio"])[1] + self.target_offset
        return out


def _guard_warnings(tmp_path: Path, config, model: TinyMelModel, **kwargs) -> list[str]:
    cb = InversionCallback(config, num_samples=1, n_iter=2, lengths_key="length", **kwargs)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False), callbacks=[cb])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.validate(model, TinyData(batch_size=4))  # two batches
        trainer.validate(model, TinyData(batch_size=4))
    return [str(w.message) for w in caught if "this config computes" in str(w.message)]


def test_mismatched_config_guard(tmp_path: Path) -> None:
    # a normalised prediction with an unnormalised config: one warning naming the cause
    found = _guard_warnings(tmp_path, CONFIG, NormalisedTinyModel())
    assert len(found) == 1, found
    assert "dB above what this config computes" in found[0] and "Is it normalised" in found[0]
    suggested = dict(re.findall(r"(mel_mean|mel_std)=(-?[\d.]+)", found[0]))  # estimates
    assert float(suggested["mel_mean"]) == pytest.approx(-6.0, rel=0.05)
    assert float(suggested["mel_std"]) == pytest.approx(2.5, rel=0.05)
    # the matching config: silent
    normed = MelConfig.from_dict({**CONFIG.to_dict(), "mel_mean": -6.0, "mel_std": 2.5})
    assert _guard_warnings(tmp_path, normed, NormalisedTinyModel()) == []
    assert _guard_warnings(tmp_path, CONFIG, TinyMelModel()) == []  # plain log-mel: silent
    # a target mel that is not what the config computes from the audio
    found = _guard_warnings(
        tmp_path, normed, NormalisedTinyModel(target_offset=0.4), target_mel_key="target_mel"
    )
    assert len(found) == 1 and "the target mel differs" in found[0], found
    exact = NormalisedTinyModel(target_offset=0.0)
    assert _guard_warnings(tmp_path, normed, exact, target_mel_key="target_mel") == []


class HostileTinyModel(TinyMelModel):
    """Finite predictions the inverter cannot take: item 1 overflows when decompressed (a log-mel
    of 95), or (``short=True``) every prediction is shorter than one analysis window."""

    def __init__(self, short: bool = False) -> None:
        super().__init__()
        self.short = short

    def validation_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        out = super().validation_step(batch, batch_idx)
        mel = out["mel"].clone()
        if self.short:
            out["mel"] = mel[..., : CONFIG.min_frames - 1]
        else:
            mel[1, :, 3] = 95.0
            out["mel"] = mel
        return out


@pytest.mark.parametrize("short", [False, True])
def test_uninvertible_predictions_warn_and_training_goes_on(tmp_path: Path, short: bool) -> None:
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=4, lengths_key="length")
    logger = CSVLogger(tmp_path)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=logger, max_epochs=1), callbacks=[cb])
    match = "shorter than one window" if short else "overflow when decompressed"
    with pytest.warns(UserWarning, match=match):
        trainer.fit(HostileTinyModel(short=short), TinyData())
    assert trainer.state.finished
    files = _wavs(Path(logger.log_dir) / "audio" / "epoch=0")
    for name in ("pred_0.wav", "pred_1.wav"):  # logged (silence where uninvertible), finite
        assert np.isfinite(files[name][0]).all()
    assert np.abs(files["pred_1.wav"][0]).max() == 0.0  # item 1: silence
    if not short:  # the other items are scored, with finite values
        assert np.abs(files["pred_0.wav"][0]).max() > 0.5
        for key in ("val/spectral_convergence_db", "val/mel_consistency_db"):
            assert math.isfinite(float(trainer.callback_metrics[key]))


def test_full_save_dir_leaves_no_truncated_files(tmp_path: Path, monkeypatch) -> None:
    import errno

    from specinv_lightning import loggers

    def full_disk(handle, clip) -> None:  # noqa: ANN001
        handle.write(b"RIFF")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(loggers, "write_wav", full_disk)
    save_dir = tmp_path / "media"
    cb = InversionCallback(CONFIG, num_samples=2, n_iter=2, save_dir=save_dir)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, logger=False, max_epochs=1), callbacks=[cb])
    with pytest.warns(UserWarning, match="No space left on device"):
        trainer.fit(TinyMelModel(), TinyData())  # training goes on
    assert trainer.state.finished
    written = [p for p in save_dir.rglob("*") if p.is_file()]
    assert [p.name for p in written] == ["mel.png"]  # no partial wav, no temporary file
