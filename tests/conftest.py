"""Shared test fixtures: paths to the committed test data and a SAFE skeleton builder.

Test data (``tests/data``, provenance in ``tests/data/SOURCES.md``) holds real
Sentinel-2 metadata files and the 900 m AWS sample. Band rasters of SAFE products are
never committed: :class:`SafeBuilder` writes tiny JPEG 2000 files with rasterio into a
temporary directory, next to copies of the real metadata.
"""

from __future__ import annotations

import re
import shutil
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from sen2core.errors import MetadataWarning
from sen2core.io.metadata import BAND_IDS, NOMINAL_RESOLUTION
from sen2core.io.product import Product, open_product

DATA = Path(__file__).parent / "data"
METADATA = DATA / "metadata"
AWS_900M = DATA / "l1c-T19UDP-20170729-900m"

# The L1C SAFE used as a template for synthetic products (PB 05.09, offsets -1000).
_TEMPLATE = METADATA / "gdal-autotest-sentinel2/fake_l1c_processing_baseline_5_09" / (
    "S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234.SAFE"
)
_TEMPLATE_GRANULE = "GRANULE/L1C_T34UCF_A033753_20230823T095553"
# Real angle grids (with NaN outside detector footprints) spliced into the template.
_ANGLES_SOURCE = METADATA / "stactools-sentinel2" / (
    "S2A_MSIL1C_20210908T042701_N0301_R133_T46RER_20210908T070248.SAFE"
) / "GRANULE/L1C_T46RER_A032448_20210908T043714/MTD_TL.xml"


def metadata_product_paths() -> list[Path]:
    """Every product of the metadata fixtures, as the path ``open_product`` takes."""
    roots: list[Path] = []
    for mtd in sorted(METADATA.rglob("*")):
        if not mtd.is_file():
            continue
        is_root = re.match(r"MTD_MSIL(1C|2A)\.xml$", mtd.name, re.IGNORECASE) or mtd.name == "tileInfo.json"
        if is_root and mtd.parent not in roots:
            roots.append(mtd.parent)
    return roots


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "metadata_product" in metafunc.fixturenames:
        paths = metadata_product_paths()
        metafunc.parametrize(
            "metadata_product", paths, ids=[p.relative_to(METADATA).as_posix().split("/")[1][:60] for p in paths]
        )


def open_recording(href: Any, **kwargs: Any) -> Product:
    """Open a product, checking that each recorded warning was emitted as MetadataWarning
    and that nothing else warned."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        product = open_product(href, **kwargs)
    emitted = [str(w.message) for w in caught if issubclass(w.category, MetadataWarning)]
    assert emitted == [f"{product.product_id}: {m}" for m in product.warnings]
    others = [f"{w.category.__name__}: {w.message}" for w in caught if not issubclass(w.category, MetadataWarning)]
    assert not others, others
    return product


@pytest.fixture(scope="session")
def open_s2() -> Callable[..., Product]:
    """``open_product`` that records and checks its MetadataWarnings (filterwarnings=error safe)."""
    return open_recording


def synthetic_dn(band: str, shape: tuple[int, int]) -> np.ndarray:
    """Deterministic DN pattern of a synthetic band: a gradient, with a no-data (0) left strip."""
    rows, cols = np.indices(shape)
    k = BAND_IDS.index(band)
    dn = (1000 + (rows * 7 + cols * 3 + k * 100) % 9000).astype(np.uint16)
    dn[:, : shape[1] // 20 + 1] = 0
    return dn


@pytest.fixture(scope="session")
def band_pattern() -> Callable[[str, tuple[int, int]], np.ndarray]:
    """The DN pattern :class:`SafeBuilder` writes for a band."""
    return synthetic_dn


@pytest.fixture(scope="session")
def expected_toa() -> Callable[[str, tuple[int, int], float], np.ndarray]:
    """Reference TOA reflectance of a synthetic band: (DN + offset) / 10000, NaN where DN is 0."""

    def compute(band: str, shape: tuple[int, int], offset: float) -> np.ndarray:
        dn = synthetic_dn(band, shape).astype(np.float32)
        out = (dn + np.float32(offset)) / np.float32(10000)
        out[dn == 0] = np.nan
        return out

    return compute


def write_band(path: Path, data: np.ndarray, *, ulx: float, uly: float, res: float, epsg: int = 32634) -> None:
    """Write a lossless single-band uint16 JPEG 2000 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="JP2OpenJPEG", width=data.shape[1], height=data.shape[0], count=1, dtype="uint16",
        crs=f"EPSG:{epsg}", transform=from_origin(ulx, uly, res, res), QUALITY=100, REVERSIBLE="YES",
    ) as ds:
        ds.write(data, 1)


class SafeBuilder:
    """Builds Level-1C SAFE skeletons from the committed real metadata, with tiny bands."""

    def l1c(
        self,
        dest: Path,
        *,
        size10: int = 366,
        baseline: str = "05.09",
        offsets: bool = True,
        angles: bool = True,
        bands: Sequence[str] = BAND_IDS,
        manifest: bool = False,
        name: str = "S2B_MSIL1C_20230823T095559_N0509_R122_T34UCF_20230823T120234.SAFE",
    ) -> Path:
        """Write a SAFE directory under ``dest`` and return its path.

        ``size10`` is the 10 m size in pixels (a multiple of 6); the 20 m and 60 m
        grids follow. ``offsets=False`` removes ``Radiometric_Offset_List`` (as before
        PB 04.00); ``angles=False`` keeps the template's empty ``Tile_Angles``.
        """
        if size10 % 6:
            raise ValueError("size10 must be a multiple of 6")
        safe = dest / name
        safe.mkdir(parents=True)
        mtd = (_TEMPLATE / "MTD_MSIL1C.xml").read_text(encoding="utf-8")
        mtd = mtd.replace("<PROCESSING_BASELINE>05.09<", f"<PROCESSING_BASELINE>{baseline}<")
        if not offsets:
            mtd = re.sub(r"<Radiometric_Offset_List>.*?</Radiometric_Offset_List>", "", mtd, flags=re.DOTALL)
        (safe / "MTD_MSIL1C.xml").write_text(mtd, encoding="utf-8")

        tl = (_TEMPLATE / _TEMPLATE_GRANULE / "MTD_TL.xml").read_text(encoding="utf-8")
        sizes = {"10980": size10, "5490": size10 // 2, "1830": size10 // 6}
        for old, new in sizes.items():
            tl = tl.replace(f"<NROWS>{old}</NROWS>", f"<NROWS>{new}</NROWS>")
            tl = tl.replace(f"<NCOLS>{old}</NCOLS>", f"<NCOLS>{new}</NCOLS>")
        if angles:
            src = _ANGLES_SOURCE.read_text(encoding="utf-8")
            block = re.search(r"<Tile_Angles.*?</Tile_Angles>", src, flags=re.DOTALL)
            assert block is not None
            tl = re.sub(r"<Tile_Angles.*?</Tile_Angles>", lambda _: block.group(0), tl, flags=re.DOTALL)
        granule = safe / _TEMPLATE_GRANULE
        granule.mkdir(parents=True)
        (granule / "MTD_TL.xml").write_text(tl, encoding="utf-8")

        files: dict[str, int] = {}
        for band in bands:
            res = NOMINAL_RESOLUTION[band]
            n = size10 * 10 // res
            rel = f"{_TEMPLATE_GRANULE}/IMG_DATA/T34UCF_20230823T095559_{band}.jp2"
            write_band(safe / rel, synthetic_dn(band, (n, n)), ulx=300000.0, uly=6100020.0, res=float(res))
            files[rel] = (safe / rel).stat().st_size
        if manifest:
            locations = "\n".join(
                f'<dataObject ID="{i}"><byteStream mimeType="application/octet-stream" size="{size}">'
                f'<fileLocation href="./{rel}" locatorType="URL"/></byteStream></dataObject>'
                for i, (rel, size) in enumerate(files.items())
            )
            (safe / "manifest.safe").write_text(
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                '<xfdu:XFDU xmlns:xfdu="urn:ccsds:schema:xfdu:1" '
                'version="esa/safe/sentinel/1.1/sentinel-2/msi/archive_l1c_user_product">'
                f"<dataObjectSection>{locations}</dataObjectSection></xfdu:XFDU>\n",
                encoding="utf-8",
            )
        return safe

    @staticmethod
    def zip(safe: Path, archive: Path) -> Path:
        """Zip a SAFE directory as ``X.SAFE/...`` members (the layout ESA distributes)."""
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(safe.rglob("*")):
                if f.is_file():
                    zf.write(f, f"{safe.name}/{f.relative_to(safe).as_posix()}")
        return archive


@pytest.fixture(scope="session")
def safe_builder() -> SafeBuilder:
    """Factory of synthetic SAFE products."""
    return SafeBuilder()


@pytest.fixture(scope="session")
def l1c_safe(tmp_path_factory: pytest.TempPathFactory, safe_builder: SafeBuilder) -> Path:
    """A read-only synthetic L1C SAFE: 366 px at 10 m, PB 05.09, real angle grids. Do not modify."""
    return safe_builder.l1c(tmp_path_factory.mktemp("l1c"))


@pytest.fixture()
def aws_900m(tmp_path: Path) -> Iterator[Path]:
    """A writable copy of the 900 m AWS tile folder."""
    dest = tmp_path / AWS_900M.name
    shutil.copytree(AWS_900M, dest)
    yield dest
