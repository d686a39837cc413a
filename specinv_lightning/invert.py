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
            f"expected shape (n_mels={config.n_mels}, frames) or (1, n_mels, frames), got"
            f" {tuple(data.shape)}"
        )
    if mel.shape[0] != config.n_mels:
        raise ValueError(
            f"expected n_mels={config.n_mels} (shape (n_mels, frames)), got shape"
            f" {tuple(data.shape)} - wrong preset/config?"
        )
    if mel.shape[1] < 2:
        raise ValueError(f"expected at least 2 frames, got {mel.shape[1]}")
    if not bool(torch.isfinite(mel).all()):
        raise ValueError(f"contains {int((~torch.isfinite(mel)).sum())} NaN/Inf value(s)")
    if config.compression == "none" and bool((mel < 0).any()):
        raise ValueError("contains negative values, but the config's compression is 'none'")
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


def _initial_phase(config: MelConfig, frames: int, dtype: torch.dtype) -> Tensor:
    """Uniform random phase ``(n_freqs, frames)`` from a fixed seed (CPU generator).

    Drawn in float32 and then cast, so float32 and float64 inputs start from the same phase.
    """
    generator = torch.Generator().manual_seed(0)
    phase = torch.rand(config.n_freqs, frames, generator=generator, dtype=torch.float32)
    return (phase * (2 * torch.pi)).to(dtype)


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
        "inputs", nargs="+", help="mel files, folders of them, or glob patterns ('**' recurses)"
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
        "--no-mel-consistent",
        action="store_true",
        help="plain (fast) Griffin-Lim instead of the mel-consistent variant",
    )
    parser.add_argument(
        "--subtype", default="PCM_16", help="soundfile wav subtype (PCM_16, PCM_24, FLOAT)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress output")
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


def run(args: argparse.Namespace) -> Summary:
    """Invert every input (see :func:`main`); returns what happened to each file.

    Raises:
        UsageError: Bad options or no inputs found.
    """
    if args.n_iter < 0:
        raise UsageError(f"--n-iter: expected an integer >= 0, got {args.n_iter}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size: expected an integer >= 1, got {args.batch_size}")
    if args.subtype not in sf.available_subtypes("WAV"):
        raise UsageError(
            f"--subtype {args.subtype!r}: expected one of {sorted(sf.available_subtypes('WAV'))}"
        )
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
    summary = Summary(failed=list(problems))
    inverter = MelInverter(config, n_iter=args.n_iter, mel_consistent=not args.no_mel_consistent)
    inverter = inverter.to(device)
    bar = _progress(len(files), enabled=not args.quiet)

    def say(message: str) -> None:
        if args.quiet:
            return
        if bar is not None:
            bar.write(message, file=sys.stderr)
        else:
            print(message, file=sys.stderr, flush=True)

    def advance(n: int = 1) -> None:
        if bar is not None:
            bar.update(n)

    claimed: dict[Path, Path] = {}

    def loaded() -> Iterator[tuple[Path, Path, Tensor]]:
        for path in files:
            target = out_dir / f"{path.stem}.wav"
            if target.exists() and not args.overwrite and target not in claimed:
                summary.skipped.append((path, f"{target} exists (use --overwrite)"))
                advance()
                continue
            try:
                mel = load_mel(path, config)
            except ValueError as err:
                summary.failed.append((path, str(err)))
                say(f"FAILED {path}: {err}")
                advance()
                continue
            if target in claimed:  # two inputs with the same stem (e.g. x.npy and x.pt)
                summary.failed.append(
                    (path, f"output {target} is already produced from {claimed[target]}")
                )
                advance()
                continue
            claimed[target] = path
            yield path, target, mel

    try:
        for batch in _batches(loaded(), args.batch_size):
            dtype = torch.float64 if any(m.dtype == torch.float64 for *_, m in batch) else None
            mels = torch.stack([mel.to(dtype or mel.dtype) for _, _, mel in batch]).to(device)
            # the same seeded random initial phase for every file, so each output depends only
            # on its own mel (not on batching or file order)
            phase = _initial_phase(config, mels.shape[-1], mels.dtype).to(device)
            try:
                with torch.inference_mode():
                    waves = inverter(mels, init=phase.expand(len(batch), -1, -1))
                    waves = waves.float().cpu().numpy()
            except (RuntimeError, ValueError) as err:
                for path, _, _ in batch:
                    summary.failed.append((path, f"inversion failed: {err}"))
                advance(len(batch))
                continue
            for (path, target, _), wave in zip(batch, waves, strict=True):
                try:
                    _write(target, wave, config.sample_rate, args.subtype, args.overwrite)
                except FileExistsError:
                    summary.skipped.append((path, f"{target} exists (use --overwrite)"))
                except (OSError, RuntimeError) as err:
                    summary.failed.append((path, f"cannot write {target}: {err}"))
                else:
                    summary.written.append(target)
                    if bar is None:
                        say(f"wrote {target}")
                advance()
    finally:
        if bar is not None:
            bar.close()
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``specinv-invert``; returns the exit status (0 ok, 1 failures, 2 usage)."""
    parser = _parser()
    args = parser.parse_intermixed_args(argv)
    try:
        summary = run(args)
    except UsageError as err:
        parser.print_usage(sys.stderr)
        print(f"specinv-invert: error: {err}", file=sys.stderr)
        return 2
    print(summary.report(), file=sys.stdout if not summary.failed else sys.stderr)
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
