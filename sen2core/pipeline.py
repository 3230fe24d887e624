"""Process one Level-1C product into a Level-2A product: the library's unit of work.

``process_product(l1c_href, output_root, config) -> L2AResult``. The product is
built in a hidden sibling folder and renamed into place once complete; the file
written last (the STAC item, or ``MTD_MSIL2A.xml`` of a SAFE) marks it done, so a
crash never leaves something that looks finished and a rerun of a finished product
is a no-op (unless overwrite).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np

from sen2core import __version__, lazy
from sen2core.atmosphere.lut import load_lut
from sen2core.config import SceneClassificationConfig
from sen2core.correction import AtmosphericCorrection, CorrectionConfig, Scene, config_dict
from sen2core.errors import ConfigurationError, InputProductError, ProcessingTimeout
from sen2core.io.dem import dem_on_grid
from sen2core.io.product import Product, granule_tiles, open_l1c
from sen2core.io.write import RasterSpec
from sen2core.kernels import encode, terrain
from sen2core.kernels.scene_class import probability_to_uint8
from sen2core.kernels.shadow import cast_shadow
from sen2core.package import (
    FORMATS,
    SUMMARY_NAME,
    ProductRasters,
    is_done,
    logical_name,
    temporary_sibling,
    write_product,
)
from sen2core.scl import classify

log = logging.getLogger(__name__)

F32 = np.float32
BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
BANDS_60M = ("B01", "B09")
#: Bands corrected on the working grid (B08 only at 10 m, B10 is never output: as Sen2Cor).
WORKING_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12")
INPUT_BANDS = WORKING_BANDS + ("B10",)
#: Values of :attr:`ProcessingConfig.keep_inputs`.
KEEP_INPUTS = ("files", "memory")
SCL_COLOURS = {
    0: (0, 0, 0, 255), 1: (255, 0, 0, 255), 2: (47, 47, 47, 255), 3: (100, 50, 0, 255), 4: (0, 160, 0, 255),
    5: (255, 230, 90, 255), 6: (0, 0, 255, 255), 7: (128, 128, 128, 255), 8: (192, 192, 192, 255),
    9: (255, 255, 255, 255), 10: (100, 200, 255, 255), 11: (255, 150, 255, 255),
}  # fmt: skip
MARKER = SUMMARY_NAME


@dataclass(frozen=True)
class ProcessingConfig:
    """Options of one processing run."""

    resolution: int | None = None
    """10, 20 or 60; None = every band at its native resolution (Sen2Cor's default run)."""
    sc_only: bool = False
    """Scene classification only (Sen2Cor ``--sc_only``)."""
    dem: str | None = None
    """DEM raster for terrain correction and the pressure axis."""
    overwrite: bool = False
    """Reprocess a product that is already done."""
    correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    classification: SceneClassificationConfig = field(default_factory=SceneClassificationConfig)
    lut: str | None = None
    """LUT file (default: the packaged one)."""
    chunk_m: float = 18300.0
    """Chunk edge in metres (1830 px at 10 m = 915 at 20 m = 305 at 60 m)."""
    format: str = "cog"
    """Output layout: ``cog`` (COG + STAC) or ``safe`` (Sen2Cor's L2A SAFE with JPEG 2000)."""
    legacy_encoding: bool = False
    """BOA ``DN = rho * 10000`` as before processing baseline 04.00 (default: ``rho * 10000 + 1000``)."""
    granule: str | None = None
    """MGRS tile of the granule to process in an old multi-granule product (default: the first)."""
    keep_inputs: str = "files"
    """Where the digital numbers that the 10 m stage reads again wait for it: ``files``
    (uncompressed block files in a temporary folder beside the output, read back as needed)
    or ``memory`` (the cluster's memory: about 1.3 GB for a full tile, held through the
    whole scene classification)."""

    def __post_init__(self) -> None:
        if self.resolution not in (None, 10, 20, 60):
            raise ConfigurationError(f"resolution must be 10, 20 or 60, not {self.resolution!r}")
        if self.format not in FORMATS:
            raise ConfigurationError(f"format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.keep_inputs not in KEEP_INPUTS:
            raise ConfigurationError(f"keep_inputs must be one of {', '.join(KEEP_INPUTS)}, not {self.keep_inputs!r}")

    @property
    def rereads_inputs(self) -> bool:
        """Whether the run reads the bands again after the scene-wide retrievals (the 10 m stage)."""
        return self.resolution in (None, 10) and not self.sc_only


@dataclass(frozen=True)
class L2AResult:
    """What a run produced (small: safe to return from a task)."""

    l1c_id: str
    l2a_id: str
    output_dir: str
    status: str
    """``done`` or ``skipped`` (already done, no overwrite)."""
    class_percentages: dict[str, float] = field(default_factory=dict)
    atmosphere: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable view."""
        return asdict(self)


def spacecraft_code(product: Product) -> str:
    """``S2A`` or ``S2B`` for the LUT's spectral responses (later units use S2A's, with a warning)."""
    name = (product.spacecraft or product.product_id or "")[-1:].upper()
    text = (product.spacecraft or "") + " " + (product.product_id or "")
    if "2B" in text:
        return "S2B"
    if "2A" not in text:
        log.warning("%s: spacecraft %r has no spectral responses in the LUT; using S2A's", product.href, name)
    return "S2A"


def l2a_id(product: Product) -> str:
    """Deterministic Level-2A id: the L1C id with MSIL2A and baseline N9{major}{minor:02d} of sen2core."""
    major, minor = (int(x) for x in __version__.split(".")[:2])
    parts = product.product_id.split("_")
    if len(parts) == 7 and parts[1].startswith("MSIL1C"):
        parts[1] = "MSIL2A"
        parts[3] = f"N9{major}{minor:02d}"
        if product.tile_id:
            parts[5] = f"T{product.tile_id}"  # the granule's own tile (several in old products)
        return "_".join(parts)
    # Old names hold no tile: the granule's is added when the product has several.
    tile = f"_T{product.tile_id}" if product.tile_id and len(granule_tiles(product)) > 1 else ""
    return f"{product.product_id}{tile}_L2A_N9{major}{minor:02d}"


def output_dir(product: Product, root: str | Path, fmt: str = "cog") -> Path:
    """``{root}/{tile}/{yyyy}/{mm}/{dd}/{l2a_id}`` (``{l2a_id}.SAFE`` for the SAFE layout)."""
    if product.sensing_time is None or product.tile_id is None:
        raise InputProductError(product.href, "sensing time or tile unknown: cannot place the output")
    t = product.sensing_time
    name = l2a_id(product) + (".SAFE" if fmt == "safe" else "")
    return Path(root) / product.tile_id / f"{t:%Y}" / f"{t:%m}" / f"{t:%d}" / name


class _Clock:
    def __init__(self, progress: Callable[[str], None] | None, budget_s: float | None = None) -> None:
        self.last = self.start = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.progress = progress
        self.budget_s = budget_s

    def stage(self, name: str) -> None:
        # Orchestrators' own timeouts may not interrupt a thread (Prefect's land at the thread's
        # next bytecode, and are lost if that is in a garbage-collector callback): the budget
        # is also checked here.
        if self.budget_s is not None and time.perf_counter() - self.start > self.budget_s:
            raise ProcessingTimeout(f"processing exceeded its time budget of {self.budget_s:g} s "
                                    f"(stopped before stage {name!r})")  # fmt: skip
        if self.progress:
            self.progress(name)
        log.info("stage %s", name)
        self.last = time.perf_counter()

    def done(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self.last, 2)
        self.last = now


def _terrain_arrays(
    dem_km: da.Array, sza: da.Array, saa: da.Array, res: float, mean_sza: float, mean_saa: float
) -> tuple[da.Array, da.Array, da.Array]:
    def slope(block: np.ndarray) -> np.ndarray:
        return terrain.slope_aspect(block.astype(np.float64) * 1000.0, res)[0].astype(F32)

    def aspect(block: np.ndarray) -> np.ndarray:
        return terrain.slope_aspect(block.astype(np.float64) * 1000.0, res)[1].astype(F32)

    slope, aspect = lazy.overlap(slope, dem_km, 1), lazy.overlap(aspect, dem_km, 1)
    cos_i = da.map_blocks(lambda s, a, z, az: terrain.cos_incidence(s, a, z, az).astype(F32), slope, aspect, sza, saa,
                          dtype=F32)  # fmt: skip
    sky = da.map_blocks(lambda s: terrain.sky_view(s).astype(F32), slope, dtype=F32)
    # Cast shadows reach at most the relief over the sun's elevation; 5 km covers 2 km of relief at 68 deg.
    reach = min(5000.0, 2000.0 * math.tan(math.radians(min(mean_sza, 80.0))))
    depth = max(int(reach / res), 1)

    def shadow(block: np.ndarray) -> np.ndarray:
        return (~cast_shadow(block.astype(np.float64) * 1000.0, mean_sza, mean_saa, res, reach)).astype(F32)

    sunlit = lazy.overlap(shadow, dem_km, depth)
    return cos_i, sunlit, sky


def _geometry_grid(product: Product, res: float, chunks: tuple[tuple[int, ...], ...]) -> tuple[float, int] | None:
    """A coarse grid (about 300 m) whose blocks match ``chunks`` one to one, or None.

    The correction takes one geometry per block (its mean angles), so view angles are
    only needed on such a grid: interpolating them per pixel for every band cost about
    a sixth of the processing time.
    """
    cp = chunks[0][0]
    k = lazy.chunk_divisor(cp, res, 300.0)
    coarse = res * k
    shape = product.geobox(coarse).shape
    blocks = tuple(len(c) for c in chunks)
    if tuple(-(-n // (cp // k)) for n in shape) != blocks:
        return None
    return coarse, cp // k


@dataclass
class _Graph:
    """The lazy Level-2A rasters of one product and what the run learnt on the way."""

    rasters: dict[str, tuple[da.Array, RasterSpec]]
    classification: Any
    percentages: dict[str, float] | None
    atmosphere: dict[str, Any]
    lut_id: str
    spacecraft: str


def _build(product: Product, config: ProcessingConfig, clock: _Clock, scratch: Path | None = None) -> _Graph:
    """Every output raster of ``product`` as one lazy graph (scene-wide sums and kept inputs computed).

    ``scratch``: a folder for the inputs kept in files (``config.keep_inputs``).
    """
    lut = load_lut(config.lut)
    sc = spacecraft_code(product)
    wr = 60 if config.resolution == 60 else 20
    gb = product.geobox(wr)
    clock.done("open")

    clock.stage("read")
    present = [b for b in INPUT_BANDS if b in product.band_files]
    missing = [b for b in WORKING_BANDS if b not in product.band_files]
    if missing:
        raise InputProductError(product.href, f"bands needed for Level-2A are missing: {', '.join(missing)}")
    if config.rereads_inputs:
        # Keep the digital numbers (uint16, half the size of reflectance) of every band: the
        # 10 m stage after the scene-wide retrievals then reuses them instead of decoding again.
        if scratch is not None and lazy.current_window() is None:
            # In files, B08 too: it is decoded once either way, and by whole tiles there.
            dn = product.keep_dn([*present, *(b for b in ("B08",) if b in product.band_files)], scratch)
        else:
            dn = dict(zip(present, lazy.persist(*(product.read_dn(b) for b in present)), strict=True))
        toa = {b: product.toa(b, wr, dn=dn[b]) for b in present}
    else:
        dn = {}
        toa = dict(zip(present, lazy.persist(*(product.toa(b, wr) for b in present)), strict=True))
    sza, saa = product.sun_angles(wr)
    vza, vaa = {}, {}
    geo = _geometry_grid(product, wr, toa["B04"].chunks)
    for b in present:
        vza[b], vaa[b] = product.view_angles(b, geo[0], chunks=geo[1]) if geo else product.view_angles(b, wr)
    saa_coarse = product.sun_angles(geo[0], chunks=geo[1])[1] if geo else None
    # Cloud shadows are projected with the per-pixel view geometry.
    vza8a, vaa8a = product.view_angles("B8A", wr)
    clock.done("read")

    clock.stage("scene classification")
    dem_km = None
    if config.dem:
        dem_m = dem_on_grid(config.dem, gb, toa["B04"].chunks)
        dem_km = da.clip(da.where(da.isfinite(dem_m), dem_m, 0.0), -500.0, 9000.0) / 1000.0
    # One pass over the sun angles: the highest zenith bounds how far cloud shadows reach
    # (hence the chunk overlaps); the means set the terrain's cast-shadow direction.
    stats = dask.compute(da.nanmax(sza), da.nanmean(sza), da.nanmean(saa))
    max_sza, mean_sza, mean_saa = (float(v) for v in stats)
    scl_res = classify(
        {b: toa[b] for b in present}, sza, saa, vza8a, vaa8a, resolution_m=wr,
        config=config.classification, dem=None if dem_km is None else dem_km * 1000.0,
        max_sun_zenith_deg=min(max_sza + 2.0, 89.0), private_bands=True,
    )  # fmt: skip
    # Kept as percent (uint8), a quarter of the float32 it is computed in: it is only written out.
    scl_res = replace(scl_res, calibrated_cloud_probability=da.map_blocks(
        probability_to_uint8, scl_res.calibrated_cloud_probability, dtype=np.uint8))  # fmt: skip
    layers = ("scl", "cloud_probability", "snow_probability", "calibrated_cloud_probability", "cloud_buffer")
    # Kept (persisted, or stored by processing tiles): every later stage reads them.
    scl_res = replace(scl_res, **lazy.checkpoint("classification", {n: getattr(scl_res, n) for n in layers}))
    # A processing tile counts its classes with its rasters (see sen2core.tiled).
    percentages = None if lazy.current_window() else dask.compute(scl_res.percentages())[0]
    scl = scl_res.scl
    clock.done("scene classification")

    gb60 = product.geobox(60)
    rasters: dict[str, tuple[da.Array, RasterSpec]] = {}

    def add(kind: str, res: int, arr: da.Array, spec: RasterSpec) -> None:
        rasters[logical_name(kind, res)] = (arr, spec)

    def to60(x: da.Array) -> da.Array:
        # 20 m -> 60 m by 3x3 block mean, on the chunk grid shared by all resolutions.
        return lazy.downsample_mean(x.rechunk(toa["B04"].chunks), 3)[: gb60.shape[0], : gb60.shape[1]]

    scl_spec = dict(dtype="uint8", nodata=0, band_names=("SCL",), resampling="mode", colormap=SCL_COLOURS)
    prob_spec = dict(dtype="uint8", nodata=None, resampling="average")
    add("SCL", wr, scl, RasterSpec(gb, **scl_spec))  # type: ignore[arg-type]
    add("MSK_CLDPRB", wr, scl_res.cloud_probability, RasterSpec(gb, band_names=("cloud probability %",), **prob_spec))  # type: ignore[arg-type]
    add("MSK_SNWPRB", wr, scl_res.snow_probability, RasterSpec(gb, band_names=("snow probability %",), **prob_spec))  # type: ignore[arg-type]
    calibrated = scl_res.calibrated_cloud_probability
    add("CLD_PROB_CALIBRATED", wr, calibrated, RasterSpec(gb, band_names=("cloud probability %",), **prob_spec))  # type: ignore[arg-type]
    if wr == 20:
        add("SCL", 60, scl_res.scl_60m(), RasterSpec(gb60, **scl_spec))  # type: ignore[arg-type]
        add("MSK_CLDPRB", 60, scl_res.cloud_probability_60m(), RasterSpec(gb60, **prob_spec))  # type: ignore[arg-type]
        add("MSK_SNWPRB", 60, scl_res.snow_probability_60m(), RasterSpec(gb60, **prob_spec))  # type: ignore[arg-type]
    atmosphere: dict[str, Any] = {}

    if not config.sc_only:
        clock.stage("atmosphere")
        elev = dem_km if dem_km is not None else da.full(gb.shape, config.correction.elevation_km, dtype=F32,
                                                                  chunks=toa["B04"].chunks)  # fmt: skip
        terrain_arrays: tuple[Any, ...] = (None, None, None)
        if dem_km is not None:
            terrain_arrays = _terrain_arrays(dem_km, sza, saa, wr, mean_sza, mean_saa)
        scene = Scene(toa=toa, sun_zenith=sza, sun_azimuth=saa, view_zenith=vza, view_azimuth=vaa,
                      elevation_km=elev, resolution_m=wr, spacecraft=sc, cos_incidence=terrain_arrays[0],
                      sunlit=terrain_arrays[1], sky_view=terrain_arrays[2],
                      sun_azimuth_coarse=saa_coarse)  # fmt: skip
        ac = AtmosphericCorrection(config.correction, lut)
        gamma = None
        if config.correction.cirrus_correction:
            scene, gamma = ac.remove_cirrus(scene, scl)
        atm = ac.retrieve(scene, scl)
        atmosphere = dict(atm.summary, CIRRUS_GAMMA=gamma)
        clock.done("atmosphere")

        clock.stage("correction")
        boa_wr = ac.correct(scene, atm, scl, WORKING_BANDS)
        legacy = config.legacy_encoding
        # Negative reflectance is stored below DN 1000 (clipped to 1 with the legacy encoding).
        boa_spec: dict[str, Any] = dict(encode.boa_raster_scaling(legacy), negative_below=2 if legacy else 1000)

        def enc(x: da.Array) -> da.Array:
            return da.map_blocks(encode.encode_boa, x, legacy, dtype=np.uint16)

        def enc_scaled(x: da.Array, scale: float) -> da.Array:
            return da.map_blocks(encode.encode_scaled, x, scale, dtype=np.uint16)

        def boa(band: str, res: int, x: da.Array, grid: Any) -> None:
            add(band, res, enc(x), RasterSpec(grid, "uint16", 0, (band,), **boa_spec))

        def tci(res: int, r: da.Array, g: da.Array, b: da.Array, grid: Any) -> None:
            dn = [enc(x) for x in (r, g, b)]
            arr = da.map_blocks(encode.tci, *dn, new_axis=0, chunks=((3,),) + dn[0].chunks, dtype=np.uint8)
            add("TCI", res, arr, RasterSpec(grid, "uint8", 0, ("red", "green", "blue")))

        aot_dn = enc_scaled(atm.aot, encode.AOT_QUANTIFICATION)
        wvp_dn = enc_scaled(atm.water_vapour, encode.WVP_QUANTIFICATION)
        aot_spec = RasterSpec(gb, "uint16", 0, ("AOT x1000",), scale=1e-3)
        wvp_spec = RasterSpec(gb, "uint16", 0, ("WVP cm x1000",), scale=1e-3)
        add("AOT", wr, aot_dn, aot_spec)
        add("WVP", wr, wvp_dn, wvp_spec)
        for b in WORKING_BANDS:
            # Sen2Cor's R20m holds B01 (baseline 04.00 on) but not B09.
            if wr == 60 or b != "B09" or config.resolution == 20:
                boa(b, wr, boa_wr[b], gb)
        tci(wr, boa_wr["B04"], boa_wr["B03"], boa_wr["B02"], gb)
        if wr == 20:
            add("AOT", 60, enc_scaled(to60(atm.aot), encode.AOT_QUANTIFICATION), replace(aot_spec, geobox=gb60))
            add(
                "WVP", 60, enc_scaled(to60(atm.water_vapour), encode.WVP_QUANTIFICATION), replace(wvp_spec, geobox=gb60)
            )
            b60 = {b: to60(boa_wr[b]) for b in WORKING_BANDS}
            for b in WORKING_BANDS:
                boa(b, 60, b60[b], gb60)
            tci(60, b60["B04"], b60["B03"], b60["B02"], gb60)
        if config.resolution in (None, 10):
            gb10 = product.geobox(10)
            toa10 = {b: product.toa(b, 10, dn=dn.get(b)) for b in BANDS_10M}
            sza10, saa10 = product.sun_angles(10)
            up = lambda x: lazy.upsample(x, 2, gb10.shape).rechunk(toa10["B02"].chunks)  # noqa: E731
            geo10 = _geometry_grid(product, 10, toa10["B02"].chunks)
            view10 = {b: product.view_angles(b, *geo10) if geo10 else product.view_angles(b, 10) for b in BANDS_10M}
            scene10 = Scene(
                toa=toa10, sun_zenith=sza10, sun_azimuth=saa10, view_zenith={b: v[0] for b, v in view10.items()},
                view_azimuth={b: v[1] for b, v in view10.items()}, elevation_km=up(elev), resolution_m=10,
                spacecraft=sc,
                cos_incidence=None if terrain_arrays[0] is None else up(terrain_arrays[0]),
                sunlit=None if terrain_arrays[1] is None else up(terrain_arrays[1]),
                sky_view=None if terrain_arrays[2] is None else up(terrain_arrays[2]),
                sun_azimuth_coarse=product.sun_angles(*geo10)[1] if geo10 else None,
            )  # fmt: skip
            atm10 = type(atm)(aot=up(atm.aot), water_vapour=up(atm.water_vapour), aerosol=atm.aerosol,
                              summary=atm.summary)  # fmt: skip
            scl10 = up(scl)
            if gamma is not None:
                scene10, _ = ac.remove_cirrus(
                    Scene(**{**scene10.__dict__, "toa": {**toa10, "B10": product.toa("B10", 10, dn=dn.get("B10"))}}),
                    scl10,
                )
            boa10 = ac.correct(scene10, atm10, scl10, BANDS_10M)
            for b in BANDS_10M:
                boa(b, 10, boa10[b], gb10)
            add("AOT", 10, up(aot_dn), replace(aot_spec, geobox=gb10))
            add("WVP", 10, up(wvp_dn), replace(wvp_spec, geobox=gb10))
            tci(10, boa10["B04"], boa10["B03"], boa10["B02"], gb10)
        clock.done("correction")
    return _Graph(rasters, scl_res, percentages, atmosphere, lut.id, sc)


def _open(l1c_href: str | os.PathLike[str], output_root: str | os.PathLike[str],
          config: ProcessingConfig) -> tuple[Product, str, Path]:  # fmt: skip
    product = open_l1c(l1c_href, tile=config.granule, chunk_m=config.chunk_m)
    if config.granule and product.tile_id != config.granule.upper().lstrip("T"):
        raise InputProductError(product.href, f"no granule of tile {config.granule} (tiles: "
                                f"{', '.join(granule_tiles(product)) or product.tile_id})")  # fmt: skip
    return product, l2a_id(product), output_dir(product, output_root, config.format)


def _skipped(product: Product, ident: str, final: Path) -> L2AResult:
    """The result of a product that is already done, from the figures it recorded."""
    summary_file = final / MARKER
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
    else:  # SAFE layout: the figures are in its metadata
        from sen2core.io.mtd_l2a import read_quality_indicators

        summary = read_quality_indicators((final / "MTD_MSIL2A.xml").read_bytes(), product=str(final))
    files = tuple(sorted(str(p.relative_to(final)) for p in final.rglob("*") if p.is_file()))
    return L2AResult(product.product_id, ident, str(final), "skipped", summary.get("class_percentages", {}),
                     summary.get("atmosphere", {}), {}, files)  # fmt: skip


def _summary(product: Product, ident: str, config: ProcessingConfig, graph: _Graph, percentages: dict[str, float],
             seconds: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    return {
        "l1c_id": product.product_id, "l2a_id": ident, "processor": f"sen2core {__version__}",
        "lut_id": graph.lut_id, "spacecraft_srf": graph.spacecraft, "resolution": config.resolution,
        "sc_only": config.sc_only, "format": config.format, "legacy_encoding": config.legacy_encoding,
        "class_percentages": percentages, "atmosphere": graph.atmosphere,
        "correction_config": config_dict(config.correction), "seconds": seconds, "warnings": list(product.warnings),
    }  # fmt: skip


def process_product(
    l1c_href: str | os.PathLike[str],
    output_root: str | os.PathLike[str],
    config: ProcessingConfig = ProcessingConfig(),
    progress: Callable[[str], None] | None = None,
    time_budget_s: float | None = None,
) -> L2AResult:
    """Process one Level-1C product to Level-2A COGs under ``output_root``.

    Parameters
    ----------
    l1c_href
        SAFE folder, ``.SAFE.zip`` or ``MTD_MSIL1C.xml``.
    output_root
        Root of the output tree (``{root}/{tile}/{yyyy}/{mm}/{dd}/{l2a_id}/``).
    config
        Processing options.
    progress
        Called with each stage's name as it starts.
    time_budget_s
        Stop with :class:`~sen2core.errors.ProcessingTimeout` when a stage would start after
        this many seconds (nothing is published).

    Returns
    -------
    L2AResult

    Raises
    ------
    InputProductError
        The input is not a usable Level-1C product.
    ProcessingTimeout
        ``time_budget_s`` ran out.
    """
    clock = _Clock(progress, time_budget_s)
    clock.stage("open")
    product, ident, final = _open(l1c_href, output_root, config)
    if is_done(final) and not config.overwrite:
        return _skipped(product, ident, final)
    # Removed however the run ends; a killed run's folder goes with the next run's stale siblings.
    scratch = temporary_sibling(final) if config.rereads_inputs and config.keep_inputs == "files" else None
    try:
        graph = _build(product, config, clock, scratch)
        percentages = graph.percentages or {}

        clock.stage("write")
        summary = _summary(product, ident, config, graph, percentages, clock.seconds)
        written = write_product(ProductRasters(product, ident, graph.rasters, summary, config.resolution), final,
                                config.format)  # fmt: skip
        clock.done("write")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return L2AResult(product.product_id, ident, str(final), "done", percentages, graph.atmosphere, clock.seconds,
                     tuple(written))  # fmt: skip
