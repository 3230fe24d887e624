"""Small pydantic models passed between flows and tasks: references and summaries, never pixels.

Every model here is small and JSON-serialisable, so Prefect can show it as a flow
parameter form in the UI, validate what an operator types in, and persist it as a
result without moving arrays between processes.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import PurePath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DEFAULT_ASSET_KEYS",
    "L1CRef",
    "ProcessingOptions",
    "ProductOutcome",
    "RunSummary",
    "Source",
    "TimeWindow",
    "normalise_tile",
    "parse_l1c_name",
]

#: Compact Level-1C product names (2016-12 onwards): mission, sensing start, baseline, orbit, tile, discriminator.
_L1C_NAME = re.compile(
    r"^(?P<mission>S2[A-D])_MSIL1C_(?P<sensing>\d{8}T\d{6})_N\d{4}_R\d{3}_T(?P<tile>\d{2}[A-Z]{3})_\d{8}T\d{6}$"
)
_TILE = re.compile(r"^T?(\d{1,2}[C-HJ-NP-X][A-HJ-NP-Z]{2})$")
#: STAC assets that may hold the product, in order of preference: a SAFE folder, a ``.SAFE.zip`` or
#: ``MTD_MSIL1C.xml`` (``product_metadata`` in Element 84's ``sentinel-2-l1c``).
DEFAULT_ASSET_KEYS = ("safe", "product", "PRODUCT", "safe-zip", "product_metadata")


def normalise_tile(tile: str) -> str:
    """``"t32tqm"`` / ``"T32TQM"`` / ``"32TQM"`` -> ``"32TQM"`` (zero-padded zone).

    Raises
    ------
    ValueError
        Not an MGRS tile id.
    """
    m = _TILE.match(tile.strip().upper())
    if m is None:
        raise ValueError(f"not an MGRS tile id: {tile!r}")
    code = m.group(1)
    return code.zfill(5)


def product_id_from_href(href: str) -> str:
    """The product id an href names: its last path part without ``.zip`` / ``.SAFE``.

    ``.../X.SAFE/MTD_MSIL1C.xml`` names ``X``, like the SAFE folder around it.
    """
    path = PurePath(href.rstrip("/"))
    if path.name.upper().startswith("MTD_MSIL1C") and path.parent.name:
        path = path.parent
    name = path.name
    for suffix in (".zip", ".ZIP", ".SAFE", ".safe"):
        name = name.removesuffix(suffix)
    return name


def parse_l1c_name(product_id: str) -> tuple[str, dt.datetime] | None:
    """``(tile, sensing start UTC)`` from a compact Level-1C product name, or None for other names."""
    m = _L1C_NAME.match(product_id)
    if m is None:
        return None
    sensing = dt.datetime.strptime(m.group("sensing"), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return m.group("tile"), sensing


def _utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetimes only: a naive time is taken as UTC (STAC and Sentinel-2 times are UTC)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class TimeWindow(BaseModel):
    """A half-open sensing-time interval ``[start, end)``, in UTC."""

    model_config = ConfigDict(frozen=True)

    start: dt.datetime
    end: dt.datetime

    @field_validator("start", "end")
    @classmethod
    def _as_utc(cls, value: dt.datetime) -> dt.datetime:
        return _utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError(f"empty time window: end {self.end} is not after start {self.start}")
        return self

    @classmethod
    def from_dates(cls, start: dt.date, end: dt.date) -> TimeWindow:
        """Whole UTC days from ``start`` to ``end``, both included."""
        begin = dt.datetime.combine(start, dt.time(), tzinfo=dt.UTC)
        stop = dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1)
        return cls(start=begin, end=stop)

    def __contains__(self, moment: object) -> bool:
        return isinstance(moment, dt.datetime) and self.start <= _utc(moment) < self.end

    def __str__(self) -> str:
        return f"[{self.start.isoformat()}, {self.end.isoformat()})"


class Source(BaseModel):
    """Where Level-1C products are discovered.

    Flow parameters are stored by Prefect and shown in its UI, so an ``href`` holding
    credentials (user-info, or a query parameter such as ``api_key``, ``token`` or
    ``X-Amz-Signature``) is refused: a STAC API's credentials come from the environment
    variable ``SEN2CORE_STAC_API_TOKEN`` of the processes that run discovery, or from the
    Prefect Secret block named by :attr:`secret_block` (see :func:`tasks.discover.stac_auth`).
    ``sen2core flow ... --stac-api URL`` moves credentials out of the URL by itself.
    """

    # Validation errors must not echo a rejected href back (it holds the credentials).
    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    kind: Literal["inbox", "stac-catalog", "stac-api"] = "inbox"
    """``inbox``: a directory of ``*.SAFE`` folders and ``*.SAFE.zip`` archives; ``stac-catalog``: a static
    STAC catalog or collection JSON (path or URL); ``stac-api``: the root URL of a STAC API."""
    href: str
    """Inbox directory, catalog JSON, or STAC API root URL."""
    collections: list[str] = Field(default_factory=lambda: ["sentinel-2-l1c"])
    """STAC API collections to search (``stac-api`` only)."""
    asset_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_ASSET_KEYS))
    """STAC item assets that may hold the product, in order of preference (see ``DEFAULT_ASSET_KEYS``)."""
    secret_block: str | None = None
    """Name of a Prefect ``Secret`` block holding the STAC API's credentials (``stac-api`` only): a
    token, or JSON ``{"headers": {...}, "parameters": {...}, "username": ..., "password": ...}``.
    Without it, ``SEN2CORE_STAC_API_TOKEN`` (same forms) is used when set."""

    @field_validator("href")
    @classmethod
    def _no_credentials(cls, href: str) -> str:
        from sen2core.redact import redact_url

        if redact_url(href) != href:
            raise ValueError(
                f"{redact_url(href)}: credentials in the URL would be stored with the flow run and logged; "
                "give them in SEN2CORE_STAC_API_TOKEN or a Prefect Secret block (secret_block) instead"
            )
        return href


class L1CRef(BaseModel):
    """A reference to one Level-1C product: what discovery found, before anything is opened."""

    model_config = ConfigDict(frozen=True)

    href: str
    """SAFE folder, ``.SAFE.zip``, ``MTD_MSIL1C.xml`` or AWS tile folder, local or ``s3://`` / ``http(s)://``:
    what :func:`sen2core.pipeline.process_product` takes."""
    product_id: str
    tile: str | None = None
    sensing_time: dt.datetime | None = None
    cloud_cover: float | None = None
    """Cloud cover (%) the source reports (``eo:cloud_cover``); None when unknown (inbox)."""
    origin: str | None = None
    """Where it was found (STAC item href), for reports."""
    granule: str | None = None
    """MGRS tile of one granule of an old multi-granule product (the skip-done task splits those: one
    reference per granule); None for today's single-granule products."""

    @classmethod
    def from_href(cls, href: str) -> L1CRef:
        """A reference from a path alone; tile and time come from a compact product name."""
        product_id = product_id_from_href(href)
        parsed = parse_l1c_name(product_id)
        tile, sensing = parsed if parsed else (None, None)
        return cls(href=href, product_id=product_id, tile=tile, sensing_time=sensing)


class ProcessingOptions(BaseModel):
    """Processing options an operator may set (the rest of the library's configuration keeps its defaults)."""

    model_config = ConfigDict(frozen=True)

    resolution: Literal[10, 20, 60] | None = None
    """10, 20 or 60 m; None = every band at its native resolution (Sen2Cor's default run)."""
    sc_only: bool = False
    """Scene classification only."""
    aerosol: Literal["continental", "maritime", "auto"] = "continental"
    cirrus: bool = False
    """Cirrus correction with B10."""
    dem: str | None = None
    """DEM raster (any CRS) for terrain correction, readable by every Dask worker."""
    output_format: Literal["cog", "safe"] = "cog"
    """``cog`` (COGs + STAC item) or ``safe`` (Sen2Cor's L2A SAFE layout)."""
    chunk_m: float = Field(default=18300.0, gt=0)
    """Chunk edge in metres (18.3 km: 1830, 915 and 305 px at 10, 20 and 60 m); by tiles, a multiple of 300 m."""
    tile_blocks: int | None = Field(default=None, ge=1)
    """Split each product's stages into processing tiles of this many chunk blocks (18.3 km) a side: one
    task per tile and stage (:func:`tasks.stages.process_by_tiles`); None (default): one task per stage
    (``docs/orchestration.md``, "Stages and tiles")."""
    tiles_at_once: int | None = Field(default=None, ge=1)
    """With ``tile_blocks``: at most this many tile tasks of a round in flight (a sliding window), to bound
    the memory of a large scene on a small cluster (each tile in flight holds its graph and blocks in the
    workers' memory). None (default): every tile of the round at once, the fastest."""
    verify_checksums: bool = True
    """Check the input files read against the checksums of ``manifest.safe`` before decoding (False: trusted
    archives, the check skipped)."""
    task_per_stage: bool = True
    """One task run per stage of a product (default; the flow graph shows the stages); False: one task
    run per product (:func:`tasks.product.process_l1c`, the same stages inside it), for runs of
    many products where the Prefect server's load matters more than the detail."""


Status = Literal["done", "skipped", "failed"]


class ProductOutcome(BaseModel):
    """What happened to one product in a run: one row of the run's report."""

    l1c_href: str
    product_id: str
    status: Status
    """``done`` (processed in this run), ``skipped`` (already done, no overwrite) or ``failed``."""
    l2a_id: str | None = None
    output_dir: str | None = None
    cloud_cover: float | None = None
    """``CLOUDY_PIXEL_PERCENTAGE`` of the scene classification (classes 8, 9, 10 over pixels with data)."""
    aot: float | None = None
    """Scene mean aerosol optical thickness at 550 nm."""
    water_vapour: float | None = None
    """Scene mean water vapour (cm)."""
    seconds: float | None = None
    """Wall time of the product task."""
    error: str | None = None
    """Why it failed (``failed`` only)."""
    tile: str | None = None
    sensing_time: dt.datetime | None = None


class RunSummary(BaseModel):
    """The result of a flow run: counts and one outcome per product."""

    flow: str
    output_root: str
    window: TimeWindow | None = None
    discovered: int = 0
    outcomes: list[ProductOutcome] = Field(default_factory=list)
    collection: str | None = None
    """STAC collection updated by the run, if any."""
    report: str | None = None
    """Markdown report written by the run."""

    def count(self, status: Status) -> int:
        """Number of products with ``status``."""
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failed(self) -> list[ProductOutcome]:
        """The failed products."""
        return [o for o in self.outcomes if o.status == "failed"]

    def headline(self) -> str:
        """One line for logs and state messages."""
        return (
            f"{self.discovered} discovered: {self.count('done')} done, {self.count('skipped')} skipped, "
            f"{self.count('failed')} failed"
        )
