"""Surface reflectance taken from a real Level-2A product (``sen2core synth --surface``).

The source is a folder of single-band rasters named after the bands (``B02.tif`` or
``B02.jp2``, optionally with a prefix such as ``T29RKH_20200219T112111_B02_20m.jp2``)
with its scene classification ``SCL``, like the Earth Search COG layout of the fixture
``l2a-T29RKH-20200219-coarse``. Reflectance is ``DN / 10000``, minus 0.1 when the
product's STAC item says processing baseline >= 04.00 without the offset applied.

Pixels the source's SCL calls no data, saturated, cloud, cloud shadow or thin cirrus
are not surface: they are filled from the nearest valid pixel of the same band. The
ground class comes from the source SCL (vegetation 4, not vegetated 5 -- including
dark features 2 and unclassified 7 --, water 6, snow 11), filled the same way.

The source is placed on the synthetic tile by relative position: the synthetic
tile's pixel at ``(x, y)`` metres from its upper-left corner takes the source value
``(x, y)`` metres from the source's upper-left corner (bilinear for reflectance,
nearest for classes). A source of another tile is thus used as a texture. Band B10,
which Level-2A products do not have, is the mean of B09 and B11.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from numpy.typing import NDArray
from scipy import ndimage

from sen2core.atmosphere.srf import BANDS
from sen2core.errors import ConfigurationError
from sen2core.synthetic.scene import interp_rows_cols, pixel_coords

__all__ = ["SourceStrip", "SourceSurface"]

F32 = NDArray[np.float32]
_VALID_SCL = {2: 5, 4: 4, 5: 5, 6: 6, 7: 5, 11: 11}


def _find(folder: Path, name: str) -> Path | None:
    pattern = re.compile(rf"(^|_){name}(_\d+m)?\.(tif|tiff|jp2)$", re.IGNORECASE)
    hits = sorted(p for p in folder.iterdir() if p.is_file() and pattern.search(p.name))
    return hits[0] if hits else None


def _offset(folder: Path) -> float:
    """-0.1 when a STAC item in the folder says baseline >= 04.00 and the offset is not applied."""
    for item in sorted(folder.glob("*.json")):
        try:
            props = json.loads(item.read_text(encoding="utf-8")).get("properties", {})
        except (OSError, ValueError):
            continue
        baseline = props.get("s2:processing_baseline")
        if baseline is None:
            continue
        applied = props.get("earthsearch:boa_offset_applied", False)
        return -0.1 if float(baseline) >= 4.0 and not applied else 0.0
    return 0.0


@dataclass
class _Layer:
    data: NDArray[np.floating]
    pixel_m: float


@dataclass
class SourceStrip:
    """Surface of a strip of rows taken from the source."""

    classes: NDArray[np.uint8]
    gy: dict[float, NDArray[np.float64]]
    gx: dict[float, NDArray[np.float64]]
    layers: dict[str, _Layer]

    def band(self, index: int) -> F32:
        """Surface reflectance of band ``BANDS[index]`` on the strip's 10 m pixels."""
        name = BANDS[index]
        if name == "B10":
            return np.asarray(0.5 * (self.band(BANDS.index("B09")) + self.band(BANDS.index("B11"))), dtype=np.float32)
        layer = self.layers[name]
        out = interp_rows_cols(layer.data, self.gy[layer.pixel_m], self.gx[layer.pixel_m])
        return np.asarray(np.clip(out, 0.0, 1.0), dtype=np.float32)


class SourceSurface:
    """A real Level-2A product's surface, ready to be sampled on a synthetic tile."""

    def __init__(self, folder: str | Path, size: int) -> None:
        self.folder = Path(folder)
        self.size = size
        scl_path = _find(self.folder, "SCL")
        if scl_path is None:
            raise ConfigurationError(f"--surface {self.folder}: no SCL raster (SCL.tif, *_SCL_20m.jp2)")
        offset = _offset(self.folder)
        with rasterio.open(scl_path) as ds:
            scl = ds.read(1)
            self.scl_pixel = float(abs(ds.transform.a))
        valid_scl = np.isin(scl, list(_VALID_SCL))
        if not valid_scl.any():
            raise ConfigurationError(f"--surface {self.folder}: no clear surface pixel in the SCL")
        ground = np.zeros(scl.shape, dtype=np.uint8)
        for code, cls in _VALID_SCL.items():
            ground[scl == code] = cls
        self.classes = _fill_nearest(ground, ~valid_scl)
        self.layers: dict[str, _Layer] = {}
        for band in BANDS:
            if band == "B10":
                continue
            path = _find(self.folder, band)
            if path is None:
                raise ConfigurationError(f"--surface {self.folder}: no raster for band {band}")
            with rasterio.open(path) as ds:
                dn = ds.read(1).astype(np.float64)
                pixel = float(abs(ds.transform.a))
            rho = dn / 10000.0 + offset
            # The SCL validity at this band's resolution (nearest).
            zoom_y = np.clip(((np.arange(dn.shape[0]) + 0.5) * pixel / self.scl_pixel).astype(int), 0, scl.shape[0] - 1)
            zoom_x = np.clip(((np.arange(dn.shape[1]) + 0.5) * pixel / self.scl_pixel).astype(int), 0, scl.shape[1] - 1)
            invalid = ~valid_scl[zoom_y][:, zoom_x] | (dn <= 0)
            if invalid.all():
                raise ConfigurationError(f"--surface {self.folder}: band {band} has no valid pixel")
            self.layers[band] = _Layer(_fill_nearest(rho, invalid).astype(np.float32), pixel)
        extent = max(layer.data.shape[0] * layer.pixel_m for layer in self.layers.values())
        if extent < size * 10.0 - 1e-6:
            raise ConfigurationError(
                f"--surface {self.folder}: covers {extent / 1000:.1f} km, less than the {size * 10 / 1000:.1f} km tile"
            )

    def sample(self, row0: int, row1: int) -> SourceStrip:
        """Classes and band access for 10 m rows ``row0..row1`` of the synthetic tile."""
        pixels = {layer.pixel_m for layer in self.layers.values()}
        gy = {p: pixel_coords(row0, row1, 10.0, p) for p in pixels}
        gx = {p: pixel_coords(0, self.size, 10.0, p) for p in pixels}
        iy = np.clip(
            ((np.arange(row0, row1) + 0.5) * 10.0 / self.scl_pixel).astype(np.intp), 0, self.classes.shape[0] - 1
        )
        ix = np.clip(
            ((np.arange(self.size) + 0.5) * 10.0 / self.scl_pixel).astype(np.intp), 0, self.classes.shape[1] - 1
        )
        return SourceStrip(
            classes=np.asarray(self.classes[iy][:, ix], dtype=np.uint8), gy=gy, gx=gx, layers=self.layers
        )


def _fill_nearest(a: NDArray[np.generic], invalid: NDArray[np.bool_]) -> NDArray[np.generic]:
    if not invalid.any():
        return a
    _, (ri, ci) = ndimage.distance_transform_edt(invalid, return_indices=True)
    return np.asarray(a[ri, ci])
