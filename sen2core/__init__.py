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
    "load",
    "InputProductError",
    "LUTError",
    "MetadataError",
    "Sen2CoreError",
    "Sen2CoreWarning",
]


def __getattr__(name: str) -> object:
    # ``sen2core.load`` imports pystac and numpy: only when it is used, not with every ``import sen2core``.
    if name == "load":
        from sen2core.io.stac.load import load

        return load
    raise AttributeError(f"module 'sen2core' has no attribute {name!r}")
