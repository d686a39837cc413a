"""Two CPU processes (gloo): synced metric values equal one process over the same data."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from specinv_lightning import (
    LogSpectralDistance,
    MelConsistency,
    MelSpectrogram,
    SpectralConvergence,
)

CONFIG = {"preset": "hifigan", "sample_rate": 16000}
# rank 0 sees 3 items in 2 batches, rank 1 sees 2 items in 1 batch: uneven on purpose
SHARDS = {0: [(0, 1), (1, 3)], 1: [(3, 5)]}


def _data() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(5, 8, 11, generator=gen) + 0.05
    preds = (target + 0.3 * torch.randn(target.shape, generator=gen)).abs()
    wave = 0.1 * torch.randn(5, 4000, generator=gen)
    mel = MelSpectrogram(CONFIG)(wave)
    mel = mel + 0.3 * torch.randn(mel.shape, generator=gen)
    lengths = torch.tensor([11, 4, 11, 7, 2])
    return {"preds": preds, "target": target, "wave": wave, "mel": mel, "lengths": lengths}


def _metrics() -> dict[str, torch.nn.Module]:
    return {
        "sc": SpectralConvergence(),
        "sc_db": SpectralConvergence(db=True),
        "lsd": LogSpectralDistance(),
        "mel": MelConsistency(CONFIG),
    }


def _update(metrics: dict, data: dict, i: int, j: int) -> None:
    metrics["sc"].update(data["preds"][i:j], data["target"][i:j], lengths=data["lengths"][i:j])
    metrics["sc_db"].update(data["preds"][i:j], data["target"][i:j])
    metrics["lsd"].update(data["preds"][i:j], data["target"][i:j], lengths=data["lengths"][i:j])
    metrics["mel"].update(data["wave"][i:j], data["mel"][i:j])


def _worker(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        data = _data()
        metrics = _metrics()
        for i, j in SHARDS[rank]:
            _update(metrics, data, i, j)
        values = {name: m.compute() for name, m in metrics.items()}
        counts = {name: int(m.count) for name, m in metrics.items()}
        torch.save({"values": values, "counts": counts}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed unavailable")
def test_two_process_gloo_equals_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    data = _data()
    single = _metrics()
    _update(single, data, 0, 5)
    expected = {name: m.compute() for name, m in single.items()}
    for rank in (0, 1):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        for name, value in expected.items():
            # every rank sees the global value after sync ...
            torch.testing.assert_close(result["values"][name], value, rtol=1e-6, atol=1e-6)
        # ... while the local states are restored after compute()
        assert result["counts"]["sc"] == (3 if rank == 0 else 2)
    # the single-process value really depends on all five items (not one shard)
    shard = _metrics()
    _update(shard, data, 0, 3)
    assert abs(float(shard["sc"].compute()) - float(expected["sc"])) > 1e-3
