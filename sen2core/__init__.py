"""sen2core: a Sentinel-2 Level-2A processor."""

from __future__ import annotations

__version__ = "0.1.0"

from sen2core.errors import (
    InputProductError,
    LUTError,
    MetadataError,
    Sen2CoreError,
    Sen2CoreWarning,
)

__all__ = [
    "__version__",
    "InputProductError",
    "LUTError",
    "MetadataError",
    "Sen2CoreError",
    "Sen2CoreWarning",
]
