"""compress / decompress: formulas, floors, multipliers and exact round trips."""

from __future__ import annotations

import math

import pytest
import torch

from specinv_lightning import MelConfig
from specinv_lightning.functional import compress, decompress


def _mel(dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 16, 20, generator=g, dtype=dtype) * 10.0 + 1e-3


@pytest.mark.parametrize(
    ("compression", "power", "expected"),
    [
        ("log", 1.0, lambda m: torch.log(m)),
        ("log10", 1.0, lambda m: torch.log10(m)),
        ("db", 2.0, lambda m: 10.0 * torch.log10(m)),
        ("db", 1.0, lambda m: 20.0 * torch.log10(m)),
    ],
)
def test_compress_formula(compression: str, power: float, expected) -> None:
    cfg = MelConfig(compression=compression, power=power, log_floor=1e-10)
    mel = _mel()
    torch.testing.assert_close(compress(mel, cfg), expected(mel), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("compression", ["log", "log10", "db"])
@pytest.mark.parametrize("power", [1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_round_trip(compression: str, power: float, dtype: torch.dtype) -> None:
    cfg = MelConfig(compression=compression, power=power, log_floor=1e-5)
    mel = _mel(dtype)
    back = decompress(compress(mel, cfg), cfg)
    assert back.dtype == dtype
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(back, mel, rtol=rtol, atol=0)
    # and the other way round, compressed values above the floor
    comp = compress(mel, cfg)
    torch.testing.assert_close(compress(decompress(comp, cfg), cfg), comp, rtol=rtol, atol=rtol)


@pytest.mark.parametrize(
    ("compression", "floor", "multiplier", "floor_value"),
    [
        ("log", 1e-5, None, math.log(1e-5)),  # HiFi-GAN: log(1e-5) = -11.5129
        ("log", 1e-7, None, math.log(1e-7)),  # Vocos
        ("log10", 1e-5, None, -5.0),
        ("db", 1e-10, None, -100.0),  # torchaudio AmplitudeToDB(stype="power")
        ("log", 1e-5, 2.0, 2.0 * math.log(1e-5)),
    ],
)
def test_floor(compression: str, floor: float, multiplier, floor_value: float) -> None:
    cfg = MelConfig(compression=compression, power=2.0, log_floor=floor, log_multiplier=multiplier)
    mel = torch.tensor([0.0, floor / 10, floor, 1.0], dtype=torch.float64)
    out = compress(mel, cfg)
    torch.testing.assert_close(out[:3], torch.full((3,), floor_value, dtype=torch.float64))
    assert float(out[3]) == pytest.approx(0.0, abs=1e-12)
    # values at the floor decompress to the floor (the information below is lost)
    torch.testing.assert_close(decompress(out, cfg), torch.tensor([floor] * 3 + [1.0],
                               dtype=torch.float64))  # fmt: skip
    assert torch.isfinite(out).all()


def test_db_multiplier_defaults() -> None:
    power = MelConfig(compression="db", power=2.0)
    magnitude = MelConfig(compression="db", power=1.0)
    assert (power.log_multiplier, magnitude.log_multiplier) == (10.0, 20.0)
    x = torch.tensor([100.0], dtype=torch.float64)
    assert float(compress(x, power)) == pytest.approx(20.0)
    assert float(compress(x, magnitude)) == pytest.approx(40.0)
    # a magnitude mel and its square give the same dB values
    torch.testing.assert_close(compress(x.sqrt(), magnitude), compress(x, power))
    torch.testing.assert_close(decompress(torch.tensor([40.0], dtype=torch.float64), magnitude), x)


def test_none_is_identity_and_gradients_flow() -> None:
    cfg = MelConfig(compression="none")
    mel = _mel()
    assert compress(mel, cfg) is mel and decompress(mel, cfg) is mel
    cfg = MelConfig(compression="log10", log_floor=1e-5)
    comp = (torch.randn(4, 8, dtype=torch.float64) - 2).requires_grad_(True)
    lin = decompress(comp, cfg)
    lin.sum().backward()
    torch.testing.assert_close(comp.grad, lin.detach() * math.log(10.0))


def test_check_lengths_one_rule() -> None:
    from specinv_lightning.functional._checks import check_lengths

    assert check_lengths([3, 5.0], 2).tolist() == [3, 5]
    assert check_lengths(torch.tensor([[7]]), 1).dtype == torch.long
    for bad, match in (
        ([1, 2, 3], "expected 2 integer lengths"),
        ([1.5, 2], "expected 2 integer lengths"),
        ([0, 2], "expected lengths >= 1"),
        (["a", "b"], "expected 2 integer lengths"),
    ):
        with pytest.raises(ValueError, match=match):
            check_lengths(bad, 2)
