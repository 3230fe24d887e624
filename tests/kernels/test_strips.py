"""Per-pixel kernels evaluated by row strips give the chunk-wide result bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from sen2core.kernels.adjacency import bilinear_refine
from sen2core.kernels.encode import encode_boa, encode_scaled, tci
from sen2core.kernels.strips import by_strips, row_strips


@pytest.mark.parametrize(("rows", "cols", "pixels"), [(1830, 1830, 1 << 16), (7, 5, 10), (3, 100000, 16), (0, 4, 8)])
def test_row_strips_cover_every_row_once(rows: int, cols: int, pixels: int) -> None:
    strips = list(row_strips(rows, cols, pixels))
    covered = np.concatenate([np.arange(rows)[s] for s in strips]) if strips else np.empty(0)
    np.testing.assert_array_equal(covered, np.arange(rows))
    assert all(s.stop - s.start >= 1 for s in strips)
    assert all((s.stop - s.start) * cols <= max(pixels, cols) for s in strips)


def test_by_strips_matches_the_whole_and_passes_other_shapes_through() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.random((300, 700)), rng.random((300, 700))
    out = by_strips(lambda x, y: np.sqrt(x * y) + 1, np.float32, a, b)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, (np.sqrt(a * b) + 1).astype(np.float32))
    np.testing.assert_array_equal(by_strips(lambda x: x * 2, np.float64, a[0]), a[0] * 2)  # 1-D: whole


def _encode_boa_whole(rho: np.ndarray) -> np.ndarray:
    r = np.asarray(rho, dtype=np.float64)
    ok = np.isfinite(r)
    dn = np.floor(np.where(ok, r, 0.0) * 10000.0 + 1000 + 0.5)
    return np.where(ok, np.clip(dn, 1, 32767), 0).astype(np.uint16)


def test_encoders_by_strips_equal_the_chunk_wide_formulas() -> None:
    rng = np.random.default_rng(5)
    rho = rng.uniform(-0.3, 3.5, (1000, 1000)).astype(np.float32)
    rho[rng.random(rho.shape) < 0.1] = np.nan
    np.testing.assert_array_equal(encode_boa(rho), _encode_boa_whole(rho))
    aot = rng.uniform(0, 70, (999, 1001))
    aot[::7] = np.nan
    expected = np.where(np.isfinite(aot), np.clip(np.floor(np.nan_to_num(aot) * 1000.0 + 0.5), 0, 65535), 0)
    np.testing.assert_array_equal(encode_scaled(aot, 1000.0), expected.astype(np.uint16))
    dn = rng.integers(0, 5000, (3, 900, 900), dtype=np.uint16)
    v = np.floor(np.clip(dn.astype(np.float64) - 1000, 0, 2500) * 254.0 / 2500.0 + 1.5)
    np.testing.assert_array_equal(tci(*dn), np.where(dn == 0, 0, v).astype(np.uint8))


def test_bilinear_refine_by_strips_equals_the_four_corner_formula() -> None:
    rng = np.random.default_rng(9)
    coarse = rng.random((919, 919))
    fine = bilinear_refine(coarse, 2, (1830, 1830))
    u = np.clip((np.arange(1830) + 0.5) / 2 - 0.5 + 1, 0.0, 918.0)
    i0 = np.minimum(np.floor(u).astype(np.intp), 917)
    f = u - i0
    top = coarse[i0][:, i0] * (1 - f) + coarse[i0][:, i0 + 1] * f
    bottom = coarse[i0 + 1][:, i0] * (1 - f) + coarse[i0 + 1][:, i0 + 1] * f
    np.testing.assert_array_equal(fine, (top * (1 - f)[:, None] + bottom * f[:, None]).astype(np.float32))
