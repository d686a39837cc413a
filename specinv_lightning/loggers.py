"""Media sinks for :class:`~specinv_lightning.InversionCallback`: one small adapter per logger kind.

Each adapter turns "here are some clips (and optionally a mel figure)" into the calls its logger
understands:

* :class:`WandbMedia` - ``WandbLogger.log_audio`` (``wandb.Audio`` with ``sample_rate`` and
  ``caption``) and ``WandbLogger.log_image``;
* :class:`TensorBoardMedia` - ``SummaryWriter.add_audio`` (with the right ``sample_rate``) and
  ``add_image`` (the rendered mel figure);
* :class:`MLFlowMedia` - wav files logged with ``MlflowClient.log_artifact`` under
  ``audio/epoch=<E>/`` and the mel figure with ``log_image``;
* :class:`WavFileMedia` - wav files written with ``soundfile`` under
  ``<root>/audio/epoch=<E>/<name>_<k>.wav`` (CSVLogger, any other logger, no logger, ``save_dir``).

Optional dependencies (wandb, tensorboard, mlflow, matplotlib) are imported lazily inside the adapter
that needs them; their availability is checked with ``RequirementCache``. Adapters may raise: the
callback wraps every call and turns failures into warnings.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from lightning.pytorch.loggers import (
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)
from lightning_utilities.core.imports import RequirementCache

__all__ = [
    "AudioClip",
    "MediaSink",
    "MLFlowMedia",
    "TensorBoardMedia",
    "WandbMedia",
    "WavFileMedia",
    "media_sinks",
    "audio_dir",
]

_MATPLOTLIB_AVAILABLE = RequirementCache("matplotlib")
_TENSORBOARD_AVAILABLE = RequirementCache("tensorboard")
_TENSORBOARDX_AVAILABLE = RequirementCache("tensorboardX")
_WANDB_AVAILABLE = RequirementCache("wandb")
_MLFLOW_AVAILABLE = RequirementCache("mlflow")
_MLFLOW_SKINNY_AVAILABLE = RequirementCache("mlflow-skinny")


@dataclass(frozen=True)
class AudioClip:
    """One mono clip to log.

    Attributes:
        name: Kind of clip, ``"pred"`` or ``"target"`` (used in keys and file names).
        index: Index ``k`` of the captured sample.
        audio: float32 samples in ``[-1, 1]``, shape ``(samples,)``.
        sample_rate: Sample rate in Hz.
        caption: Human-readable caption.
    """

    name: str
    index: int
    audio: np.ndarray
    sample_rate: int
    caption: str

    @property
    def file_name(self) -> str:
        return f"{self.name}_{self.index}.wav"


def audio_dir(root: str | os.PathLike[str], folder: str) -> str:
    """``<root>/audio/<folder>`` (``folder`` is e.g. ``"epoch=3"``)."""
    return os.path.join(os.fspath(root), "audio", folder)


def write_wav(path: str, clip: AudioClip) -> None:
    """Write one clip as a float32 (IEEE float) wav file with soundfile."""
    import soundfile as sf

    sf.write(path, clip.audio, clip.sample_rate, subtype="FLOAT")


class MediaSink:
    """Base class: where the callback's clips and figures go.

    Subclasses implement :meth:`log_audio` and, optionally, :meth:`log_image`.

    Attributes:
        name: Short label used in warnings (e.g. ``"TensorBoardLogger"``).
    """

    name: str = "media"

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        """Log ``clips`` (all of the same ``name``) under ``<key_prefix><name>``."""
        raise NotImplementedError

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:  # noqa: B027
        """Log an RGB ``uint8`` image ``(H, W, 3)`` (a rendered mel figure; default: ignored)."""

    @property
    def wants_images(self) -> bool:
        return type(self).log_image is not MediaSink.log_image


class WandbMedia(MediaSink):
    """``WandbLogger``: one ``wandb.Audio`` list per key, the mel figure via ``log_image``.

    Example:
        >>> from specinv_lightning.loggers import WandbMedia
        >>> WandbMedia.__name__
        'WandbMedia'
    """

    name = "WandbLogger"

    def __init__(self, logger: WandbLogger) -> None:
        if not _WANDB_AVAILABLE:
            raise ModuleNotFoundError(str(_WANDB_AVAILABLE))
        self.logger = logger

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        if not clips:
            return
        self.logger.log_audio(
            key=f"{key_prefix}{clips[0].name}",
            audios=[c.audio for c in clips],
            step=step,
            sample_rate=[c.sample_rate for c in clips],
            caption=[c.caption for c in clips],
        )

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        self.logger.log_image(key=key, images=[image], step=step)


class TensorBoardMedia(MediaSink):
    """``TensorBoardLogger``: ``add_audio(tag, (1, samples), step, sample_rate)`` and ``add_image``.

    Example:
        >>> from specinv_lightning.loggers import TensorBoardMedia
        >>> TensorBoardMedia.name
        'TensorBoardLogger'
    """

    name = "TensorBoardLogger"

    def __init__(self, logger: TensorBoardLogger) -> None:
        if not (_TENSORBOARD_AVAILABLE or _TENSORBOARDX_AVAILABLE):
            raise ModuleNotFoundError(str(_TENSORBOARD_AVAILABLE))
        self.logger = logger

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        import torch

        writer = self.logger.experiment
        for c in clips:
            writer.add_audio(
                f"{key_prefix}{c.name}_{c.index}",
                torch.from_numpy(c.audio).unsqueeze(0),
                global_step=step,
                sample_rate=c.sample_rate,
            )
        writer.flush()

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        writer = self.logger.experiment
        writer.add_image(key, image, global_step=step, dataformats="HWC")
        writer.flush()


class MLFlowMedia(MediaSink):
    """``MLFlowLogger``: wav artifacts under ``audio/epoch=<E>/`` and the mel figure as a png.

    Example:
        >>> from specinv_lightning.loggers import MLFlowMedia
        >>> MLFlowMedia.name
        'MLFlowLogger'
    """

    name = "MLFlowLogger"

    def __init__(self, logger: MLFlowLogger) -> None:
        if not (_MLFLOW_AVAILABLE or _MLFLOW_SKINNY_AVAILABLE):
            raise ModuleNotFoundError(str(_MLFLOW_AVAILABLE))
        self.logger = logger

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        client, run_id = self.logger.experiment, self.logger.run_id
        artifact_path = f"audio/{folder}"
        with tempfile.TemporaryDirectory() as tmp:
            for c in clips:
                path = os.path.join(tmp, c.file_name)
                write_wav(path, c)
                client.log_artifact(run_id, path, artifact_path)

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        name = key.replace("/", "_")
        self.logger.experiment.log_image(self.logger.run_id, image, f"audio/{folder}/{name}.png")


class WavFileMedia(MediaSink):
    """Wav files under ``<root>/audio/epoch=<E>/<name>_<k>.wav`` (and ``mel.png`` with matplotlib).

    Args:
        root: Base directory (a logger's ``log_dir``, the callback's ``save_dir``, ...).
        label: Name used in warnings.

    Example:
        >>> from specinv_lightning.loggers import WavFileMedia
        >>> WavFileMedia("/tmp/run").root
        '/tmp/run'
    """

    def __init__(self, root: str | os.PathLike[str], label: str = "wav files") -> None:
        self.root = os.fspath(root)
        self.name = f"{label} ({self.root})"

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        path = audio_dir(self.root, folder)
        os.makedirs(path, exist_ok=True)
        for c in clips:
            write_wav(os.path.join(path, c.file_name), c)

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        from matplotlib.image import imsave

        path = audio_dir(self.root, folder)
        os.makedirs(path, exist_ok=True)
        imsave(os.path.join(path, "mel.png"), image)


def _logger_dir(logger: Logger) -> str | None:
    for attr in ("log_dir", "save_dir"):
        try:
            value = getattr(logger, attr, None)
        except Exception:  # a property that needs an experiment may fail
            value = None
        if value:
            return os.fspath(value)
    return None


def media_sinks(
    loggers: Sequence[Logger], default_dir: str | None, save_dir: str | None
) -> tuple[list[MediaSink], list[str]]:
    """One sink per logger (deduplicated wav folders), plus ``save_dir`` when given.

    Args:
        loggers: ``trainer.loggers``.
        default_dir: Folder for wav files when no logger gives one (``trainer.default_root_dir``).
        save_dir: The callback's ``save_dir`` (wav files always written there too).

    Returns:
        The sinks, and human-readable problems (e.g. a missing optional dependency) to warn about.
    """
    sinks: list[MediaSink] = []
    problems: list[str] = []
    wav_roots: list[str] = []

    def add_wav_root(root: str, label: str) -> None:
        key = os.path.abspath(root)
        if key not in wav_roots:
            wav_roots.append(key)
            sinks.append(WavFileMedia(root, label))

    for logger in loggers:
        adapter: type[MediaSink] | None = None
        if isinstance(logger, WandbLogger):
            adapter = WandbMedia
        elif isinstance(logger, TensorBoardLogger):
            adapter = TensorBoardMedia
        elif isinstance(logger, MLFlowLogger):
            adapter = MLFlowMedia
        if adapter is not None:
            try:
                sinks.append(adapter(logger))  # type: ignore[call-arg]
                continue
            except ModuleNotFoundError as err:
                problems.append(
                    f"{type(logger).__name__}: {err}; writing wav files to its folder instead"
                )
        root = _logger_dir(logger) if not isinstance(logger, MLFlowLogger | WandbLogger) else None
        label = type(logger).__name__ if not isinstance(logger, CSVLogger) else "CSVLogger"
        if root is None:
            root = default_dir
        if root is not None:
            add_wav_root(root, label)
    if not loggers and default_dir is not None and save_dir is None:
        add_wav_root(default_dir, "no logger")
    if save_dir is not None:
        add_wav_root(save_dir, "save_dir")
    return sinks, problems


def figure_to_array(figure: Any) -> np.ndarray:
    """Render a matplotlib figure to an RGB ``uint8`` array ``(H, W, 3)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def mel_figure(
    preds: Sequence[np.ndarray], targets: Sequence[np.ndarray | None], title: str
) -> Any:
    """Predicted (left) vs target (right) mels, samples stacked top to bottom.

    Returns a matplotlib ``Figure`` (not registered with pyplot), or ``None`` without matplotlib.
    Two axes only (the samples are stacked with a blank band between them): cheap to render.
    """
    if not _MATPLOTLIB_AVAILABLE:
        return None
    from matplotlib.figure import Figure

    def stack(mels: Sequence[np.ndarray]) -> np.ndarray:
        n_mels = mels[0].shape[0]
        frames = max(m.shape[-1] for m in mels)
        gap = max(1, n_mels // 8)
        out = np.full((len(mels) * (n_mels + gap) - gap, frames), np.nan, dtype=np.float32)
        for i, m in enumerate(mels):
            # row 0 at the top: sample 0 on top, low frequencies at the bottom of each band
            top = i * (n_mels + gap)
            out[top : top + n_mels, : m.shape[-1]] = m[::-1]
        return out

    panels = [("predicted", stack(preds))]
    if all(t is not None for t in targets):
        panels.append(("target", stack([t for t in targets if t is not None])))
    finite = np.concatenate([p[np.isfinite(p)] for _, p in panels])
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    fig = Figure(figsize=(3.2 * len(panels), 0.6 + 0.9 * len(preds)), dpi=72)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.86, wspace=0.04)
    width = 0.96 / len(panels)
    for j, (label, img) in enumerate(panels):
        # a bare axes (no ticks, no title): rendering stays in the tens of milliseconds
        ax = fig.add_axes((0.02 + j * width, 0.02, width - 0.01, 0.84), frameon=False)
        ax.set_axis_off()
        ax.imshow(img, aspect="auto", interpolation="nearest", vmin=vmin, vmax=vmax)
        fig.text(0.02 + (j + 0.5) * width, 0.88, label, ha="center", va="bottom", fontsize=8)
    fig.text(0.5, 0.99, title, ha="center", va="top", fontsize=8)
    return fig
