"""The chunked scene classification equals the whole-image kernels, and stays lazy."""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from sen2core.config import SceneClassificationConfig
from sen2core.errors import ConfigurationError, InputProductError
from sen2core.kernels import morphology, scene_class
from sen2core.scl import AuxiliaryMaps, SceneClassification, classify

# Typical TOA spectra (B02 B03 B04 B05 B8A B10 B11 B12), see test_scene_class.py.
SPECTRA = np.array(
    [
        (0.07, 0.09, 0.05, 0.12, 0.35, 0.001, 0.18, 0.08),  # vegetation
        (0.09, 0.07, 0.04, 0.03, 0.015, 0.0005, 0.005, 0.003),  # water
        (0.22, 0.28, 0.35, 0.38, 0.42, 0.002, 0.55, 0.45),  # sand
        (0.78, 0.76, 0.74, 0.72, 0.66, 0.002, 0.05, 0.04),  # snow
        (0.20, 0.20, 0.19, 0.20, 0.22, 0.0, 0.19, 0.17),  # concrete
    ],
    dtype=np.float32,
)
CLOUD = np.array((0.55, 0.53, 0.52, 0.52, 0.50, 0.03, 0.35, 0.22), dtype=np.float32)
SHADOW_FACTOR = np.array((0.8, 0.55, 0.5, 0.35, 0.15, 1.0, 0.1, 0.1), dtype=np.float32)


def make_scene(n: int = 150, seed: int = 3) -> dict[str, Any]:
    """A random but physical scene: land cover patches, clouds with soft edges, their
    shadows cast by a 1.5 km cloud deck, a DEM, aux maps, per-pixel angles."""
    rng = np.random.default_rng(seed)
    patches = ndimage.zoom(rng.integers(0, 5, size=(8, 8)), n / 8, order=0)[:n, :n]
    surface = SPECTRA[patches].transpose(2, 0, 1)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n)), 6)
    opacity = np.clip((field - 0.02) / 0.06, 0, 1).astype(np.float32)
    sz = np.full((n, n), 55.0) + np.linspace(-1, 1, n)[None, :]
    sa = np.full((n, n), 160.0) + np.linspace(0, 2, n)[:, None]
    drow, dcol = scene_class.shadow_displacement_field(sz, sa, None, None, SceneClassificationConfig())
    dr, dc = int(round(drow.mean() * 1500 / 20)), int(round(dcol.mean() * 1500 / 20))
    cast = np.roll(np.roll(opacity, dr, axis=0), dc, axis=1)
    lit = 1.0 - cast[None] * (1.0 - SHADOW_FACTOR[:, None, None])
    toa = (surface * lit) * (1 - opacity[None]) + CLOUD[:, None, None] * opacity[None]
    toa *= 1.0 + 0.01 * rng.standard_normal(toa.shape)
    bands = {b: toa[i].astype(np.float32) for i, b in enumerate(scene_class.REQUIRED_BANDS)}
    bands["B09"] = (0.3 * bands["B8A"]).astype(np.float32)
    for b in bands.values():
        b[:, :4] = np.nan  # swath edge
    bands["B04"][10, 10] = 6.4535  # saturated
    vz = np.tile(np.linspace(2.0, 9.0, n), (n, 1))
    va = np.where(np.arange(n)[None, :] < n // 2, 100.0, 285.0) * np.ones((n, 1))  # detector jump
    dem = 300.0 + 800.0 * ndimage.gaussian_filter(rng.random((n, n)), 10)
    quality = np.zeros((n, n), dtype=bool)
    quality[20, 30:33] = True
    water_bodies = np.where(patches == 1, 2, 1).astype(np.uint8)
    land_cover = np.where(patches == 1, 210, np.where(patches == 4, 190, 200)).astype(np.uint16)
    snow_condition = np.where(patches == 1, 254, 5).astype(np.uint8)
    return {
        "bands": bands,
        "sz": sz,
        "sa": sa,
        "vz": vz,
        "va": va,
        "dem": dem,
        "quality": quality,
        "water_bodies": water_bodies,
        "land_cover": land_cover,
        "snow_condition": snow_condition,
    }


CONFIG = SceneClassificationConfig(cloud_buffer_m=60.0, median_filter=3, r9_max_blob_m=400.0)


def lazy(
    s: dict[str, Any], chunks: int, config: SceneClassificationConfig, *, full: bool = True, private_bands: bool = False
) -> SceneClassification:
    def d(a: np.ndarray) -> da.Array:
        return da.from_array(a, chunks=chunks)

    aux = (
        AuxiliaryMaps(
            water_bodies=d(s["water_bodies"]), land_cover=d(s["land_cover"]), snow_condition=d(s["snow_condition"])
        )
        if full
        else None
    )
    return classify(
        {k: d(v) for k, v in s["bands"].items()},
        d(s["sz"]),
        d(s["sa"]),
        d(s["vz"]),
        d(s["va"]),
        20.0,
        config,
        dem=d(s["dem"]) if full else None,
        quality_mask=d(s["quality"]) if full else None,
        aux=aux,
        private_bands=private_bands,
    )


def reference(
    s: dict[str, Any], config: SceneClassificationConfig, *, full: bool = True
) -> scene_class.SceneClassificationArrays:
    extra: dict[str, Any] = {}
    if full:
        extra = {
            "dem": s["dem"],
            "quality_mask": s["quality"],
            "water_bodies": s["water_bodies"],
            "land_cover": s["land_cover"],
            "snow_condition": s["snow_condition"],
        }
    return scene_class.scene_classification(s["bands"], s["sz"], s["sa"], s["vz"], s["va"], 20.0, config, **extra)


@pytest.fixture(scope="module")
def scene() -> dict[str, Any]:
    return make_scene()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("chunks", "full", "private_bands"), [(48, True, False), (33, False, False), (48, True, True), (33, False, True)]
)
def test_chunked_equals_whole_image(scene: dict[str, Any], chunks: int, full: bool, private_bands: bool) -> None:
    ref = reference(scene, CONFIG, full=full)
    result = lazy(scene, chunks, CONFIG, full=full, private_bands=private_bands)
    with dask.config.set(scheduler="synchronous"):
        scl, cld, snw, prob, buf, scl60, cld60, pct = dask.compute(
            result.scl,
            result.cloud_probability,
            result.snow_probability,
            result.calibrated_cloud_probability,
            result.cloud_buffer,
            result.scl_60m(),
            result.cloud_probability_60m(),
            result.percentages(),
        )
    classes = np.bincount(ref.scl.ravel(), minlength=12)
    # The scene exercises shadows, clouds, water, snow, bare land, the buffer and no data.
    assert all(classes[c] > 0 for c in (0, 3, 5, 6, 8, 9, 11)), classes
    assert buf.any()
    np.testing.assert_array_equal(scl, ref.scl)
    np.testing.assert_array_equal(cld, ref.cloud_probability)
    np.testing.assert_array_equal(snw, ref.snow_probability)
    np.testing.assert_array_equal(buf, ref.buffered)
    np.testing.assert_allclose(prob, ref.calibrated_cloud_probability, rtol=0, atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(scl60, morphology.downsample_classes(ref.scl))
    assert cld60.shape == (50, 50) and cld60.dtype == np.uint8
    expected = scene_class.class_percentages(
        scene_class.class_counts(ref.scl, scene["water_bodies"] if full else None, ref.buffered)
    )
    for name, value in expected.items():
        assert pct[name] == pytest.approx(value), name
    assert pct["CLOUD_BUFFER_M"] == 60.0


def test_graph_builds_without_computing(scene: dict[str, Any]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the graph was computed while it was being built")

    with dask.config.set(scheduler=refuse):
        result = lazy(scene, 45, CONFIG)
        products = [
            result.scl,
            result.cloud_probability,
            result.snow_probability,
            result.calibrated_cloud_probability,
            result.cloud_buffer,
            result.scl_60m(),
        ]
        pct = result.percentages()
    assert result.scl.chunks == ((45, 45, 45, 15), (45, 45, 45, 15))
    assert result.scl.dtype == np.uint8 and result.calibrated_cloud_probability.dtype == np.float32
    assert all(p.npartitions == 16 for p in products[:5])
    assert len(pct.__dask_graph__()) > 0


@pytest.mark.slow
def test_outputs_come_back_on_the_callers_chunks(scene: dict[str, Any]) -> None:
    # 50-px chunks are not multiples of 15 (60 m shadow grid, 300 m matching grid,
    # 60 m products): the classification runs on aligned chunks internally, and hands its
    # layers back on the caller's chunks, which callers pair block by block with their inputs.
    for cfg in (SceneClassificationConfig(), SceneClassificationConfig.sen2cor()):
        result = lazy(scene, 50, cfg, full=False)
        for layer in (result.scl, result.cloud_probability, result.calibrated_cloud_probability, result.cloud_buffer):
            assert layer.chunks[0] == (50, 50, 50)
            assert layer.blocks[1, 1].compute().shape == (50, 50)
        assert result.scl_60m().shape == (50, 50)
        assert result.scl_60m().compute().shape == (50, 50)


def test_input_errors(scene: dict[str, Any]) -> None:
    bands = {k: da.from_array(v, chunks=50) for k, v in scene["bands"].items()}
    sz = da.from_array(scene["sz"], chunks=50)
    with pytest.raises(InputProductError, match="B12"):
        classify({k: v for k, v in bands.items() if k != "B12"}, sz, sz, None, None, 20.0)
    with pytest.raises(InputProductError, match="sun_zenith"):
        classify(bands, sz[:-1], sz, None, None, 20.0)
    with pytest.raises(ValueError, match="20 m"):
        classify(bands, sz, sz, None, None, 60.0).scl_60m()


@pytest.mark.slow
def test_sun_zenith_bound_shortens_the_overlap(scene: dict[str, Any]) -> None:
    config = SceneClassificationConfig(thin_cloud_fix=False)
    ref = reference(scene, config, full=False)
    d = {k: da.from_array(v, chunks=48) for k, v in scene["bands"].items()}
    sz, sa = da.from_array(scene["sz"], chunks=48), da.from_array(scene["sa"], chunks=48)
    bounded = classify(d, sz, sa, None, None, 20.0, config, max_sun_zenith_deg=57.0)
    unbounded = classify(d, sz, sa, None, None, 20.0, config)
    # A high sun: shadows are shorter, so is the overlap (60 m pixels of the shadow grid).
    assert scene_class.shadow_reach(60.0, config, 57.0) < 0.65 * scene_class.shadow_reach(60.0, config)
    assert len(bounded.scl.__dask_graph__()) == len(unbounded.scl.__dask_graph__())  # same stages
    no_view = scene_class.scene_classification(scene["bands"], scene["sz"], scene["sa"], None, None, 20.0, config)
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_array_equal(bounded.scl.compute(), no_view.scl)
        with pytest.raises(ConfigurationError, match="exceeds max_sun_zenith_deg"):
            classify(d, sz, sa, None, None, 20.0, config, max_sun_zenith_deg=50.0).scl.compute()
    assert ref.scl.shape == no_view.scl.shape
