"""The flow-matching example (``examples/flow.py``, ``configs/flow.yaml``) end to end, in process:
its ``validation_step`` returns only a loss and the callback samples it through ``generate``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("jsonargparse")

import examples.flow as flow  # noqa: E402


def test_flow_example_samples_only_the_needed_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("SPECINV_LIGHTNING_COMPILE", "0")
    seen: list[int] = []
    original = flow.generate

    def counting_generate(pl_module: flow.MelFlow, batch: dict) -> object:
        seen.append(int(batch["audio"].shape[0]))
        return original(pl_module, batch)

    # configs/flow.yaml names examples.flow.generate: the CLI resolves it at parse time
    monkeypatch.setattr(flow, "generate", counting_generate)
    cli = flow.main(
        [
            "fit",
            "-c",
            str(ROOT / "configs" / "flow.yaml"),
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            f"--data.cache_dir={tmp_path / 'cache'}",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.max_steps=2",
            "--data.num_synthetic=4",
            "--data.val_fraction=0.5",
            "--data.train_items_per_epoch=2",
            "--data.batch_size=1",
            "--model.hidden_channels=16",
            "--model.n_steps=2",
            "--inversion.n_iter=4",
            "--inversion.num_samples=1",
            "--inversion.score_items=1",
        ]
    )
    trainer = cli.trainer
    assert trainer.state.finished and trainer.global_step == 2
    # one validation epoch of 2 batches of 1 item: only the first batch was sampled
    assert seen == [1]
    log_dir = Path(trainer.log_dir)
    wavs = sorted(p.name for p in (log_dir / "audio" / "epoch=0").glob("*.wav"))
    assert wavs == ["pred_0.wav", "ref_0.wav", "target_0.wav"]
    data, sr = sf.read(log_dir / "audio" / "epoch=0" / "pred_0.wav")
    assert sr == 16000 and data.shape == (16000,)
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = set(acc.Tags()["scalars"])
    assert {"val/spectral_convergence_db", "val/ref_spectral_convergence_db", "val/loss"} <= scalars
    # the reference inverts the target's own mel: closer to the target than an untrained sampler
    ref = acc.Scalars("val/ref_spectral_convergence_db")[-1].value
    pred = acc.Scalars("val/spectral_convergence_db")[-1].value
    assert ref < -3.0 and ref < pred
