"""specinv-invert on a bad day: full disks, signals, hostile files and configs, symlink loops, many
files. Each test reproduces one class of failure; nothing is lost and every file is accounted for."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from specinv_lightning import MelConfig, MelSpectrogram
from specinv_lightning import invert as cli
from specinv_lightning._io import atomic_write

CFG = MelConfig.from_preset("hifigan", sample_rate=16000, f_max=None)


def _mels(folder: Path, count: int, frames: int = 40, seed: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    paths = []
    for k in range(count):
        wave = 0.1 * torch.randn(1, CFG.num_samples(frames), generator=gen)
        path = folder / f"m{k:03d}.npy"
        np.save(path, MelSpectrogram(CFG)(wave)[0].numpy())
        paths.append(path)
    return paths


def _run(*args: str) -> int:
    return cli.main([*args, "--preset", "hifigan", "--n-iter", "2", "-q"])


def _full_disk_write(handle, data, samplerate, **kwargs) -> None:  # noqa: ANN001
    """soundfile.write on a full disk: part of the file goes out, then ENOSPC."""
    handle.write(b"RIFF\x00\x00")
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.fixture
def config_16k(tmp_path: Path) -> str:
    path = tmp_path / "cfg.json"
    path.write_text('{"preset": "hifigan", "sample_rate": 16000, "f_max": null}')
    return str(path)


def _run16(config: str, *args: str) -> int:
    return cli.main([*args, "--config", config, "--n-iter", "2", "-q"])


def test_full_disk_leaves_nothing_partial_and_keeps_the_old_file(
    tmp_path: Path, config_16k: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    (src,) = _mels(tmp_path / "in", 1)
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(cli.sf, "write", _full_disk_write)
        assert _run16(config_16k, str(src), "--out", str(out)) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert sorted(os.listdir(out)) == []  # no truncated wav, no temporary file
    assert _run16(config_16k, str(src), "--out", str(out)) == 0  # a re-run writes it
    good = (out / "m000.wav").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(cli.sf, "write", _full_disk_write)
        assert _run16(config_16k, str(src), "--out", str(out), "--overwrite") == 1
    assert (out / "m000.wav").read_bytes() == good  # --overwrite on a full disk: old file kept
    assert sorted(os.listdir(out)) == ["m000.wav"]


def test_concurrent_overwrites_never_mix(tmp_path: Path) -> None:
    target = tmp_path / "x.wav"
    contents = [bytes([k]) * 200_000 for k in (1, 2)]

    def writer(data: bytes) -> None:
        for _ in range(20):
            atomic_write(target, lambda handle: handle.write(data), overwrite=True)

    threads = [threading.Thread(target=writer, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in contents
    assert os.listdir(tmp_path) == ["x.wav"]
    with pytest.raises(FileExistsError):
        atomic_write(target, lambda handle: handle.write(b"new"), overwrite=False)
    assert target.read_bytes() in contents


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_run_stops_cleanly_with_a_summary(tmp_path: Path, config_16k: str, sig) -> None:
    _mels(tmp_path / "in", 24, frames=300)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "specinv_lightning.invert", str(tmp_path / "in"), "--out",
         str(out), "--config", config_16k, "--n-iter", "64", "--batch-size", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SPECINV_LIGHTNING_COMPILE": "0"},  # no first-call compilation
        # as started from a terminal: a shell's background job (CI under `cmd &`) inherits
        # SIGINT ignored, and Python then keeps ignoring it
        preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (out.exists() and any(out.glob("*.wav"))):
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "not processed (interrupted)" in err
    wavs = sorted(out.glob("*.wav"))
    assert 1 <= len(wavs) < 24
    for wav in wavs:  # every file under its final name is complete
        data, sr = sf.read(wav)
        assert sr == 16000 and len(data) == CFG.num_samples(300)
    assert not [p for p in out.iterdir() if p.suffix != ".wav"]  # no temporary files


def test_symlink_loop_ends_and_each_file_once(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _mels(root / "a", 2)
    _mels(root / "a" / "b", 1, seed=1)
    (root / "a" / "b" / "loop").symlink_to(root / "a")  # a -> b -> loop -> a ...
    (root / "self").symlink_to(root)
    files, problems = cli.collect_inputs([f"{root}/**/*.npy"])
    assert problems == []
    assert len(files) == 3 and len({f.resolve() for f in files}) == 3


def test_hostile_files_fail_alone(tmp_path: Path, config_16k: str, capsys) -> None:
    good = _mels(tmp_path / "in", 2)
    torch.save(torch.empty(CFG.n_mels, 40, device="meta"), tmp_path / "in" / "meta.pt")
    torch.save(torch.eye(CFG.n_mels, 40).to_sparse(), tmp_path / "in" / "sparse.pt")
    overflow = np.load(good[0]) + 1e4  # finite, but overflows when decompressed
    np.save(tmp_path / "in" / "m000_loud.npy", overflow)  # same frame count as the good ones
    long = np.zeros((CFG.n_mels, 61), np.float32) - 5.0
    np.save(tmp_path / "in" / "long.npy", long)
    out = tmp_path / "out"
    code = _run16(config_16k, str(tmp_path / "in"), "--out", str(out), "--max-frames", "60")
    err = capsys.readouterr().err
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["m000.wav", "m001.wav"]  # good ones written
    lines = {line.split(":")[0].strip(): line for line in err.splitlines() if ".pt:" in line
             or ".npy:" in line}  # fmt: skip
    assert "dense tensor" in lines[str(tmp_path / "in" / "meta.pt")]
    assert "dense tensor" in lines[str(tmp_path / "in" / "sparse.pt")]
    assert "overflow" in lines[str(tmp_path / "in" / "m000_loud.npy")]
    assert "--max-frames 60" in lines[str(tmp_path / "in" / "long.npy")]
    assert "Failed:" in err and "Traceback" not in err
    assert not any("m000.npy" in k or "m001.npy" in k for k in lines)  # good files not blamed


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("!!python/object/apply:os.system ['touch {marker}']", "ConstructorError"),
        ("preset: [hifigan", "ParserError"),
        ("{{preset: hifigan, n_fft: 68719476736}}", "cannot build the inverter"),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path: Path, text: str, match: str, capsys) -> None:
    (src,) = _mels(tmp_path / "in", 1)
    marker = tmp_path / "pwned"
    config = tmp_path / "cfg.yaml"
    config.write_text(text.format(marker=marker))
    code = cli.main([str(src), "--config", str(config), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and match in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("specinv-invert:")]) == 1
    assert not marker.exists()  # the python tag ran nothing


def test_memory_does_not_grow_with_the_number_of_files() -> None:
    held, peak = 0, 0

    def items():  # 500 mels of distinct lengths: no two can be batched together
        nonlocal held, peak
        for k in range(500):
            held += 1
            peak = max(peak, held)
            yield Path(f"{k}.npy"), Path(f"{k}.wav"), torch.zeros(1, k + 2)

    batches = 0
    for batch in cli._batches(items(), batch_size=8, max_pending=32):
        held -= len(batch)
        batches += 1
    assert batches == 500 and peak <= 33
