"""Golden files: one fixed synthetic product, processed in both layouts, against committed references.

The references under ``tests/data/golden/`` pin what a restructuring of the code must not change:
a SHA-256 of the decoded pixels of every raster (GeoTIFF, JPEG 2000 and the PNG quicklook) and the
normalised text of the metadata (STAC item, ``MTD_MSIL2A.xml``, ``MTD_TL.xml``, the run summary).
Pixels are hashed rather than files so that the check holds across GDAL builds that lay out the
same pixels differently; the file checksums in the STAC item are left out for the same reason.

Run ``pytest tests/end_to_end/test_golden.py --update-golden`` after a change that is meant to alter the
product, and review the diff of ``tests/data/golden/`` in the commit.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.synthetic import SynthConfig, synthesize

GOLDEN = Path(__file__).parents[1] / "data" / "golden"

# A scene that reaches every branch of the classification and correction: physical clouds with
# soft edges and shadows, thin cirrus, snow, water and relief.
SCENE = SynthConfig(
    size=366,
    seed=3,
    tile="32TQM",
    date="2023-07-15",
    cloud_cover=15.0,
    cirrus=5.0,
    snow=5.0,
    dem=True,
    cloud_model="physical",
)

# The run's own clock: generation times and the datastrip/tile ids built from them. The synthetic
# acquisition is in 2023, so any stamp from 2024 on is the processing time.
_RUN_STAMP = re.compile(r"20(2[4-9]|[3-9]\d)-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?")
_RUN_ID_STAMP = re.compile(r"20(2[4-9]|[3-9]\d)\d{4}T\d{6}")
_VOLATILE_KEYS = {"created", "updated", "processing:datetime", "file:checksum", "file:size", "seconds"}


def _normalise_text(text: str) -> str:
    return _RUN_ID_STAMP.sub("<RUN-TIME>", _RUN_STAMP.sub("<RUN-TIME>", text))


def _normalise_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("<VOLATILE>" if k in _VOLATILE_KEYS else _normalise_json(v)) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_normalise_json(v) for v in value]
    if isinstance(value, str):
        return _normalise_text(value)
    return value


def _pixel_digests(folder: Path) -> dict[str, str]:
    digests = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix in {".tif", ".jp2", ".png"}):
        with warnings.catch_warnings():
            # The PNG quicklook carries no georeferencing by design.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as ds:
                data = ds.read()
        h = hashlib.sha256(f"{data.dtype.str}{data.shape}".encode())
        h.update(np.ascontiguousarray(data).tobytes())
        digests[_normalise_text(path.relative_to(folder).as_posix())] = h.hexdigest()
    return digests


def _documents(folder: Path) -> dict[str, str]:
    docs: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        name = _normalise_text(path.relative_to(folder).as_posix())
        if path.suffix == ".json":
            docs[name] = json.dumps(_normalise_json(json.loads(path.read_text())), indent=1, sort_keys=True) + "\n"
        elif path.name in {"MTD_MSIL2A.xml", "MTD_TL.xml"}:
            docs[name] = _normalise_text(path.read_text())
    return docs


@pytest.fixture(scope="module")
def golden_products(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("golden")
    l1c = synthesize(SCENE, root / "l1c").product
    return {
        fmt: Path(process_product(l1c, root / fmt, ProcessingConfig(format=fmt)).output_dir) for fmt in ("cog", "safe")
    }


def _check(name: str, actual: str, update: bool) -> None:
    path = GOLDEN / name
    if update:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    assert path.exists(), f"no golden file {path}; run pytest with --update-golden"
    expected = path.read_text()
    if actual != expected:
        import difflib

        diff = "".join(
            list(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "golden", "now"))[:80]
        )
        pytest.fail(f"{name} differs from its golden file:\n{diff}")


@pytest.mark.parametrize("fmt", ["cog", "safe"])
def test_rasters_match_golden_pixels(
    golden_products: dict[str, Path], fmt: str, request: pytest.FixtureRequest
) -> None:
    digests = _pixel_digests(golden_products[fmt])
    assert len(digests) >= 20, digests
    _check(
        f"{fmt}/pixels.json",
        json.dumps(digests, indent=1, sort_keys=True) + "\n",
        request.config.getoption("--update-golden"),
    )


@pytest.mark.parametrize("fmt", ["cog", "safe"])
def test_metadata_matches_golden_files(
    golden_products: dict[str, Path], fmt: str, request: pytest.FixtureRequest
) -> None:
    docs = _documents(golden_products[fmt])
    assert any(n.endswith("MTD_MSIL2A.xml") for n in docs), sorted(docs)
    update = request.config.getoption("--update-golden")
    for name, text in docs.items():
        flat = name.replace("/", "__")
        _check(f"{fmt}/{flat}", text, update)
    if not update:
        committed = {p.name for p in (GOLDEN / fmt).iterdir()} - {"pixels.json"}
        assert committed == {n.replace("/", "__") for n in docs}, "files added to or missing from the product"


def test_normalisation_keeps_the_acquisition_time() -> None:
    """Only the run's clock is masked: the 2023 sensing time and the L1C ids stay in the golden text."""
    text = "S2A_MSIL2A_20230715T093710 2023-07-15T09:43:33.609000Z 2026-12-03T21:57:27.879659Z 20261203T215730"
    assert _normalise_text(text) == "S2A_MSIL2A_20230715T093710 2023-07-15T09:43:33.609000Z <RUN-TIME> <RUN-TIME>"
