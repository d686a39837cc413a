"""Train the example mel VAE with LightningCLI and listen to its predicted mels.

Usage (from the repository root)::

    python examples/train.py fit -c configs/example.yaml
    python examples/train.py fit -c configs/example.yaml -c configs/hifigan.yaml   # another mel
    python examples/train.py fit -c configs/example.yaml --data.data_dir /path/to/wavs
    python examples/train.py fit -c configs/example.yaml --trainer.max_steps 20 \\
        --trainer.default_root_dir /tmp/run

The model's ``mel`` argument (a preset name or a dict of ``MelConfig`` fields) is the single source
of truth: the CLI links it to ``data.mel`` and to ``inversion.config`` (the
:class:`specinv_lightning.InversionCallback`, configured under the ``inversion:`` key), so model,
data and callback always share one mel transform. With ``inversion.save_dir: null`` the wav files
go next to the logger's files (``<log_dir>/audio/epoch=<E>/``). At the end of ``fit`` the script prints where
the TensorBoard logs and the wav files are.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make ``examples`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from examples.data import AudioDataModule
from examples.model import MelVAE
from specinv_lightning import InversionCallback

__all__ = ["ExampleCLI", "main"]


class ExampleCLI(LightningCLI):
    """LightningCLI with the InversionCallback as an ``inversion:`` group linked to ``model.mel``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(InversionCallback, "inversion")
        parser.link_arguments("model.mel", "data.mel")
        parser.link_arguments("model.mel", "inversion.config")

    def before_fit(self) -> None:
        """Put the callback's wav files next to the run's logs unless ``inversion.save_dir`` is set."""
        for cb in self.trainer.callbacks:
            if isinstance(cb, InversionCallback) and cb.save_dir is None:
                cb.save_dir = self.trainer.log_dir or self.trainer.default_root_dir

    def after_fit(self) -> None:
        """Print where the logs and the audio went."""
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        lines = ["", "=" * 72, "Training finished."]
        for logger in trainer.loggers:
            log_dir = getattr(logger, "log_dir", None) or getattr(logger, "save_dir", None)
            kind = type(logger).__name__
            if log_dir is None:
                continue
            log_dir = Path(log_dir).resolve()
            if kind == "TensorBoardLogger":
                lines.append(f"TensorBoard logs (audio, mel images, SC curves): {log_dir}")
                lines.append(f"    view them with:  tensorboard --logdir {log_dir.parent}")
            else:
                lines.append(f"{kind} logs: {log_dir}")
        roots = set()
        for cb in trainer.callbacks:
            if isinstance(cb, InversionCallback) and cb.save_dir is not None:
                roots.add(Path(cb.save_dir).resolve())
        for logger in trainer.loggers:
            if getattr(logger, "log_dir", None):
                roots.add(Path(logger.log_dir).resolve())
        wavs = sorted({p for root in roots if root.is_dir() for p in root.rglob("*.wav")})
        if wavs:
            folders = sorted({p.parent for p in wavs})
            lines.append(f"wav files ({len(wavs)}) in:")
            lines.extend(f"    {folder}" for folder in folders[-4:])
            if len(folders) > 4:
                lines.append(f"    ... and {len(folders) - 4} more folder(s)")
        else:
            lines.append("No wav files were written (did a validation epoch run?).")
        ckpt = getattr(trainer.checkpoint_callback, "best_model_path", "") or getattr(
            trainer.checkpoint_callback, "last_model_path", ""
        )
        if ckpt:
            lines.append(f"checkpoint: {Path(ckpt).resolve()}")
        lines.append("=" * 72)
        print("\n".join(lines), flush=True)


def main(args: list[str] | None = None) -> ExampleCLI:
    """Run the CLI (``args=None``: read ``sys.argv``)."""
    return ExampleCLI(
        MelVAE,
        AudioDataModule,
        args=args,
        save_config_kwargs={"overwrite": True},
    )


if __name__ == "__main__":
    main()
