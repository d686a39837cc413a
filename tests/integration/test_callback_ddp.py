"""InversionCallback under 2-process DDP on CPU (gloo, ``ddp_spawn``).

One DDP run where the ranks see *different numbers of validation batches* (3 and 1): it must not
hang, media must be written by global rank zero only, and the logged scores must equal a
single-process run over the same items.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import soundfile as sf
import torch

from specinv_lightning import InversionCallback

try:  # tests/integration may or may not be a package
    from ._tiny import (
        CONFIG,
        SR,
        RankDirLogger,
        SpeechClips,
        TinyMelModel,
        UnevenData,
        trainer_kwargs,
    )
except ImportError:
    from _tiny import (
        CONFIG,
        SR,
        RankDirLogger,
        SpeechClips,
        TinyMelModel,
        UnevenData,
        trainer_kwargs,
    )

KEYS = (
    "val/mel_consistency_db",
    "val/spectral_convergence_db",
    "val/log_spectral_distance_db",
    "val/ref_spectral_convergence_db",
)


def _callback() -> InversionCallback:
    # score_items=None: all items (the ranks' uneven split is not the DistributedSampler's)
    return InversionCallback(
        CONFIG, num_samples=2, n_iter=8, lengths_key="length", score_items=None
    )


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_ddp_uneven_batches_same_scores_media_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "0")  # inherited by the spawned workers
    torch.manual_seed(0)
    model = TinyMelModel()

    single = pl.Trainer(
        **trainer_kwargs(tmp_path / "single", logger=False), callbacks=[_callback()]
    )
    single.validate(model, UnevenData(batch_size=4))
    expected = {k: float(single.callback_metrics[k]) for k in KEYS}

    root = tmp_path / "ddp"
    trainer = pl.Trainer(
        **trainer_kwargs(
            root,
            logger=RankDirLogger(str(root / "logs")),
            devices=2,
            strategy="ddp_spawn",
            use_distributed_sampler=False,
        ),
        callbacks=[_callback()],
    )
    trainer.validate(model, UnevenData(batch_size=2))

    # same numbers as one process (per-item sums and counts are synced, not per-rank means), up to
    # float32 round-off: products over 2-item and 4-item batches differ in the last bits on some
    # CPUs (1.7e-5 relative seen on an AMD EPYC)
    got = {k: float(trainer.callback_metrics[k]) for k in KEYS}
    for key in KEYS:
        assert math.isfinite(got[key])
        assert got[key] == pytest.approx(expected[key], rel=2e-4, abs=1e-6), key
    logged = [
        json.loads(line) for line in (root / "logs" / "metrics.jsonl").read_text().splitlines()
    ]
    row = next(r for r in logged if KEYS[1] in r)
    assert row[KEYS[1]] == pytest.approx(expected[KEYS[1]], rel=2e-4)

    # media from global rank zero only, each sample once: rank 0's first items 0 and 1
    assert not (root / "logs" / "rank1").exists()
    folder = root / "logs" / "rank0" / "audio" / "epoch=0"
    assert sorted(p.name for p in folder.glob("*.wav")) == [
        f"{n}_{k}.wav" for n in ("pred", "ref", "target") for k in range(2)
    ]
    clips = SpeechClips(8)
    for k in range(2):
        data, sr = sf.read(folder / f"target_{k}.wav", dtype="float32")
        ref = clips[k]["audio"][: data.shape[0]]
        assert sr == SR
        assert torch.allclose(torch.from_numpy(data), ref * (0.99 / ref.abs().max()), atol=1e-5)
