"""The dask adapters: neighbourhood operations one task a block, equal to the whole image."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from sen2core import lazy


def _image(shape: tuple[int, int] = (183, 157)) -> np.ndarray:
    return np.random.default_rng(7).random(shape).astype(np.float32)


def _maximum(block: np.ndarray, size: int) -> np.ndarray:
    # Exact whatever the extent of the block (no running sums to round differently).
    return ndimage.maximum_filter(block, size=size, mode="nearest")


@pytest.mark.parametrize("depth", [1, 6, 40, 75])
def test_halo_map_equals_the_whole_image_whatever_the_chunks(depth: int) -> None:
    """Thin last chunks (3 px), and depths beyond one chunk (75 px on 60 px chunks)."""
    img = _image()
    x = da.from_array(img, chunks=60)
    got = lazy.halo_map(_maximum, x, depth=depth, size=2 * depth + 1).compute()
    np.testing.assert_array_equal(got, _maximum(img, 2 * depth + 1))


def test_halo_map_is_one_task_a_block() -> None:
    """dask's map_overlap makes about ten tasks a block (slices, joins, trims) and rechunks thin chunks."""
    x = da.from_array(_image(), chunks=60)
    out = lazy.halo_map(_maximum, x, depth=6, size=13)
    own = len(out.dask) - len(x.dask)
    assert own == x.npartitions == 12
    ref = x.map_overlap(_maximum, depth=6, boundary="none", size=13)
    assert len(ref.dask) - len(x.dask) > 5 * x.npartitions


def test_halo_map_nearest_boundary_matches_dask_overlap() -> None:
    """Edge-repeating halos (the bilinear refinement of coarse grids), with the output chunks given."""
    img = _image((40, 33))
    x = da.from_array(img, chunks=(12, 10))
    fine = tuple(tuple(3 * c for c in dim) for dim in x.chunks)

    def grow(block: np.ndarray, chunk_shape: tuple[int, int]) -> np.ndarray:
        return np.kron(block[1:-1, 1:-1] + 0.25 * block[:-2, 1:-1] + 0.5 * block[1:-1, 2:], np.ones((3, 3)))[
            : chunk_shape[0], : chunk_shape[1]
        ].astype(np.float32)

    got = lazy.halo_map(grow, x, depth=1, chunks=fine, boundary="nearest", trim=False)
    haloed = da.overlap.overlap(x, depth={0: 1, 1: 1}, boundary="nearest")
    ref = da.map_blocks(
        lambda b, block_info=None: grow(b, tuple(block_info[None]["chunk-shape"])), haloed, chunks=fine,
        dtype=np.float32,
    )  # fmt: skip
    np.testing.assert_array_equal(got.compute(), ref.compute())


def test_halo_map_takes_stacks_and_delayed_figures() -> None:
    """A (layers, rows, cols) stack with one chunk on the layers; a scene-wide figure computed first."""
    img = _image((50, 50))
    stack = da.from_array(np.stack([img, 2 * img]), chunks=(2, 20, 20))
    scale = dask.delayed(lambda: 3.0)()

    def summed(block: np.ndarray, factor: float) -> np.ndarray:
        return (block.sum(axis=0) * factor).astype(np.float32)

    got = lazy.halo_map(summed, stack, depth=2, chunks=((20, 20, 10), (20, 20, 10)), factor=scale).compute()
    np.testing.assert_allclose(got, 9.0 * img, rtol=1e-6)
    with pytest.raises(TypeError, match="positional"):
        lazy.halo_map(summed, stack, depth=2, factor=da.ones(3))


def test_halo_map_refuses_mismatched_chunks() -> None:
    a = da.zeros((30, 30), chunks=10)
    b = da.zeros((30, 30), chunks=15)
    with pytest.raises(ValueError, match="same row/column chunks"):
        lazy.halo_map(lambda x, y: x, a, b, depth=1)


def test_halo_map_sends_large_blocks_as_strips() -> None:
    """Blocks over HALO_WHOLE_BLOCK_BYTES reach their neighbours as the strips the halos need
    (a task each), so whole blocks are not held for every neighbour; the result is the same."""
    img = np.random.default_rng(3).random((1300, 1250)).astype(np.float32)
    x = da.from_array(img, chunks=600)  # 600 x 600 float32: 1.4 MB a block
    assert 600 * 600 * 4 > lazy.HALO_WHOLE_BLOCK_BYTES
    out = lazy.halo_map(_maximum, x, depth=6, size=13)
    np.testing.assert_array_equal(out.compute(), _maximum(img, 13))
    strips = [k for k in out.dask if isinstance(k, tuple) and "-edge" in str(k[0])]
    # 3 x 3 blocks: a strip from each neighbour of each block (the centre 8, edges 5, corners 3: 40).
    assert len(strips) == 40
