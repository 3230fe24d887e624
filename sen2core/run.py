"""What one processing run is: its options, its result, and where its product goes.

:class:`ProcessingConfig` (options), :class:`L2AResult` (what a run produced, small
enough to return from a task), :func:`l2a_id` and :func:`output_dir` (the product's
deterministic name and place). The stages (:mod:`sen2core.stages`) and the one-call
entry point (:func:`sen2core.pipeline.process_product`) share them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sen2core import __version__
from sen2core.config import SceneClassificationConfig
from sen2core.correction import CorrectionConfig
from sen2core.errors import InputProductError
from sen2core.io.read.model import granule_tiles
from sen2core.io.read.product import Product
from sen2core.package import FORMATS
from sen2core.settings import OneOf, Rule, check_settings

log = logging.getLogger(__name__)

BANDS_10M = ("B02", "B03", "B04", "B08")
BANDS_20M = ("B05", "B06", "B07", "B8A", "B11", "B12")
BANDS_60M = ("B01", "B09")
#: Bands corrected on the working grid (B08 only at 10 m, B10 is never output: as Sen2Cor).
WORKING_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B8A", "B09", "B11", "B12")
INPUT_BANDS = WORKING_BANDS + ("B10",)


PROCESSING_RULES: tuple[Rule, ...] = (OneOf("resolution", (10, 20, 60), optional=True), OneOf("format", FORMATS))
"""The settings of :class:`ProcessingConfig` that take one of a few values."""


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
    verify_checksums: bool = True
    """Check every input file read against the checksum ``manifest.safe`` lists for it before
    decoding (:mod:`sen2core.io.read.integrity`); False for trusted archives."""

    def __post_init__(self) -> None:
        check_settings(self, {}, PROCESSING_RULES, "processing")

    @property
    def working_resolution(self) -> int:
        """Grid of the scene classification, AOT and WV: 60 m for a 60 m run, 20 m otherwise."""
        return 60 if self.resolution == 60 else 20

    @property
    def corrects_10m(self) -> bool:
        """Whether the run corrects the 10 m bands on their own grid (default and 10 m runs)."""
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
    text = ((product.spacecraft or "") + " " + (product.product_id or "")).upper()
    if "2B" in text:
        return "S2B"
    if "2A" not in text:
        name = product.spacecraft or product.product_id
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
