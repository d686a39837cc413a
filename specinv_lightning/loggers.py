"""Media sinks for :class:`~specinv_lightning.InversionCallback`: one small adapter per logger kind.

Each adapter turns "here are some clips (and optionally a mel figure)" into the calls its logger
understands:

* :class:`WandbMedia` - ``WandbLogger.log_audio`` (``wandb.Audio`` with ``sample_rate`` and
  ``caption``) and ``WandbLogger.log_image``;
* :class:`TensorBoardMedia` - ``SummaryWriter.add_audio`` (with the right ``sample_rate``) and
  ``add_image`` (the rendered mel figure);
* :class:`MLFlowMedia` - wav files logged with ``MlflowClient.log_artifact`` under
  ``audio/epoch=<E>/`` and the mel figure with ``log_image``;
* :class:`CometMedia` - ``CometLogger.experiment.log_audio`` (with ``sample_rate``, ``step`` and
  the caption as metadata) and ``log_image``;
* :class:`NeptuneMedia` - a ``NeptuneLogger`` (neptune's own integration; Lightning's is retired):
  wav files uploaded under ``<key_prefix><folder>/<name>_<k>.wav`` and the mel figure appended to
  an image series;
* :class:`WavFileMedia` - wav files written with ``soundfile`` under
  ``<root>/audio/epoch=<E>/<name>_<k>.wav`` (CSVLogger, any other logger, no logger, ``save_dir``).

Your own destination: subclass :class:`MediaSink` (``log_audio`` and optionally ``log_image``) and
pass instances as ``InversionCallback(sinks=[...])``. Clips are :class:`AudioClip` objects named
``pred`` (the inverted prediction, every logged epoch), ``target`` (the target waveform, once) and
``ref`` (the target's mel inverted with the same inverter, once: the "Griffin-Lim ceiling").

Optional dependencies (wandb, tensorboard, mlflow, comet_ml, neptune, matplotlib) are imported
lazily inside the adapter that needs them; their availability is checked with ``RequirementCache``.
Adapters may raise: the callback wraps every call and turns failures into warnings.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np
from lightning.pytorch.loggers import (
    CometLogger,
    CSVLogger,
    Logger,
    MLFlowLogger,
    TensorBoardLogger,
    WandbLogger,
)
from lightning_utilities.core.imports import RequirementCache

from specinv_lightning._io import atomic_write
from specinv_lightning.config import MelConfig
from specinv_lightning.functional.filterbank import hz_to_mel, mel_to_hz

__all__ = [
    "AudioClip",
    "MediaSink",
    "CometMedia",
    "MLFlowMedia",
    "NeptuneMedia",
    "TensorBoardMedia",
    "WandbMedia",
    "WavFileMedia",
    "media_sinks",
    "audio_dir",
    "clip_audio",
    "publish",
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
        name: Kind of clip (used in keys and file names): ``"pred"`` (inverted prediction),
            ``"target"`` (target waveform) or ``"ref"`` (inverted target mel).
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


def write_wav(path: str | io.BytesIO | BinaryIO, clip: AudioClip) -> None:
    """Write one clip as a float32 (IEEE float) wav file with soundfile."""
    import soundfile as sf

    sf.write(path, clip.audio, clip.sample_rate, subtype="FLOAT", format="WAV")


def wav_bytes(clip: AudioClip) -> bytes:
    """The clip as the bytes of a float32 wav file."""
    buffer = io.BytesIO()
    write_wav(buffer, clip)
    return buffer.getvalue()


class MediaSink:
    """Base class: where the callback's clips and figures go; subclass it for your own sink.

    Subclasses implement :meth:`log_audio` and, optionally, :meth:`log_image`, and pass instances
    as ``InversionCallback(sinks=[...])``. They are called on global rank zero only, once per
    logged validation epoch and clip kind (``pred`` every logged epoch, ``target`` and ``ref``
    once); an exception becomes a warning and training goes on.

    Attributes:
        name: Short label used in warnings (e.g. ``"TensorBoardLogger"``).

    Example:
        >>> from specinv_lightning import MediaSink
        >>> class Recorder(MediaSink):
        ...     name = "recorder"
        ...
        ...     def __init__(self):
        ...         self.clips = []
        ...
        ...     def log_audio(self, clips, key_prefix, step, folder):
        ...         self.clips += [(f"{key_prefix}{c.name}_{c.index}", c.audio.shape) for c in clips]
        >>> Recorder().wants_images  # no log_image: no mel figure is rendered for it
        False
    """

    name: str = "media"

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        """Log ``clips`` (all of the same ``name``) under ``<key_prefix><name>``.

        Args:
            clips: The clips, float32 in ``[-1, 1]``, trimmed to their true length.
            key_prefix: e.g. ``"val/audio/"``.
            step: The trainer's global step.
            folder: A folder name for file-based sinks, e.g. ``"epoch=3"``.
        """
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


class CometMedia(MediaSink):
    """``CometLogger``: ``experiment.log_audio`` per clip and ``experiment.log_image``.

    Example:
        >>> from specinv_lightning.loggers import CometMedia
        >>> CometMedia.name
        'CometLogger'
    """

    name = "CometLogger"

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        experiment = self.logger.experiment
        for c in clips:
            experiment.log_audio(
                c.audio,
                sample_rate=c.sample_rate,
                file_name=f"{key_prefix}{c.name}_{c.index}.wav".replace("/", "_"),
                metadata={"caption": c.caption, "folder": folder},
                step=step,
            )

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        self.logger.experiment.log_image(image, name=key.replace("/", "_"), step=step)


class NeptuneMedia(MediaSink):
    """``NeptuneLogger`` (``neptune.integrations.pytorch_lightning``): wav files uploaded to
    ``<key_prefix><folder>/<name>_<k>.wav``, the mel figure appended to the ``<key>`` series.

    Example:
        >>> from specinv_lightning.loggers import NeptuneMedia
        >>> NeptuneMedia.name
        'NeptuneLogger'
    """

    name = "NeptuneLogger"

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def log_audio(
        self, clips: Sequence[AudioClip], key_prefix: str, step: int, folder: str
    ) -> None:
        from neptune.types import File

        run = self.logger.experiment
        for c in clips:
            field = run[f"{key_prefix}{folder}/{c.name}_{c.index}.wav"]
            field.upload(File.from_content(wav_bytes(c), extension="wav"))

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        from neptune.types import File

        self.logger.experiment[key].append(File.as_image(image), step=step)


def _is_neptune(logger: Logger) -> bool:
    return type(logger).__name__ == "NeptuneLogger" and hasattr(logger, "experiment")


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
        for c in clips:  # atomic: a full disk leaves no truncated wav and keeps an old one
            atomic_write(os.path.join(path, c.file_name), lambda h, c=c: write_wav(h, c))

    def log_image(self, image: np.ndarray, key: str, step: int, folder: str) -> None:
        from matplotlib.image import imsave

        path = audio_dir(self.root, folder)
        os.makedirs(path, exist_ok=True)
        atomic_write(os.path.join(path, "mel.png"), lambda h: imsave(h, image, format="png"))


def _logger_dir(logger: Logger) -> str | None:
    for attr in ("log_dir", "save_dir"):
        try:
            value = getattr(logger, attr, None)
        except Exception:  # a property that needs an experiment may fail
            value = None
        if value:
            return os.fspath(value)
    return None


def _adapter(logger: Logger) -> type[MediaSink] | None:
    if isinstance(logger, WandbLogger):
        return WandbMedia
    if isinstance(logger, TensorBoardLogger):
        return TensorBoardMedia
    if isinstance(logger, MLFlowLogger):
        return MLFlowMedia
    if isinstance(logger, CometLogger):
        return CometMedia
    if _is_neptune(logger):
        return NeptuneMedia
    return None


def media_sinks(
    loggers: Sequence[Logger],
    default_dir: str | None,
    save_dir: str | None,
    extra: Sequence[MediaSink] = (),
) -> tuple[list[MediaSink], list[str]]:
    """One sink per logger (deduplicated wav folders), plus ``save_dir`` and ``extra``.

    Args:
        loggers: ``trainer.loggers``.
        default_dir: Folder for wav files when no logger gives one (``trainer.default_root_dir``).
        save_dir: The callback's ``save_dir`` (wav files always written there too).
        extra: The user's own sinks (``InversionCallback(sinks=...)``), appended as they are.

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
        adapter = _adapter(logger)
        if adapter is not None:
            try:
                sinks.append(adapter(logger))  # type: ignore[call-arg]
                continue
            except ModuleNotFoundError as err:
                problems.append(
                    f"{type(logger).__name__}: {err}; writing wav files to its folder instead"
                )
        remote = isinstance(logger, MLFlowLogger | WandbLogger | CometLogger) or _is_neptune(logger)
        root = None if remote else _logger_dir(logger)
        label = type(logger).__name__ if not isinstance(logger, CSVLogger) else "CSVLogger"
        if root is None:
            root = default_dir
        if root is not None:
            add_wav_root(root, label)
    if not loggers and default_dir is not None and save_dir is None:
        add_wav_root(default_dir, "no logger")
    if save_dir is not None:
        add_wav_root(save_dir, "save_dir")
    sinks.extend(extra)
    return sinks, problems


def figure_to_array(figure: Any) -> np.ndarray:
    """Render a matplotlib figure to an RGB ``uint8`` array ``(H, W, 3)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def clip_audio(
    wave: Any, length: int, normalize: Literal["peak"] | None, peak: float = 0.99
) -> np.ndarray:
    """A waveform tensor as a float32 array for an :class:`AudioClip`: trimmed (or zero-padded)
    to ``length`` samples, NaN/Inf -> 0, scaled to ``peak`` (``normalize="peak"``), clipped into
    ``[-1, 1]``."""
    import torch

    x = torch.nan_to_num(wave[:length].detach().double(), nan=0.0, posinf=0.0, neginf=0.0)
    if x.shape[-1] < length:
        x = torch.nn.functional.pad(x, (0, length - x.shape[-1]))
    if normalize == "peak":
        top = float(x.abs().max()) if x.numel() else 0.0
        if top > 0 and math.isfinite(top):
            x = x * (peak / top)
    return x.clamp(-1.0, 1.0).float().cpu().numpy()


def publish(
    sinks: Sequence[MediaSink],
    groups: Sequence[Sequence[AudioClip]],
    image: np.ndarray | None,
    key_prefix: str,
    image_key: str,
    step: int,
    folder: str,
    warn: Callable[[str], None],
) -> set[str]:
    """Send every non-empty clip group (and the figure) to every sink; a sink that raises gives
    ``warn(message)`` and the others go on. Returns the clip names at least one sink took."""
    delivered: set[str] = set()
    for sink in sinks:
        for clips in groups:
            if clips and _attempt(
                warn, sink.name, f"{clips[0].name} audio",
                lambda s=sink, c=clips: s.log_audio(c, key_prefix, step, folder),
            ):  # fmt: skip
                delivered.add(clips[0].name)
        if image is not None and sink.wants_images:
            _attempt(
                warn, sink.name, "the mel figure",
                lambda s=sink: s.log_image(image, image_key, step, folder),
            )  # fmt: skip
    return delivered


def _attempt(warn: Callable[[str], None], who: str, what: str, fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except Exception as err:  # never kill training because logging failed
        warn(
            f"{who} failed to log {what} ({type(err).__name__}: {err}); skipped, training goes on."
        )
        return False
    return True


def _band_hz(config: MelConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band."""
    import torch

    low = hz_to_mel(torch.tensor(float(config.f_min), dtype=torch.float64), config.mel_scale)
    high = hz_to_mel(torch.tensor(float(config.f_max), dtype=torch.float64), config.mel_scale)
    points = torch.linspace(float(low), float(high), config.n_mels + 2, dtype=torch.float64)
    return mel_to_hz(points, config.mel_scale)[1:-1].numpy()


def mel_figure(
    preds: Sequence[np.ndarray],
    targets: Sequence[np.ndarray | None],
    title: str,
    config: MelConfig | None = None,
) -> Any:
    """Predicted mel, target mel and predicted minus target, side by side; samples stacked top to
    bottom (sample 0 on top) with a blank band between them.

    Axes in seconds (time) and Hz (mel band centres, ticks at a few bands of each sample) when
    ``config`` is given, a colour bar for the level (shared by prediction and target, in the
    model's compressed units) and a diverging one for the difference. Three axes only, so it
    renders in well under 0.1 s. Returns a matplotlib ``Figure`` (not registered with pyplot), or
    ``None`` without matplotlib.
    """
    if not _MATPLOTLIB_AVAILABLE:
        return None
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    n_mels = preds[0].shape[0]
    gap = max(1, n_mels // 6)
    panels = [("predicted", _stack(preds, gap))]
    if all(t is not None for t in targets):
        real = [t for t in targets if t is not None]
        panels.append(("target", _stack(real, gap)))
        diffs = [_difference(p, t) for p, t in zip(preds, real, strict=True)]
        panels.append(("predicted - target", _stack(diffs, gap)))
    levels = np.concatenate([p[np.isfinite(p)] for _, p in panels[:2]])
    vmin, vmax = (float(levels.min()), float(levels.max())) if levels.size else (0.0, 1.0)
    finite_diff = panels[2][1][np.isfinite(panels[2][1])] if len(panels) == 3 else np.zeros(0)
    span = float(np.abs(finite_diff).max()) if finite_diff.size else 1.0
    seconds = 1.0 if config is None else config.hop_length / config.sample_rate
    fig = Figure(figsize=(2.7 * len(panels) + 1.4, 1.0 + 0.9 * len(preds)), dpi=72)
    left, width = 0.09, 0.78 / len(panels)
    images = []
    for j, (label, data) in enumerate(panels):
        ax = fig.add_axes((left + j * width, 0.16, width - 0.015, 0.72))
        extent = (0.0, data.shape[-1] * seconds, float(data.shape[0]), 0.0)
        diff = label.startswith("predicted -")
        images.append(
            ax.imshow(data, aspect="auto", interpolation="nearest", extent=extent,
                      vmin=-span if diff else vmin, vmax=span if diff else vmax,
                      cmap="RdBu_r" if diff else None)
        )  # fmt: skip
        ax.set_title(label, fontsize=7)
        ax.tick_params(labelsize=6, length=2)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # few ticks: rendering stays cheap
        ax.set_xlabel("time (s)" if config is not None else "frame", fontsize=6)
        if j == 0 and config is not None:
            ax.set_yticks(*_stacked_freq_ticks(config, len(preds), gap))
            ax.set_ylabel("frequency (Hz)", fontsize=6)
        else:
            ax.set_yticks([])
    for x, image, label in ((0.885, images[0], "level"), (0.945, images[-1], "diff")):
        if label == "diff" and len(images) < 3:
            break
        bar = fig.add_axes((x, 0.16, 0.012, 0.72))
        fig.colorbar(image, cax=bar, ticks=MaxNLocator(4)).ax.tick_params(labelsize=5, length=2)
        bar.set_title(label, fontsize=6)
    fig.text(0.5, 0.99, title, ha="center", va="top", fontsize=8)
    return fig


def _stack(mels: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """Mels stacked top to bottom (row 0 at the top: low frequencies at the bottom of each band)."""
    n_mels = mels[0].shape[0]
    frames = max(m.shape[-1] for m in mels)
    out = np.full((len(mels) * (n_mels + gap) - gap, frames), np.nan, dtype=np.float32)
    for i, m in enumerate(mels):
        top = i * (n_mels + gap)
        out[top : top + n_mels, : m.shape[-1]] = m[::-1]
    return out


def _stacked_freq_ticks(config: MelConfig, count: int, gap: int) -> tuple[list[float], list[str]]:
    """Tick positions and Hz labels at the lowest and a high band of every stacked sample."""
    hz = _band_hz(config)
    n = config.n_mels
    bands = [0, (3 * n) // 4]
    labels = [f"{hz[b] / 1000:.1f}k" if hz[b] >= 1000 else f"{hz[b]:.0f}" for b in bands]
    positions, names = [], []
    for i in range(count):
        top = i * (n + gap)
        for b, label in zip(bands, labels, strict=True):
            positions.append(top + (n - 1 - b) + 0.5)  # rows are flipped within each band
            names.append(label)
    return positions, names


def _difference(pred: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    assert target is not None
    n = min(pred.shape[-1], target.shape[-1])
    return pred[:, :n] - target[:, :n]
