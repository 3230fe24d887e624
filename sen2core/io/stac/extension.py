"""The ``sen2core`` STAC extension: what a Level-2A item says about its own making.

Fields (item properties), all optional except ``sen2core:l1c_id``:

``sen2core:l1c_id``
    Id of the Level-1C product the item was made from.
``sen2core:lut_id``
    Id of the radiative-transfer look-up table the correction used (versioned data the
    result depends on as much as on the code).
``sen2core:dem``
    The DEM the correction used: ``name``, ``crs`` and ``coverage_percent`` of the tile.
``sen2core:cloud_cover_note``
    Why ``eo:cloud_cover`` is absent (no pixel with data).

The JSON schema ships with the package (``sen2core/data/stac-schemas/sen2core/v1.0.0``) and
is what :func:`sen2core.io.stac.validation.validate_item` checks items against, offline. Its
identifier follows the STAC extension naming (``.../<name>/v<version>/schema.json``); the
copy in the package is the reference, nothing is fetched from that address.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pystac
from pystac.extensions.base import ExtensionManagementMixin, PropertiesExtension

__all__ = [
    "CLOUD_COVER_NOTE_PROP",
    "DEM_PROP",
    "EXTENSION_BASE",
    "L1C_ID_PROP",
    "LUT_ID_PROP",
    "SCHEMA_URI",
    "Sen2CoreExtension",
]

#: Host of the STAC extensions' schemas: ``{EXTENSION_BASE}/<name>/<version>/schema.json``.
EXTENSION_BASE = "https://stac-extensions.github.io"
SCHEMA_URI = f"{EXTENSION_BASE}/sen2core/v1.0.0/schema.json"
PREFIX = "sen2core:"
L1C_ID_PROP = PREFIX + "l1c_id"
LUT_ID_PROP = PREFIX + "lut_id"
DEM_PROP = PREFIX + "dem"
CLOUD_COVER_NOTE_PROP = PREFIX + "cloud_cover_note"


class Sen2CoreExtension(PropertiesExtension, ExtensionManagementMixin[pystac.Item]):
    """The ``sen2core:*`` properties of an item, read and written as pystac's extensions do.

    Not instantiated directly: ``Sen2CoreExtension.ext(item, add_if_missing=True)`` adds
    :data:`SCHEMA_URI` to the item's ``stac_extensions`` and returns the accessor.

    Examples
    --------
    >>> ext = Sen2CoreExtension.ext(item, add_if_missing=True)  # doctest: +SKIP
    >>> ext.l1c_id = "S2A_MSIL1C_..."  # doctest: +SKIP
    """

    name: Literal["sen2core"] = "sen2core"
    item: pystac.Item
    properties: dict[str, Any]

    def __init__(self, item: pystac.Item) -> None:
        self.item = item
        self.properties = item.properties

    def __repr__(self) -> str:
        return f"<Sen2CoreExtension Item id={self.item.id}>"

    @property
    def l1c_id(self) -> str | None:
        """Id of the Level-1C product the item was made from."""
        return self._get_property(L1C_ID_PROP, str)

    @l1c_id.setter
    def l1c_id(self, v: str | None) -> None:
        self._set_property(L1C_ID_PROP, v)

    @property
    def lut_id(self) -> str | None:
        """Id of the radiative-transfer LUT the correction used."""
        return self._get_property(LUT_ID_PROP, str)

    @lut_id.setter
    def lut_id(self, v: str | None) -> None:
        self._set_property(LUT_ID_PROP, v)

    @property
    def dem(self) -> dict[str, Any] | None:
        """The DEM the correction used: ``name``, ``crs``, ``coverage_percent``."""
        return self._get_property(DEM_PROP, dict[str, Any])

    @dem.setter
    def dem(self, v: Mapping[str, Any] | None) -> None:
        self._set_property(DEM_PROP, None if v is None else dict(v))

    @property
    def cloud_cover_note(self) -> str | None:
        """Why ``eo:cloud_cover`` is absent, when it is."""
        return self._get_property(CLOUD_COVER_NOTE_PROP, str)

    @cloud_cover_note.setter
    def cloud_cover_note(self, v: str | None) -> None:
        self._set_property(CLOUD_COVER_NOTE_PROP, v)

    @classmethod
    def get_schema_uri(cls) -> str:
        """The extension's schema identifier, :data:`SCHEMA_URI`."""
        return SCHEMA_URI

    @classmethod
    def ext(cls, obj: pystac.Item, add_if_missing: bool = False) -> Sen2CoreExtension:
        """The extension's accessor on ``obj`` (items only).

        Raises
        ------
        pystac.ExtensionNotImplemented
            ``obj`` does not list the extension and ``add_if_missing`` is False.
        pystac.ExtensionTypeError
            ``obj`` is not an item.
        """
        if isinstance(obj, pystac.Item):
            cls.ensure_has_extension(obj, add_if_missing)
            return cls(obj)
        raise pystac.ExtensionTypeError(cls._ext_error_message(obj))
