"""``specinv-invert``: turn mel files (``.npy``, ``.pt``) into wav files with batched Griffin-Lim.

Usage::

    specinv-invert mels/ --preset hifigan --out wavs/
    specinv-invert "preds/**/*.npy" one.pt --config mel.yaml --n-iter 64 --device cuda
    python -m specinv_lightning.invert --help

Each input is a mel file, a folder (its ``.npy``/``.pt`` files, not recursive) or a glob pattern
(``**`` recurses). A mel is ``(n_mels, frames)`` or ``(1, n_mels, frames)``, compressed as the
config says (as the model outputs it). Every ``<stem>.wav`` is written to ``--out`` (default: the
current folder); an existing output is skipped unless ``--overwrite``. Files that fail to load or
validate (corrupt, wrong ``n_mels``, NaN/Inf, pickled objects) are listed with the reason in the
final summary and skipped; the exit status is 1 if any file failed, 2 on a usage error (bad
arguments, no inputs found), else 0.

Opening a file never executes code: ``.pt`` files are read with
``torch.load(..., weights_only=True)`` and ``.npy`` files with ``numpy.load(..., allow_pickle=False)``.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import glob
import json
import os
import signal
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from specinv_lightning._io import atomic_write
from specinv_lightning.config import PRESETS, MelConfig
from specinv_lightning.functional._checks import check_mel
from specinv_lightning.functional.initial import INITS
from specinv_lightning.inverse import MelInverter

__all__ = ["MEL_EXTENSIONS", "Summary", "collect_inputs", "load_config", "load_mel", "main"]

MEL_EXTENSIONS = (".npy", ".pt")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A problem with the command line (exit status 2)."""


@dataclass
class Summary:
    """What happened to every input file."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    total: int = 0  # input files found
    interrupted: bool = False

    @property
    def not_processed(self) -> int:
        """Files found but neither written, skipped nor failed (an interrupted run)."""
        done = len(self.written) + len(self.skipped) + len(self.failed)
        return max(0, self.total - done)

    def report(self) -> str:
        lines = [
            f"specinv-invert: {len(self.written)} written, {len(self.skipped)} skipped,"
            f" {len(self.failed)} failed"
            + (f", {self.not_processed} not processed (interrupted)" if self.interrupted else "")
        ]
        if self.skipped:
            lines.append("Skipped:")
            lines.extend(f"  {path}: {reason}" for path, reason in self.skipped)
        if self.failed:
            lines.append("Failed:")
            lines.extend(f"  {path}: {reason}" for path, reason in self.failed)
        return "\n".join(lines)


# ---------------------------------------------------------------------------------- config
def load_config(preset: str | None, config_path: str | None) -> MelConfig:
    """The :class:`MelConfig` from ``--preset`` or ``--config`` (YAML or JSON file).

    The file may hold a dict of ``MelConfig`` fields, ``{"preset": name, **overrides}``, a bare
    preset name, or a LightningCLI config whose ``model.mel`` (or top-level ``mel``) is one of those.

    Raises:
        UsageError: Neither or both given, unreadable file, or an invalid config.
    """
    if (preset is None) == (config_path is None):
        raise UsageError("give exactly one of --preset NAME or --config FILE")
    try:
        if preset is not None:
            return MelConfig.from_preset(preset)
        path = Path(config_path)  # type: ignore[arg-type]
        text = path.read_text()
        if path.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            try:
                import yaml
            except ImportError as err:
                raise UsageError(
                    f"--config {path}: reading YAML needs PyYAML (pip install pyyaml),"
                    " or give the config as a .json file"
                ) from err
            data = yaml.safe_load(text)
        if (
            isinstance(data, dict)
            and isinstance(data.get("model"), dict)
            and "mel" in data["model"]
        ):
            data = data["model"]["mel"]
        elif isinstance(data, dict) and "mel" in data:
            data = data["mel"]
        if isinstance(data, str):
            return MelConfig.from_preset(data)
        if not isinstance(data, dict):
            raise UsageError(
                f"--config {path}: expected a mapping of MelConfig fields, got {type(data).__name__}"
            )
        return MelConfig.from_dict(data)
    except UsageError:
        raise
    except Exception as err:  # OSError, ValueError, yaml.YAMLError (python tags, syntax), ...
        source = f"--preset {preset}" if preset is not None else f"--config {config_path}"
        detail = " ".join(str(err).split())[:300]
        raise UsageError(f"{source}: {type(err).__name__}: {detail}") from err


# ---------------------------------------------------------------------------------- inputs
def collect_inputs(patterns: Sequence[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Expand files, folders and globs into mel files (sorted within each argument, deduplicated).

    Returns:
        ``(files, problems)``: ``problems`` lists arguments that matched nothing or named a file
        with an unsupported extension, with the reason.
    """
    files: list[Path] = []
    problems: list[tuple[Path, str]] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append(path)

    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MEL_EXTENSIONS
            )
            if not found:
                problems.append((path, f"folder holds no {'/'.join(MEL_EXTENSIONS)} files"))
            for p in found:
                add(p)
        elif path.is_file():
            if path.suffix.lower() in MEL_EXTENSIONS:
                add(path)
            else:
                problems.append((path, f"unsupported extension; expected {MEL_EXTENSIONS}"))
        else:
            matches = [p for p in _glob(os.path.expanduser(pattern)) if p.is_file()]
            matches = sorted(p for p in matches if p.suffix.lower() in MEL_EXTENSIONS)
            if not matches:
                problems.append((path, "no such file, folder or matching mel files"))
            for p in matches:
                add(p)
    return files, problems


def _glob(pattern: str) -> list[Path]:
    """Files matching ``pattern``; ``**`` recurses, following each real directory once (a symlink
    loop ends), without the unbounded recursion of ``glob(recursive=True)`` on such loops."""
    if "**" not in pattern:
        return [Path(m) for m in glob.glob(pattern)]
    head = pattern.split("**", 1)[0]
    root = Path(head if head.endswith(os.sep) or not head else os.path.dirname(head) or ".")
    rel_pattern = pattern[len(str(root)) :].lstrip(os.sep) if head else pattern
    alt = rel_pattern.replace("**" + os.sep, "")  # "**/" also matches no folder at all
    found: list[Path] = []
    for path in _walk_once(root):
        rel = str(path.relative_to(root))
        if fnmatch.fnmatch(rel, rel_pattern) or fnmatch.fnmatch(rel, alt):
            found.append(path)
    return found


def _walk_once(root: Path) -> Iterator[Path]:
    """Every file under ``root``, following symlinked folders but entering each real one once."""
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = folder.stat()
            entries = sorted(folder.iterdir())
        except OSError:
            continue
        if (info.st_dev, info.st_ino) in visited:
            continue
        visited.add((info.st_dev, info.st_ino))
        for entry in entries:
            if entry.is_dir():
                stack.append(entry)
            elif entry.is_file():
                yield entry


def load_mel(path: Path, config: MelConfig, max_frames: int | None = None) -> Tensor:
    """Load one mel file as a float tensor ``(n_mels, frames)``, without executing any code.

    Raises:
        ValueError: Unreadable/corrupt file, pickled objects, wrong shape or ``n_mels``, too few
            frames, NaN/Inf, or negative values for an uncompressed mel.
    """
    return check_mel(read_mel(path, max_frames), config, "mel")


def read_mel(path: Path, max_frames: int | None = None) -> Tensor:
    """A float ``(bins, frames)`` tensor from a ``.npy``/``.pt`` file (no code is executed).

    Arrays are memory-mapped first, so a mel longer than ``max_frames`` is refused before it
    is read into memory.

    Raises:
        ValueError: Unreadable/corrupt file, pickled objects, meta or sparse tensors, not a real
            2-D array, more than ``max_frames`` frames.
    """
    data = _unwrap(_load_raw(path))
    if isinstance(data, np.ndarray):
        if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
            raise ValueError(f"expected a real numeric array, got dtype {data.dtype}")
        _check_length(data.shape, max_frames)
        data = torch.from_numpy(np.array(data))  # reads the (memory-mapped) values
    if not isinstance(data, Tensor):
        raise ValueError(f"expected an array or tensor, got {type(data).__name__}")
    if data.layout != torch.strided or data.device.type == "meta":
        raise ValueError(
            f"expected a dense tensor with values, got a {data.layout} tensor on {data.device}"
        )
    if data.is_complex() or data.dtype == torch.bool:
        raise ValueError(f"expected a real tensor, got dtype {data.dtype}")
    _check_length(data.shape, max_frames)
    mel = data.detach().to(torch.float64 if data.dtype == torch.float64 else torch.float32)
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise ValueError(
            f"expected shape (n_mels, frames) or (1, n_mels, frames), got {tuple(data.shape)}"
        )
    return mel


def _load_raw(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in MEL_EXTENSIONS:
        raise ValueError(f"unsupported extension {suffix!r}; expected {MEL_EXTENSIONS}")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False, mmap_mode="r")
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # corrupt zip, UnpicklingError (rejected globals), EOF, ...
        raise ValueError(f"cannot load ({_describe_load_error(err)})") from err


def _unwrap(data: Any) -> Any:
    """The mel of a ``{"mel": ...}`` or single-tensor dict; anything else unchanged."""
    if not isinstance(data, dict):
        return data
    tensors = {k: v for k, v in data.items() if isinstance(v, (Tensor, np.ndarray))}
    if "mel" in tensors:
        return tensors["mel"]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    raise ValueError(
        f"holds a dict with keys {sorted(map(str, data))}; expected a tensor or a dict with a"
        " 'mel' entry"
    )


def _check_length(shape: Sequence[int], max_frames: int | None) -> None:
    if max_frames is not None and len(shape) >= 2 and shape[-1] > max_frames:
        raise ValueError(
            f"{shape[-1]} frames is more than --max-frames {max_frames}; split the mel or raise"
            " the limit (memory grows with the length)"
        )


def _describe_load_error(err: Exception) -> str:
    """One short line for a loader exception (torch's weights-only errors are paragraphs)."""
    text = " ".join(str(err).split())
    if "Unsupported global" in text:
        detail = text[text.index("Unsupported global") :].split(" was not an allowed")[0]
        return f"refused to unpickle a Python object: {detail}"
    if "WeightsUnpickler error" in text:
        detail = text.split("WeightsUnpickler error:")[1].split(" Check the documentation")[0]
        return f"not a tensor file or corrupt ({detail.strip()})"
    return f"{type(err).__name__}: {text[:200]}"


# ---------------------------------------------------------------------------------- inversion
def _progress(total: int, enabled: bool) -> Any:
    """A tqdm bar if tqdm is installed and ``enabled``; else ``None`` (plain prints)."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="file", desc="specinv-invert", file=sys.stderr)


def _write(path: Path, wave: np.ndarray, sample_rate: int, subtype: str, overwrite: bool) -> None:
    """Write one wav atomically: a temporary file in the same folder, flushed, its header re-read
    (soundfile reports some errors only at close), then renamed over ``path`` (or linked to it
    when not ``overwrite``: ``FileExistsError`` if it appeared meanwhile)."""
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if subtype.startswith("PCM") and peak > 1.0:
        wave = wave * (0.99 / peak)  # avoid clipping in integer formats

    def check(tmp: Path) -> None:
        frames = sf.info(str(tmp)).frames
        if frames != wave.shape[0]:
            raise OSError(f"incomplete write: {frames} of {wave.shape[0]} samples")

    atomic_write(
        path,
        lambda handle: sf.write(handle, wave, sample_rate, subtype=subtype, format="WAV"),
        overwrite=overwrite,
        check=check,
    )


def _batches(
    items: Iterable[tuple[Path, Path, Tensor]], batch_size: int, max_pending: int
) -> Iterator[list[tuple[Path, Path, Tensor]]]:
    """Group loaded mels with equal frame counts into batches of at most ``batch_size``, holding
    at most ``max_pending`` mels (the largest group goes early when more wait): memory does not
    grow with the number of files."""
    pending: dict[int, list[tuple[Path, Path, Tensor]]] = {}
    held = 0
    for item in items:
        frames = item[2].shape[-1]
        group = pending.setdefault(frames, [])
        group.append(item)
        held += 1
        if len(group) >= batch_size:
            held -= len(group)
            yield pending.pop(frames)
        elif held > max_pending:
            largest = max(pending, key=lambda k: len(pending[k]))
            held -= len(pending[largest])
            yield pending.pop(largest)
    yield from pending.values()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="specinv-invert",
        description=(
            "Invert mel spectrogram files (.npy, .pt) to wav files with batched (mel-consistent)"
            " Griffin-Lim. Files that fail are listed at the end and skipped; the exit status is 1"
            " if any failed."
        ),
    )
    parser.add_argument(
        "inputs", nargs="*", help="mel files, folders of them, or glob patterns ('**' recurses)"
    )
    parser.add_argument("--out", "-o", default=".", help="output folder (default: .)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--preset", choices=sorted(PRESETS), help="mel preset of the inputs")
    group.add_argument(
        "--config",
        help="YAML/JSON file: MelConfig fields, {preset: NAME, ...overrides}, or a LightningCLI"
        " config with model.mel",
    )
    parser.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations (32)")
    parser.add_argument(
        "--device", default="auto", help="'auto' (cuda if available), 'cpu', 'cuda', 'cuda:1', ..."
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="files with equal frame counts inverted together"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing wav files")
    parser.add_argument(
        "--max-frames",
        type=int,
        default=100_000,
        help="refuse mels longer than this many frames (default 100000, about 20 min at hop"
        " 256 and 22.05 kHz): memory grows with the length",
    )
    parser.add_argument(
        "--init",
        choices=INITS,
        default="pghi",
        help="initial phase: 'pghi' (phase-gradient integration from the better of the"
        " magnitude estimate and the mel's peak spectrum, default), 'pghi-fast' (from the"
        " magnitude estimate only), 'random' (seeded) or 'zeros'",
    )
    parser.add_argument(
        "--no-mel-consistent",
        action="store_true",
        help="plain (fast) Griffin-Lim instead of the mel-consistent variant",
    )
    parser.add_argument(
        "--subtype", default="PCM_16", help="soundfile wav subtype (PCM_16, PCM_24, FLOAT)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    parser.add_argument(
        "--identify",
        nargs=2,
        metavar=("WAVE", "MEL"),
        help="instead of inverting: name the preset (and normalisation) that computes MEL (.npy/.pt)"
        " from WAVE; exit 0 if one fits, 1 if none does",
    )
    return parser


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UsageError(f"--device {name!r}: {err}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name!r}: CUDA is not available on this machine")
    return device


def _check_args(args: argparse.Namespace) -> None:
    if args.n_iter < 0:
        raise UsageError(f"--n-iter: expected an integer >= 0, got {args.n_iter}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    if args.max_frames < 1:
        raise UsageError(f"--max-frames: expected an integer >= 1, got {args.max_frames}")
    if args.subtype not in sf.available_subtypes("WAV"):
        raise UsageError(
            f"--subtype {args.subtype!r}: expected one of {sorted(sf.available_subtypes('WAV'))}"
        )


def run(args: argparse.Namespace, summary: Summary | None = None) -> Summary:
    """Invert every input (see :func:`main`); returns what happened to each file (recorded in
    ``summary`` as it goes, so an interrupted run still reports what it did).

    Raises:
        UsageError: Bad options or config, or no inputs found.
    """
    summary = Summary() if summary is None else summary
    _check_args(args)
    config = load_config(args.preset, args.config)
    device = _device(args.device)
    files, problems = collect_inputs(args.inputs)
    if not files:
        details = "; ".join(f"{p}: {r}" for p, r in problems)
        raise UsageError(f"no mel files ({'/'.join(MEL_EXTENSIONS)}) found ({details})")
    out_dir = Path(args.out).expanduser()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out_dir}: {err}") from err
    try:
        inverter = MelInverter(
            config, n_iter=args.n_iter, mel_consistent=not args.no_mel_consistent, init=args.init
        ).to(device)
    except Exception as err:  # e.g. a huge n_fft: the filterbank does not fit in memory
        raise UsageError(
            f"config: cannot build the inverter ({type(err).__name__}: {err})"
        ) from err
    summary.failed.extend(problems)
    summary.total = len(files) + len(problems)
    runner = _Runner(args, config, inverter, out_dir, summary)
    try:
        for batch in _batches(runner.loaded(files), args.batch_size, 4 * args.batch_size):
            runner.invert_and_write(batch, device)
    finally:
        runner.close()
    return summary


class _Runner:
    """One ``specinv-invert`` run: loads, inverts and writes, recording each file's outcome."""

    def __init__(
        self,
        args: argparse.Namespace,
        config: MelConfig,
        inverter: MelInverter,
        out_dir: Path,
        summary: Summary,
    ) -> None:
        self.args, self.config, self.inverter = args, config, inverter
        self.out_dir, self.summary = out_dir, summary
        self.bar = _progress(0, enabled=not args.quiet)
        self.claimed: dict[Path, Path] = {}

    def say(self, message: str) -> None:
        if self.args.quiet:
            return
        if self.bar is not None:
            self.bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def loaded(self, files: Sequence[Path]) -> Iterator[tuple[Path, Path, Tensor]]:
        """``(input, output, mel)`` of every file to invert (the others are recorded)."""
        if self.bar is not None:
            self.bar.total = len(files)
        for path in files:
            target = self.out_dir / f"{path.stem}.wav"
            if target.exists() and not self.args.overwrite and target not in self.claimed:
                self.summary.skipped.append((path, f"{target} exists (use --overwrite)"))
                self.advance()
                continue
            try:
                mel = load_mel(path, self.config, self.args.max_frames)
            except Exception as err:  # corrupt, hostile, too large: this file's failure only
                self.fail(path, _reason(err))
                continue
            if target in self.claimed:  # two inputs with the same stem (e.g. x.npy and x.pt)
                self.summary.failed.append(
                    (path, f"output {target} is already produced from {self.claimed[target]}")
                )
                self.advance()
                continue
            self.claimed[target] = path
            yield path, target, mel

    def fail(self, path: Path, reason: str) -> None:
        self.summary.failed.append((path, reason))
        self.say(f"FAILED {path}: {reason}")
        self.advance()

    def invert_and_write(
        self, batch: list[tuple[Path, Path, Tensor]], device: torch.device
    ) -> None:
        """Invert mels of equal frame counts together and write each wav; a batch that fails is
        retried item by item, so each file succeeds or fails on its own."""
        try:
            dtype = torch.float64 if any(m.dtype == torch.float64 for *_, m in batch) else None
            mels = torch.stack([mel.to(dtype or mel.dtype) for _, _, mel in batch]).to(device)
            # every init is per item (pghi) or shared by all items (seeded random, zeros): each
            # output depends only on its own mel (not on batching or file order)
            with torch.inference_mode():
                waves = self.inverter(mels).float().cpu().numpy()
        except Exception as err:
            if len(batch) > 1:
                for item in batch:
                    self.invert_and_write([item], device)
            else:
                self.fail(batch[0][0], f"inversion failed: {_reason(err)}")
            return
        for (path, target, _), wave in zip(batch, waves, strict=True):
            self.write(path, target, wave)

    def write(self, path: Path, target: Path, wave: np.ndarray) -> None:
        args = self.args
        try:
            _write(target, wave, self.config.sample_rate, args.subtype, args.overwrite)
        except FileExistsError:
            self.summary.skipped.append((path, f"{target} exists (use --overwrite)"))
            self.advance()
        except Exception as err:  # full disk, permissions, ...: the old file is untouched
            self.fail(path, f"cannot write {target}: {_reason(err)}")
        else:
            self.summary.written.append(target)
            if self.bar is None:
                self.say(f"wrote {target}")
            self.advance()


def _reason(err: BaseException) -> str:
    """One line for an exception: its type too when the message alone would be unclear."""
    text = " ".join(str(err).split())[:300]
    return text if isinstance(err, ValueError) and text else f"{type(err).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``specinv-invert``; returns the exit status (0 ok, 1 failures, 2 usage)."""
    parser = _parser()
    args = parser.parse_intermixed_args(argv)
    summary = Summary()
    try:
        with _sigterm_interrupts():
            if args.identify:
                return _identify(*args.identify)
            if not args.inputs:
                raise UsageError(
                    "expected mel files, folders or patterns to invert (or --identify)"
                )
            run(args, summary)
    except UsageError as err:
        parser.print_usage(sys.stderr)
        print(f"specinv-invert: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # SIGINT, or SIGTERM (turned into one): stop cleanly, report
        summary.interrupted = True
        print(summary.report(), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(summary.report(), file=sys.stdout if not summary.failed else sys.stderr)
    return EXIT_FAILED if summary.failed else EXIT_OK


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Make SIGTERM stop the run like Ctrl-C (a clean stop with a summary), where possible."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _identify(wave_path: str, mel_path: str) -> int:
    """``--identify``: print the preset that reproduces the mel; 0 if one fits, 1 if none."""
    from specinv_lightning.identify import identify

    try:
        wave, sample_rate = sf.read(wave_path, dtype="float64", always_2d=True)
    except Exception as err:  # missing, not audio, unsupported format
        raise UsageError(f"--identify {wave_path}: cannot read audio ({err})") from err
    try:
        mel = read_mel(Path(mel_path))
    except ValueError as err:
        raise UsageError(f"--identify {mel_path}: {err}") from err
    found = identify(torch.from_numpy(wave.mean(axis=1)), mel, sample_rate=sample_rate)
    print(f"{mel_path}: {found}")
    return 0 if found.matched else 1


if __name__ == "__main__":
    sys.exit(main())
