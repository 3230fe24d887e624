"""Exception and warning hierarchy of sen2core.

Every error raised on purpose by the library derives from :class:`Sen2CoreError`.
Subclasses also inherit the builtin they specialise (as rasterio does), so callers
that catch ``ValueError`` or ``OSError`` keep working. Transient failures (worth a
retry) and permanent ones (a bad product) are kept in separate branches so that
orchestration can tell them apart.

Errors raised where Dask may run the code (block readers and writers) must reach the
client with their type. Distributed pickles an error together with its whole
``__cause__``/``__context__`` chain (tblib), and rasterio's ``CPLE_*`` exceptions
cannot be unpickled: one of them anywhere in the chain turns the error into a plain
``Exception(repr)``, which no ``except BandReadError`` and no retry rule recognises.
So those functions put GDAL's message into the error's text and raise the error
*after* their ``except`` block, where it has no chain (see :mod:`sen2core.io.failures`).
"""

from __future__ import annotations

import math


class Sen2CoreError(Exception):
    """Root of all sen2core errors."""


class InputProductError(Sen2CoreError, ValueError):
    """The input product is unusable: not a product, wrong level, missing or corrupt parts.

    Permanent: retrying does not help.
    """

    def __init__(self, product: object, problem: str) -> None:
        self.product = str(product)
        self.problem = problem
        super().__init__(f"{self.product}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Errors raised on Dask workers travel pickled; args alone would not rebuild this one.
        return (type(self), (self.product, self.problem))


class MetadataError(InputProductError):
    """A metadata file is missing, truncated, malformed or unsafe."""


class BandReadError(InputProductError):
    """A band raster is missing, truncated or cannot be decoded."""


class RemoteAccessError(InputProductError):
    """A remote object (``s3://``, ``https://``) is missing (404), forbidden (403) or refused the request.

    Permanent: retrying does not help (transient server failures are retried, then raised
    as :class:`TransientIOError`). ``product`` is the href of the object, ``status`` the
    HTTP status when there was one (412: a conditional write lost to another writer).
    """

    def __init__(self, href: object, problem: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(href, problem)

    def __reduce__(self) -> tuple[type, tuple[str, str, int | None]]:  # type: ignore[override]
        return (type(self), (self.product, self.problem, self.status))


class ChecksumError(InputProductError):
    """A file of the product does not have the checksum its ``manifest.safe`` lists (damaged or replaced)."""


class ConfigurationError(Sen2CoreError, ValueError):
    """Invalid configuration value or configuration file."""


class SettingRangeError(ConfigurationError):
    """A setting is outside its documented valid range (see :mod:`sen2core.settings`).

    The message names where the value came from (the scope, or the file), the setting
    and the range: ``L2A_GIPP.xml: Adj_Km = '-1' (adjacency_km) must be in [0, 5] km, got -1``.
    """

    def __init__(self, where: str, setting: str, value: object, valid: str, label: str | None = None,
                 raw: str | None = None) -> None:  # fmt: skip
        self.where, self.setting, self.value, self.valid = where, setting, value, valid
        self.label, self.raw = label, raw
        finite = "finite and " if isinstance(value, float) and not math.isfinite(value) else ""
        name = f"{label} = {raw!r} ({setting})" if label and raw is not None else (
            f"{label} ({setting})" if label else setting)  # fmt: skip
        super().__init__(f"{where}: {name} must be {finite}in {valid}, got {value!r}")

    def located(self, source: str, label: str | None = None, raw: str | None = None) -> SettingRangeError:
        """The same error, said of the file ``source`` and of the file's name for the setting."""
        return SettingRangeError(source, self.setting, self.value, self.valid, label, raw)

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (type(self), (self.where, self.setting, self.value, self.valid, self.label, self.raw))


class AuxDataError(Sen2CoreError, ValueError):
    """Auxiliary data (DEM, LUT, maps) is missing or inconsistent."""


class LUTError(AuxDataError):
    """The radiative-transfer look-up table is missing, corrupt or queried out of range."""


class RadiativeTransferError(Sen2CoreError, RuntimeError):
    """The 6S radiative-transfer code failed or produced unreadable output."""


class ProcessingTimeout(Sen2CoreError, TimeoutError):
    """A run exceeded its time budget (checked as each stage starts). Permanent: it would time out again."""


class TransientIOError(Sen2CoreError, OSError):
    """An I/O failure that may succeed when retried (network, busy storage)."""


class OutputError(Sen2CoreError, OSError):
    """An output product could not be written or committed."""


class ServiceError(Sen2CoreError, RuntimeError):
    """A service a command needs (such as the temporary Prefect server of ``sen2core flow``) did not start."""


class DiskFullError(OutputError):
    """The file system of the output (or of the band files kept beside it) has no space left.

    Permanent for the run: nothing is published and the run's temporary files are removed;
    the same run succeeds once space is freed.
    """

    def __init__(self, folder: object, problem: str) -> None:
        self.folder = str(folder)
        self.problem = problem
        super().__init__(f"{self.folder}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.folder, self.problem))


class Sen2CoreWarning(UserWarning):
    """Root of sen2core warnings."""


class MetadataWarning(Sen2CoreWarning):
    """Metadata is incomplete; a documented fallback was used."""
