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
import glob
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from specinv_lightning.config import PRESETS, MelConfig
from specinv_lightning.functional._checks import check_mel
from specinv_lightning.functional.initial import INITS
from specinv_lightning.inverse import MelInverter

__all__ = ["MEL_EXTENSIONS", "Summary", "collect_inputs", "load_config", "load_mel", "main"]

MEL_EXTENSIONS = (".npy", ".pt")


class UsageError(Exception):
    """A problem with the command line (exit status 2)."""


@dataclass
class Summary:
    """What happened to every input file."""

    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def report(self) -> str:
        lines = [
            f"specinv-invert: {len(self.written)} written, {len(self.skipped)} skipped,"
            f" {len(self.failed)} failed"
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
    except (OSError, ValueError) as err:
        source = f"--preset {preset}" if preset is not None else f"--config {config_path}"
        raise UsageError(f"{source}: {err}") from err


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
            matches = sorted(
                Path(m)
                for m in glob.glob(os.path.expanduser(pattern), recursive=True)
                if Path(m).is_file() and Path(m).suffix.lower() in MEL_EXTENSIONS
            )
            if not matches:
                problems.append((path, "no such file, folder or matching mel files"))
            for p in matches:
                add(p)
    return files, problems


def load_mel(path: Path, config: MelConfig) -> Tensor:
    """Load one mel file as a float tensor ``(n_mels, frames)``, without executing any code.

    Raises:
        ValueError: Unreadable/corrupt file, pickled objects, wrong shape or ``n_mels``, too few
            frames, NaN/Inf, or negative values for an uncompressed mel.
    """
    return check_mel(read_mel(path), config, "mel")


def read_mel(path: Path) -> Tensor:
    """A float ``(bins, frames)`` tensor from a ``.npy``/``.pt`` file (no code is executed).

    Raises:
        ValueError: Unreadable/corrupt file, pickled objects, not a real 2-D array.
    """
    suffix = path.suffix.lower()
    if suffix not in MEL_EXTENSIONS:
        raise ValueError(f"unsupported extension {suffix!r}; expected {MEL_EXTENSIONS}")
    try:
        if suffix == ".npy":
            data: Any = np.load(path, allow_pickle=False)
        else:
            data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt zip, UnpicklingError (rejected globals), EOF, ...
        raise ValueError(f"cannot load ({_describe_load_error(err)})") from err
    if isinstance(data, dict):
        tensors = {k: v for k, v in data.items() if isinstance(v, (Tensor, np.ndarray))}
        if "mel" in tensors:
            data = tensors["mel"]
        elif len(tensors) == 1:
            data = next(iter(tensors.values()))
        else:
            raise ValueError(
                f"holds a dict with keys {sorted(map(str, data))}; expected a tensor or a dict"
                " with a 'mel' entry"
            )
    if isinstance(data, np.ndarray):
        if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
            raise ValueError(f"expected a real numeric array, got dtype {data.dtype}")
        data = torch.from_numpy(np.ascontiguousarray(data))
    if not isinstance(data, Tensor):
        raise ValueError(f"expected an array or tensor, got {type(data).__name__}")
    if data.is_complex() or data.dtype == torch.bool:
        raise ValueError(f"expected a real tensor, got dtype {data.dtype}")
    mel = data.detach().to(torch.float64 if data.dtype == torch.float64 else torch.float32)
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.dim() != 2:
        raise ValueError(
            f"expected shape (n_mels, frames) or (1, n_mels, frames), got {tuple(data.shape)}"
        )
    return mel


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
    peak = float(np.abs(wave).max()) if wave.size else 0.0
    if subtype.startswith("PCM") and peak > 1.0:
        wave = wave * (0.99 / peak)  # avoid clipping in integer formats
    mode = "wb" if overwrite else "xb"  # "x": never replace a file created meanwhile
    with open(path, mode) as handle:
        try:
            sf.write(handle, wave, sample_rate, subtype=subtype, format="WAV")
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)  # no half-written output left behind
            raise


def _batches(
    items: Iterable[tuple[Path, Path, Tensor]], batch_size: int
) -> Iterator[list[tuple[Path, Path, Tensor]]]:
    """Group loaded mels with equal frame counts into batches of at most ``batch_size``."""
    pending: dict[int, list[tuple[Path, Path, Tensor]]] = {}
    for item in items:
        group = pending.setdefault(item[2].shape[-1], [])
        group.append(item)
        if len(group) >= batch_size:
            yield pending.pop(item[2].shape[-1])
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
        "--init",
        choices=INITS,
        default="pghi",
        help="initial phase: 'pghi' (from the magnitude, default), 'random' (seeded) or 'zeros'",
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
    if args.subtype not in sf.available_subtypes("WAV"):
        raise UsageError(
            f"--subtype {args.subtype!r}: expected one of {sorted(sf.available_subtypes('WAV'))}"
        )


def run(args: argparse.Namespace) -> Summary:
    """Invert every input (see :func:`main`); returns what happened to each file.

    Raises:
        UsageError: Bad options or no inputs found.
    """
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
    inverter = MelInverter(
        config, n_iter=args.n_iter, mel_consistent=not args.no_mel_consistent, init=args.init
    )
    runner = _Runner(args, config, inverter.to(device), out_dir, Summary(failed=list(problems)))
    try:
        for batch in _batches(runner.loaded(files), args.batch_size):
            runner.invert_and_write(batch, device)
    finally:
        runner.close()
    return runner.summary


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
                mel = load_mel(path, self.config)
            except ValueError as err:
                self.summary.failed.append((path, str(err)))
                self.say(f"FAILED {path}: {err}")
                self.advance()
                continue
            if target in self.claimed:  # two inputs with the same stem (e.g. x.npy and x.pt)
                self.summary.failed.append(
                    (path, f"output {target} is already produced from {self.claimed[target]}")
                )
                self.advance()
                continue
            self.claimed[target] = path
            yield path, target, mel

    def invert_and_write(
        self, batch: list[tuple[Path, Path, Tensor]], device: torch.device
    ) -> None:
        """Invert mels of equal frame counts together and write each wav."""
        dtype = torch.float64 if any(m.dtype == torch.float64 for *_, m in batch) else None
        mels = torch.stack([mel.to(dtype or mel.dtype) for _, _, mel in batch]).to(device)
        try:
            # every init is per item (pghi) or shared by all items (seeded random, zeros): each
            # output depends only on its own mel (not on batching or file order)
            with torch.inference_mode():
                waves = self.inverter(mels).float().cpu().numpy()
        except (RuntimeError, ValueError) as err:
            for path, _, _ in batch:
                self.summary.failed.append((path, f"inversion failed: {err}"))
            self.advance(len(batch))
            return
        for (path, target, _), wave in zip(batch, waves, strict=True):
            self.write(path, target, wave)

    def write(self, path: Path, target: Path, wave: np.ndarray) -> None:
        args = self.args
        try:
            _write(target, wave, self.config.sample_rate, args.subtype, args.overwrite)
        except FileExistsError:
            self.summary.skipped.append((path, f"{target} exists (use --overwrite)"))
        except (OSError, RuntimeError) as err:
            self.summary.failed.append((path, f"cannot write {target}: {err}"))
        else:
            self.summary.written.append(target)
            if self.bar is None:
                self.say(f"wrote {target}")
        self.advance()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``specinv-invert``; returns the exit status (0 ok, 1 failures, 2 usage)."""
    parser = _parser()
    args = parser.parse_intermixed_args(argv)
    try:
        if args.identify:
            return _identify(*args.identify)
        if not args.inputs:
            raise UsageError("expected mel files, folders or patterns to invert (or --identify)")
        summary = run(args)
    except UsageError as err:
        parser.print_usage(sys.stderr)
        print(f"specinv-invert: error: {err}", file=sys.stderr)
        return 2
    print(summary.report(), file=sys.stdout if not summary.failed else sys.stderr)
    return 1 if summary.failed else 0


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
