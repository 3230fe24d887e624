"""The truth written beside a synthetic product: GeoTIFFs on the tile grid and ``truth.json``.

Files (in ``{OUTPUT_DIR}/{product_id}.truth/``), all on the tile's UTM grid:

===================  =======  ====================================================
file                 type     content
===================  =======  ====================================================
``SR_10m.tif``       float32  surface reflectance of B02, B03, B04, B08 at 10 m
``SR_20m.tif``       float32  surface reflectance of all 13 bands at 20 m
``SCL_10m.tif``      uint8    class map (SCL codes) at 10 m
``SCL_20m.tif``      uint8    class map at 20 m
``AOT_20m.tif``      float32  aerosol optical thickness at 550 nm above the ground
``WVP_20m.tif``      float32  water vapour column above the ground (cm)
``CTH_20m.tif``      float32  cloud-top height (m above sea level; 0 without cloud)
``CLD_20m.tif``      float32  cloud cover fraction of the pixel (0-1)
``CIR_20m.tif``      float32  cirrus reflectance added in B10
``SUN_20m.tif``      float32  fraction of the direct sunlight reaching the ground (1 unshadowed)
``DEM_20m.tif``      float32  ground elevation (m), with ``--dem`` only
``IRR_20m.tif``      float32  share of the clear-sky NIR irradiance reaching the ground
                              (``--cloud-model physical`` only)
``EDG_20m.tif``      uint8    1 on the edge band of truth clouds: cover fraction below
                              ``CLOUD_EDGE_FRACTION`` (``--cloud-model physical`` only)
===================  =======  ====================================================

Tiled GeoTIFFs (ZSTD, predictor) written strip by strip; band descriptions name the
bands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from numpy.typing import NDArray
from rasterio.windows import Window
from scipy import ndimage

from sen2core.synthetic.mgrs import TileGrid

__all__ = ["TRUTH_FILES", "TruthWriter", "castable_shadows", "gdal_env", "read_truth", "write_truth_json"]


def gdal_env() -> rasterio.Env:
    """GDAL settings for writing: a small block cache (dirty blocks of the strip-written
    files are flushed instead of piling up: memory stays bounded) and no ``.aux.xml``."""
    return rasterio.Env(GDAL_CACHEMAX=256, GDAL_PAM_ENABLED="NO")


#: name -> (resolution m, dtype, band descriptions or None for one band).
TRUTH_FILES: dict[str, tuple[int, str, tuple[str, ...] | None]] = {
    "SR_10m": (10, "float32", ("B02", "B03", "B04", "B08")),
    "SR_20m": (
        20,
        "float32",
        ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"),
    ),
    "SCL_10m": (10, "uint8", None),
    "SCL_20m": (20, "uint8", None),
    "AOT_20m": (20, "float32", None),
    "WVP_20m": (20, "float32", None),
    "CTH_20m": (20, "float32", None),
    "CLD_20m": (20, "float32", None),
    "CIR_20m": (20, "float32", None),
    "SUN_20m": (20, "float32", None),
    "DEM_20m": (20, "float32", None),
    "IRR_20m": (20, "float32", None),
    "EDG_20m": (20, "uint8", None),
}


class TruthWriter:
    """Open truth GeoTIFFs and write them strip by strip (inside :func:`gdal_env`)."""

    def __init__(self, folder: Path, grid: TileGrid, size: int, names: list[str]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._ds: dict[str, Any] = {}
        for name in names:
            res, dtype, descriptions = TRUTH_FILES[name]
            n = size * 10 // res
            count = len(descriptions) if descriptions else 1
            block = 256 if n >= 256 else 16 * max(1, n // 16)
            tiled = n >= 256
            ds = rasterio.open(
                folder / f"{name}.tif",
                "w",
                driver="GTiff",
                width=n,
                height=n,
                count=count,
                dtype=dtype,
                crs=f"EPSG:{grid.epsg}",
                transform=Affine(res, 0.0, grid.ulx, 0.0, -res, grid.uly),
                tiled=tiled,
                **({"blockxsize": block, "blockysize": block} if tiled else {}),
                compress="ZSTD",
                zstd_level=1,
                predictor=3 if dtype == "float32" else 2,
                BIGTIFF="IF_SAFER",
                interleave="band",
            )
            if descriptions:
                for i, d in enumerate(descriptions, start=1):
                    ds.set_band_description(i, d)
            self._ds[name] = ds

    def write(self, name: str, row0: int, data: NDArray[Any], band: int | None = None) -> None:
        """Write rows of ``data`` starting at ``row0`` (in the file's own pixels)."""
        ds = self._ds[name]
        window = Window(0, row0, data.shape[-1], data.shape[-2])
        if band is None:
            ds.write(data.astype(ds.dtypes[0], copy=False), 1, window=window)
        else:
            ds.write(data.astype(ds.dtypes[0], copy=False), band, window=window)

    def close(self) -> None:
        """Close every file."""
        for ds in self._ds.values():
            ds.close()
        self._ds.clear()


def write_truth_json(path: Path, content: dict[str, Any]) -> None:
    """Write ``truth.json`` (sorted keys, so the bytes only depend on the content)."""
    path.write_text(json.dumps(content, indent=1, sort_keys=True, allow_nan=False) + "\n", encoding="utf-8")


def read_truth(truth_dir: Path, name: str, band: int = 1) -> NDArray[Any]:
    """One band of a truth GeoTIFF (``name`` as in :data:`TRUTH_FILES`)."""
    with rasterio.open(truth_dir / f"{name}.tif") as ds:
        return np.asarray(ds.read(band))


def castable_shadows(truth_dir: Path, scl: NDArray[Any], margin_px: int = 3) -> NDArray[np.bool_]:
    """Where the clouds inside the image cast their shadows, on the 20 m truth grid.

    Each truth cloud pixel (class 8 or 9) of a cloud object (told apart by ``CTH_20m``) is
    moved by its object's shadow offset (``truth.json``); the result is dilated by
    ``margin_px`` for soft edges and the penumbra. Shadows of clouds outside a small image
    cannot be found by any geometric method: scores leave out truth shadow outside this.
    """
    meta = json.loads((truth_dir / "truth.json").read_text(encoding="utf-8"))
    height = read_truth(truth_dir, "CTH_20m")
    cloud = np.isin(scl, (8, 9))
    out = np.zeros(scl.shape, dtype=bool)
    for obj in meta["clouds"]["objects"]:
        rows, cols = np.nonzero(cloud & (np.abs(height - obj["height_m"]) < 1.0))
        r = np.rint(rows + obj["shadow_offset_south_m"] / 20.0).astype(int)
        c = np.rint(cols + obj["shadow_offset_east_m"] / 20.0).astype(int)
        inside = (r >= 0) & (r < scl.shape[0]) & (c >= 0) & (c < scl.shape[1])
        out[r[inside], c[inside]] = True
    return np.asarray(ndimage.binary_dilation(out, iterations=margin_px) if margin_px else out, dtype=bool)
