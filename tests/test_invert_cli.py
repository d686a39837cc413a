"""``specinv-invert``: good files written, bad files reported and skipped, no code execution."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from specinv_lightning import MelConfig, MelSpectrogram
from specinv_lightning.invert import load_mel, main

PRESET = "hifigan"
CFG = MelConfig.from_preset(PRESET)
FAST = ["--preset", PRESET, "--n-iter", "4", "--device", "cpu", "--quiet"]


class _Payload:
    """Pickles to a call of ``open(marker, "w")``: loading it unsafely would create the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def mels() -> torch.Tensor:
    """Three real mels (two with 40 frames, one with 30) of noisy tones."""
    t = torch.arange(CFG.num_samples(40)) / CFG.sample_rate
    waves = torch.stack([0.3 * torch.sin(2 * torch.pi * f * t) for f in (220.0, 440.0, 660.0)])
    waves = waves + 0.01 * torch.randn(waves.shape, generator=torch.Generator().manual_seed(0))
    return MelSpectrogram(CFG)(waves)


def _good_files(folder: Path, mels: torch.Tensor) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "a.npy", mels[0].double().numpy())  # (n_mels, T), float64
    torch.save(mels[1:2].clone(), folder / "b.pt")  # (1, n_mels, T)
    torch.save({"mel": mels[2, :, :30].clone()}, folder / "c.pt")  # dict, other frame count
    return [folder / "a.npy", folder / "b.pt", folder / "c.pt"]


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(path, dtype="float32")
    return data, sr


def test_good_files_written_and_readable(tmp_path: Path, mels: torch.Tensor) -> None:
    files = _good_files(tmp_path / "in", mels)
    out = tmp_path / "out"
    code = main([str(f) for f in files] + ["--out", str(out), "--batch-size", "4", *FAST])
    assert code == 0
    for stem, frames in (("a", 40), ("b", 40), ("c", 30)):
        data, sr = _read(out / f"{stem}.wav")
        assert sr == CFG.sample_rate
        assert data.ndim == 1 and len(data) == CFG.num_samples(frames)
        assert np.isfinite(data).all() and np.abs(data).max() > 1e-3
    # the inverted audio's mel is close to the input mel (a real inversion, not noise)
    wave = torch.from_numpy(_read(out / "a.wav")[0]).double()
    lin_in = MelSpectrogram(CFG).linear(wave).float()
    lin_ref = torch.exp(mels[0])
    rel = (lin_in - lin_ref).norm() / lin_ref.norm()
    assert rel < 0.5


def test_batched_equals_unbatched(tmp_path: Path, mels: torch.Tensor) -> None:
    files = _good_files(tmp_path / "in", mels)
    args = [str(f) for f in files[:2]]
    assert main([*args, "--out", str(tmp_path / "b1"), "--batch-size", "1", *FAST]) == 0
    assert main([*args, "--out", str(tmp_path / "b4"), "--batch-size", "4", *FAST]) == 0
    for stem in ("a", "b"):
        one, _ = _read(tmp_path / "b1" / f"{stem}.wav")
        four, _ = _read(tmp_path / "b4" / f"{stem}.wav")
        np.testing.assert_allclose(one, four, atol=2e-4)


def test_folder_and_glob_inputs(tmp_path: Path, mels: torch.Tensor) -> None:
    _good_files(tmp_path / "in", mels)
    nested = tmp_path / "deep" / "x" / "y"
    nested.mkdir(parents=True)
    np.save(nested / "d.npy", mels[0].numpy())
    (tmp_path / "in" / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    code = main(
        [str(tmp_path / "in"), str(tmp_path / "deep" / "**" / "*.npy"), "-o", str(out), *FAST]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "c.wav", "d.wav"]


def test_bad_files_reported_good_ones_written(
    tmp_path: Path, mels: torch.Tensor, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    _good_files(folder, mels)
    np.save(folder / "wrong_nmels.npy", np.zeros((64, 40), np.float32))
    nan = mels[0].numpy().copy()
    nan[3, 5] = np.nan
    np.save(folder / "has_nan.npy", nan)
    (folder / "corrupt.npy").write_bytes(b"\x93NUMPY garbage" * 7)
    (folder / "corrupt_zip.pt").write_bytes(b"PK\x03\x04 not really a zip" * 5)
    np.save(folder / "three_d.npy", np.zeros((2, CFG.n_mels, 40), np.float32))
    marker_pt = tmp_path / "PWNED_pt"
    marker_npy = tmp_path / "PWNED_npy"
    torch.save({"mel": _Payload(marker_pt)}, folder / "evil.pt")
    np.save(folder / "evil.npy", np.array([_Payload(marker_npy)], dtype=object), allow_pickle=True)
    out = tmp_path / "out"

    code = main([str(folder), "--out", str(out), *FAST])

    assert code == 1
    assert not marker_pt.exists() and not marker_npy.exists(), "loading a mel file executed code"
    assert sorted(p.name for p in out.iterdir()) == ["a.wav", "b.wav", "c.wav"]
    for name in ("a", "b", "c"):
        assert _read(out / f"{name}.wav")[1] == CFG.sample_rate
    err = capsys.readouterr().err
    failed = err.split("Failed:")[1]
    expected = {
        "wrong_nmels.npy": "n_mels=80",
        "has_nan.npy": "NaN",
        "corrupt.npy": "cannot load",
        "corrupt_zip.pt": "cannot load",
        "three_d.npy": "expected shape",
        "evil.pt": "refused to unpickle",
        "evil.npy": "cannot load",
    }
    for name, reason in expected.items():
        line = next((ln for ln in failed.splitlines() if f"{name}:" in ln), None)
        assert line is not None, f"{name} not reported:\n{err}"
        assert reason in line, line
    assert "3 written, 0 skipped, 7 failed" in err


def test_colliding_stems_reported(
    tmp_path: Path, mels: torch.Tensor, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "x.npy", mels[0].numpy())
    torch.save(mels[1].clone(), folder / "x.pt")
    assert main([str(folder), "-o", str(tmp_path / "out"), *FAST]) == 1
    err = capsys.readouterr().err
    assert "x.pt: output" in err and "already produced from" in err
    assert (tmp_path / "out" / "x.wav").is_file()


def test_existing_outputs_kept_unless_overwrite(
    tmp_path: Path, mels: torch.Tensor, capsys: pytest.CaptureFixture[str]
) -> None:
    files = _good_files(tmp_path / "in", mels)
    out = tmp_path / "out"
    out.mkdir()
    sf.write(out / "a.wav", np.zeros(100, np.float32), 8000)
    code = main([str(f) for f in files] + ["--out", str(out), *FAST])
    assert code == 0
    data, sr = _read(out / "a.wav")
    assert (sr, len(data)) == (8000, 100), "an existing output was overwritten"
    report = capsys.readouterr().out
    assert "2 written, 1 skipped, 0 failed" in report and "a.wav exists" in report

    code = main([str(files[0]), "--out", str(out), "--overwrite", *FAST])
    assert code == 0
    data, sr = _read(out / "a.wav")
    assert (sr, len(data)) == (CFG.sample_rate, CFG.num_samples(40))


def test_config_file_yaml_and_json(tmp_path: Path, mels: torch.Tensor) -> None:
    files = _good_files(tmp_path / "in", mels)
    (tmp_path / "cfg.json").write_text(json.dumps({"preset": "hifigan", "sample_rate": 16000}))
    (tmp_path / "cli.yaml").write_text("model:\n  mel: hifigan\n")
    common = ["--n-iter", "2", "--device", "cpu", "-q", str(files[0])]
    assert main([*common, "--config", str(tmp_path / "cfg.json"), "-o", str(tmp_path / "j")]) == 0
    assert _read(tmp_path / "j" / "a.wav")[1] == 16000
    pytest.importorskip("yaml")
    assert main([*common, "--config", str(tmp_path / "cli.yaml"), "-o", str(tmp_path / "y")]) == 0
    assert _read(tmp_path / "y" / "a.wav")[1] == CFG.sample_rate


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nothing*.npy"), *FAST]) == 2
    assert "no mel files" in capsys.readouterr().err
    np.save(tmp_path / "a.npy", np.zeros((80, 10), np.float32))
    assert main([str(tmp_path / "a.npy"), "--n-iter", "2", "-q"]) == 2  # no preset/config
    assert "exactly one of --preset" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"n_melz": 80}))
    assert main([str(tmp_path / "a.npy"), "--config", str(bad), "-q"]) == 2
    assert "n_melz" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(tmp_path / "a.npy"), "--preset", "nope"])


def test_load_mel_shapes_and_values(tmp_path: Path) -> None:
    cfg = MelConfig.from_preset("librosa")  # compression "none": values must be >= 0
    ok = np.abs(np.random.default_rng(0).standard_normal((1, cfg.n_mels, 12)))
    np.save(tmp_path / "ok.npy", ok)
    mel = load_mel(tmp_path / "ok.npy", cfg)
    assert mel.shape == (cfg.n_mels, 12) and mel.dtype == torch.float64
    np.save(tmp_path / "neg.npy", -ok)
    with pytest.raises(ValueError, match="negative"):
        load_mel(tmp_path / "neg.npy", cfg)
    np.save(tmp_path / "one.npy", ok[..., :1])
    with pytest.raises(ValueError, match=f"at least {cfg.min_frames} frames"):
        load_mel(tmp_path / "one.npy", cfg)
    np.save(tmp_path / "cplx.npy", ok.astype(np.complex64))
    with pytest.raises(ValueError, match="real"):
        load_mel(tmp_path / "cplx.npy", cfg)
    torch.save({"a": torch.zeros(2), "b": torch.zeros(2)}, tmp_path / "two.pt")
    with pytest.raises(ValueError, match="'mel' entry"):
        load_mel(tmp_path / "two.pt", cfg)


def test_console_script_and_module_entry_points(tmp_path: Path, mels: torch.Tensor) -> None:
    np.save(tmp_path / "a.npy", mels[0].numpy())
    cmd = [sys.executable, "-m", "specinv_lightning.invert", str(tmp_path / "a.npy"), *FAST]
    proc = subprocess.run([*cmd, "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "a.wav").is_file()
    np.save(tmp_path / "bad.npy", np.zeros((3, 4), np.float32))
    proc = subprocess.run(
        [*cmd, str(tmp_path / "bad.npy"), "-o", str(tmp_path / "o2")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "bad.npy" in proc.stderr
    assert (tmp_path / "o2" / "a.wav").is_file()
