"""The scene classification legend: the one place the SCL codes, names, Sen2Cor texts and colours are defined.

Used by the classification kernels (the codes), the STAC item (classification extension),
the quicklook legend and the product metadata (``Scene_Classification_List``,
``Image_Content_QI``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum


class SCL(IntEnum):
    """Scene classification codes (ESA naming; 2.8 called class 2 DARK_FEATURES)."""

    NO_DATA = 0
    SATURATED_OR_DEFECTIVE = 1
    DARK_AREA_PIXELS = 2
    CLOUD_SHADOWS = 3
    VEGETATION = 4
    NOT_VEGETATED = 5
    WATER = 6
    UNCLASSIFIED = 7
    CLOUD_MEDIUM_PROBABILITY = 8
    CLOUD_HIGH_PROBABILITY = 9
    THIN_CIRRUS = 10
    SNOW_ICE = 11


PERCENTAGE_NAMES: Mapping[int, str] = {
    1: "SATURATED_DEFECTIVE_PIXEL_PERCENTAGE",
    2: "DARK_FEATURES_PERCENTAGE",
    3: "CLOUD_SHADOW_PERCENTAGE",
    4: "VEGETATION_PERCENTAGE",
    5: "NOT_VEGETATED_PERCENTAGE",
    6: "WATER_PERCENTAGE",
    7: "UNCLASSIFIED_PERCENTAGE",
    8: "MEDIUM_PROBA_CLOUDS_PERCENTAGE",
    9: "HIGH_PROBA_CLOUDS_PERCENTAGE",
    10: "THIN_CIRRUS_PERCENTAGE",
    11: "SNOW_ICE_PERCENTAGE",
}
"""Sen2Cor's ``Image_Content_QI`` name of the percentage of each class."""


@dataclass(frozen=True)
class SclClass:
    """One scene classification code."""

    value: int
    """Pixel value in the SCL raster."""
    name: str
    """Short machine name (``[0-9A-Za-z_-]``, valid in classification v1.1.0 and v2.0.0)."""
    description: str
    """Human-readable name."""
    sen2cor_text: str
    """``SCENE_CLASSIFICATION_TEXT`` in ``MTD_MSIL2A.xml``."""
    rgb: tuple[int, int, int]
    """Sen2Cor's display colour."""
    percentage_name: str | None
    """``Image_Content_QI`` percentage of the class (None for no data, which Sen2Cor reports apart)."""

    @property
    def color_hint(self) -> str:
        """``RRGGBB`` (classification extension)."""
        return "".join(f"{c:02X}" for c in self.rgb)


_TABLE: tuple[tuple[SCL, str, str, tuple[int, int, int]], ...] = (
    (SCL.NO_DATA, "No data", "SC_NODATA", (0, 0, 0)),
    (SCL.SATURATED_OR_DEFECTIVE, "Saturated or defective", "SC_SATURATED_DEFECTIVE", (255, 0, 0)),
    (SCL.DARK_AREA_PIXELS, "Dark features / shadows", "SC_DARK_FEATURE_SHADOW", (47, 47, 47)),
    (SCL.CLOUD_SHADOWS, "Cloud shadows", "SC_CLOUD_SHADOW", (100, 50, 0)),
    (SCL.VEGETATION, "Vegetation", "SC_VEGETATION", (0, 160, 0)),
    (SCL.NOT_VEGETATED, "Not vegetated", "SC_NOT_VEGETATED", (255, 230, 90)),
    (SCL.WATER, "Water", "SC_WATER", (0, 0, 255)),
    (SCL.UNCLASSIFIED, "Unclassified", "SC_UNCLASSIFIED", (128, 128, 128)),
    (SCL.CLOUD_MEDIUM_PROBABILITY, "Cloud, medium probability", "SC_CLOUD_MEDIUM_PROBA", (192, 192, 192)),
    (SCL.CLOUD_HIGH_PROBABILITY, "Cloud, high probability", "SC_CLOUD_HIGH_PROBA", (255, 255, 255)),
    (SCL.THIN_CIRRUS, "Thin cirrus", "SC_THIN_CIRRUS", (100, 200, 255)),
    (SCL.SNOW_ICE, "Snow or ice", "SC_SNOW_ICE", (255, 150, 255)),
)

SCL_CLASSES: tuple[SclClass, ...] = tuple(
    SclClass(int(code), code.name.lower(), text, sen2cor, rgb, PERCENTAGE_NAMES.get(int(code)))
    for code, text, sen2cor, rgb in _TABLE
)
"""The twelve Sen2Cor classes, in code order."""

SCL_BY_VALUE: dict[int, SclClass] = {c.value: c for c in SCL_CLASSES}
"""Class by pixel value."""


__all__ = ["PERCENTAGE_NAMES", "SCL", "SCL_BY_VALUE", "SCL_CLASSES", "SclClass"]
