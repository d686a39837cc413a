"""``AudioDataModule``: a folder of audio files (or an embedded synthetic speech set) as fixed-length crops.

* Any sample rate and channel count: files are mixed down to mono and resampled (``soxr``) to the
  mel config's sample rate, once, in :meth:`AudioDataModule.setup`, and kept in memory.
* Unreadable/corrupt files are reported (``rank_zero_warn`` listing every one with its reason) and
  skipped; :attr:`AudioDataModule.skipped` holds ``(path, reason)`` pairs.
* Training items are random crops of ``segment_seconds``; validation items are deterministic crops
  from the start of each validation file. Clips shorter than a segment are zero-padded, and
  every item carries ``lengths`` (valid samples), so the model and the callback can ignore padding.
* With ``data_dir=None`` an embedded default dataset is used: speech-like utterances from a
  source-filter synthesiser (:mod:`examples.synth`), generated at first use at the config's sample
  rate and cached as wav files under ``cache_dir`` (default ``$SPECINV_CACHE_DIR`` or
  ``~/.cache/specinv_lightning``). No download needed.

Example:
    >>> from examples.data import AudioDataModule
    >>> dm = AudioDataModule(mel="tacotron2", batch_size=2)  # doctest: +SKIP
    >>> dm.prepare_data(); dm.setup("fit")  # doctest: +SKIP
    >>> batch = next(iter(dm.train_dataloader()))  # doctest: +SKIP
    >>> batch["audio"].shape, batch["lengths"].shape  # doctest: +SKIP
    (torch.Size([2, 22050]), torch.Size([2]))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from specinv_lightning.mel import as_config

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioDataModule",
    "CropDataset",
    "default_cache_dir",
    "ensure_synthetic_dataset",
    "load_audio",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")
_SYNTH_VERSION = 1


def default_cache_dir() -> Path:
    """``$SPECINV_CACHE_DIR`` if set, else ``~/.cache/specinv_lightning``."""
    env = os.environ.get("SPECINV_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "specinv_lightning"


def ensure_synthetic_dataset(
    cache_dir: str | Path, sample_rate: int, num_utterances: int = 64, seed: int = 0
) -> Path:
    """Generate (once) and return the folder of synthetic speech wav files.

    The folder name encodes sample rate, count, seed and synthesiser version, so a changed
    setting never reuses stale files. Files are written atomically (temporary name, then rename)
    and a ``COMPLETE`` marker is written last, so an interrupted run regenerates what is missing.

    Args:
        cache_dir: Root of the cache.
        sample_rate: Sample rate of the generated files.
        num_utterances: Number of utterances.
        seed: Dataset seed (same seed -> identical files).
    """
    from examples.synth import synthesize_utterance

    if num_utterances < 2:
        raise ValueError(f"num_utterances: expected >= 2 (train + val), got {num_utterances}")
    folder = (
        Path(cache_dir).expanduser()
        / "synthetic_speech"
        / f"v{_SYNTH_VERSION}_sr{sample_rate}_n{num_utterances}_seed{seed}"
    )
    if (folder / "COMPLETE").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rank_zero_info(f"Synthesising {num_utterances} speech-like utterances into {folder} ...")
    for i in range(num_utterances):
        target = folder / f"utt_{i:04d}.wav"
        if target.is_file():
            continue
        wave = synthesize_utterance(sample_rate, seed=seed, index=i)
        fd, tmp = tempfile.mkstemp(suffix=".wav", dir=folder)
        os.close(fd)
        sf.write(tmp, wave, sample_rate, subtype="PCM_16")
        os.replace(tmp, target)
    (folder / "COMPLETE").write_text(f"{num_utterances}\n")
    return folder


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read ``path``, mix down to mono and resample to ``sample_rate``; float32 ``(samples,)``.

    Raises:
        ValueError: If the file cannot be decoded, is empty or holds NaN/Inf.
    """
    try:
        data, file_sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError/RuntimeError/TypeError
        raise ValueError(f"cannot decode audio ({type(err).__name__}: {err})") from err
    if data.size == 0:
        raise ValueError("file holds no samples")
    mono = data.mean(axis=1)
    if not np.isfinite(mono).all():
        raise ValueError("file holds NaN/Inf samples")
    if file_sr != sample_rate:
        try:
            import soxr
        except ImportError as err:  # pragma: no cover - soxr is in the "example" extra
            raise ImportError(
                "Resampling needs the 'soxr' package: pip install 'specinv_lightning[example]'"
            ) from err
        mono = soxr.resample(mono, file_sr, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


class CropDataset(Dataset):
    """Fixed-length crops of in-memory mono clips, as ``{"audio": (S,), "lengths": ()}`` items.

    Args:
        clips: Mono float32 clips.
        segment: Crop length in samples (shorter clips are zero-padded; ``lengths`` says how many
            samples are real).
        random_crop: Random offsets (training) or crops from the start (validation).
        num_items: Virtual epoch size for random crops (default: one crop per clip). Item ``i``
            uses clip ``i % len(clips)``.

    Random offsets come from torch's global RNG (seeded per worker by the DataLoader), so
    ``seed_everything`` makes them reproducible.

    Example:
        >>> import numpy as np
        >>> ds = CropDataset([np.ones(100, np.float32)], segment=160, random_crop=False)
        >>> item = ds[0]
        >>> tuple(item["audio"].shape), int(item["lengths"])
        ((160,), 100)
    """

    def __init__(
        self,
        clips: list[np.ndarray],
        segment: int,
        random_crop: bool,
        num_items: int | None = None,
    ) -> None:
        if not clips:
            raise ValueError("clips: expected at least one clip, got none")
        if segment < 1:
            raise ValueError(f"segment: expected >= 1 samples, got {segment}")
        self.clips = clips
        self.segment = segment
        self.random_crop = random_crop
        self.num_items = len(clips) if num_items is None else int(num_items)
        if self.num_items < 1:
            raise ValueError(f"num_items: expected >= 1, got {num_items}")

    def __len__(self) -> int:
        return self.num_items

    def __getitem__(self, index: int) -> dict[str, Any]:
        clip = self.clips[index % len(self.clips)]
        start = 0
        if self.random_crop and len(clip) > self.segment:
            start = int(torch.randint(0, len(clip) - self.segment + 1, ()))
        piece = clip[start : start + self.segment]
        audio = torch.zeros(self.segment, dtype=torch.float32)
        audio[: len(piece)] = torch.from_numpy(piece)
        return {"audio": audio, "lengths": torch.tensor(len(piece), dtype=torch.long)}


class AudioDataModule(LightningDataModule):
    """Audio clips from a folder (or the embedded synthetic speech set) for mel models.

    Args:
        data_dir: Folder searched recursively for audio files (``extensions``). ``None``: use the
            embedded synthetic speech dataset (generated at first use, cached under ``cache_dir``).
        mel: Mel config (preset name, dict or ``MelConfig``); only its ``sample_rate`` and frame
            geometry are used here (the mel itself is computed by the model, on its device). The
            example CLI links it to ``model.mel``.
        segment_seconds: Length of training and validation crops.
        batch_size: Batch size of both loaders.
        num_workers: DataLoader workers.
        train_items_per_epoch: Random crops per training epoch (default: one per training file).
        val_fraction: Fraction of files (at least one) held out for validation; the split is by
            sorted path, so it is deterministic.
        max_val_files: Cap on validation files (``None``: no cap).
        cache_dir: Cache of the synthetic dataset (default ``$SPECINV_CACHE_DIR`` or
            ``~/.cache/specinv_lightning``).
        num_synthetic: Number of synthetic utterances.
        seed: Seed of the synthetic dataset (crops follow ``seed_everything``).
        extensions: File extensions read from ``data_dir``.
    """

    def __init__(
        self,
        data_dir: str | None = None,
        mel: str | dict[str, Any] = "tacotron2",
        segment_seconds: float = 1.0,
        batch_size: int = 8,
        num_workers: int = 0,
        train_items_per_epoch: int | None = None,
        val_fraction: float = 0.1,
        max_val_files: int | None = 8,
        cache_dir: str | None = None,
        num_synthetic: int = 64,
        seed: int = 0,
        extensions: tuple[str, ...] = AUDIO_EXTENSIONS,
    ) -> None:
        super().__init__()
        self.config = as_config(mel)
        if segment_seconds <= 0:
            raise ValueError(f"segment_seconds: expected > 0, got {segment_seconds}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction: expected a value in (0, 1), got {val_fraction}")
        if data_dir is not None and not Path(data_dir).expanduser().is_dir():
            raise ValueError(f"data_dir: {data_dir!r} is not a directory")
        self.data_dir = data_dir
        self.segment = max(
            int(round(segment_seconds * self.config.sample_rate)), self.config.min_samples
        )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_items_per_epoch = train_items_per_epoch
        self.val_fraction = val_fraction
        self.max_val_files = max_val_files
        self.cache_dir = cache_dir
        self.num_synthetic = num_synthetic
        self.seed = seed
        self.extensions = tuple(e.lower() for e in extensions)
        self.skipped: list[tuple[str, str]] = []
        self.train_files: list[Path] = []
        self.val_files: list[Path] = []
        self.train_set: CropDataset | None = None
        self.val_set: CropDataset | None = None

    # ------------------------------------------------------------------ files
    def _synthetic_dir(self) -> Path:
        root = Path(self.cache_dir) if self.cache_dir else default_cache_dir()
        return ensure_synthetic_dataset(
            root, self.config.sample_rate, self.num_synthetic, self.seed
        )

    @property
    def source_dir(self) -> Path:
        """Folder the audio comes from (the synthetic cache when ``data_dir`` is ``None``)."""
        if self.data_dir is not None:
            return Path(self.data_dir).expanduser()
        return self._synthetic_dir()

    def prepare_data(self) -> None:
        """Generate the synthetic dataset once (on one process per node)."""
        if self.data_dir is None:
            self._synthetic_dir()

    def _list_files(self) -> list[Path]:
        root = self.source_dir
        files = sorted(
            p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in self.extensions
        )
        if not files:
            raise ValueError(
                f"data_dir: no audio files with extensions {self.extensions} under {str(root)!r}"
            )
        return files

    def _load_all(self, files: list[Path]) -> tuple[list[Path], list[np.ndarray]]:
        good: list[Path] = []
        clips: list[np.ndarray] = []
        for path in files:
            try:
                clips.append(load_audio(path, self.config.sample_rate))
                good.append(path)
            except (ValueError, RuntimeError, OSError) as err:
                self.skipped.append((str(path), str(err)))
        return good, clips

    def setup(self, stage: str | None = None) -> None:
        """Read, mix down and resample every file; split into training and validation clips."""
        if self.train_set is not None:
            return
        self.skipped = []
        all_files = self._list_files()
        files, clips = self._load_all(all_files)
        if self.skipped:
            listing = "\n".join(f"  {path}: {reason}" for path, reason in self.skipped)
            rank_zero_warn(
                f"AudioDataModule skipped {len(self.skipped)} unreadable audio file(s):\n{listing}"
            )
        if not clips:
            raise ValueError(f"data_dir: none of the {len(all_files)} audio files could be read")
        n_val = max(1, int(round(len(clips) * self.val_fraction)))
        if self.max_val_files is not None:
            n_val = max(1, min(n_val, self.max_val_files))
        if len(clips) == 1:
            rank_zero_warn(
                "AudioDataModule: only one readable file; validating on the training file"
            )
            train_idx, val_idx = [0], [0]
        else:
            n_val = min(n_val, len(clips) - 1)
            train_idx = list(range(len(clips) - n_val))
            val_idx = list(range(len(clips) - n_val, len(clips)))
        self.train_files = [files[i] for i in train_idx]
        self.val_files = [files[i] for i in val_idx]
        self.train_set = CropDataset(
            [clips[i] for i in train_idx],
            self.segment,
            random_crop=True,
            num_items=self.train_items_per_epoch,
        )
        self.val_set = CropDataset([clips[i] for i in val_idx], self.segment, random_crop=False)

    # ------------------------------------------------------------------ loaders
    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None, "call setup() first"
        return DataLoader(
            self.train_set,
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self.num_workers,
            drop_last=len(self.train_set) >= self.batch_size,
            persistent_workers=False,
        )

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
        )
