"""Old multi-granule Level-1C products (before December 2016): each granule is a product of its own."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from sen2core.errors import InputProductError
from sen2core.io.read.model import granule_tiles
from sen2core.io.read.opening import open_l1c
from sen2core.pipeline import ProcessingConfig, process_product
from sen2core.synthetic import SynthConfig, synthesize
from tasks.models import L1CRef, ProcessingOptions
from tasks.product import skip_done

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_granules(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A product holding the granules of 32TQM and 32TQN (one datatake), and the 32TQN product alone.

    Made from two synthetic products: the second one's granule folder and its ``Granule``
    entry (image files) are added to the first, as ESA's old products listed every granule
    of a datatake segment in one ``MTD_MSIL1C.xml``.
    """
    root = tmp_path_factory.mktemp("multigranule")
    first = synthesize(SynthConfig(size=366, seed=31, tile="32TQM", date="2023-07-15", cloud_cover=10.0),
                       root / "a").product  # fmt: skip
    second = synthesize(SynthConfig(size=366, seed=32, tile="32TQN", date="2023-07-15", cloud_cover=10.0),
                        root / "b").product  # fmt: skip
    merged = root / "merged" / first.name
    shutil.copytree(first, merged)
    for granule in (second / "GRANULE").iterdir():
        shutil.copytree(granule, merged / "GRANULE" / granule.name)
    entry = re.search(r"<Granule .*?</Granule>", (second / "MTD_MSIL1C.xml").read_text(), flags=re.DOTALL)
    assert entry is not None
    mtd = merged / "MTD_MSIL1C.xml"
    before = mtd.read_bytes()
    mtd.write_text(mtd.read_text().replace("</Granule_List>", entry.group(0) + "</Granule_List>", 1))
    # The merged metadata gets its own checksum and size in manifest.safe, as ESA lists them.
    after = mtd.read_bytes()
    manifest = merged / "manifest.safe"
    text = manifest.read_text()
    old_digest, new_digest = hashlib.sha3_256(before).hexdigest().upper(), hashlib.sha3_256(after).hexdigest().upper()
    block = re.search(r'<byteStream[^>]*size="\d+"[^>]*>(?:(?!</byteStream>).)*' + old_digest, text, flags=re.DOTALL)
    assert block is not None
    fixed = re.sub(r'size="\d+"', f'size="{len(after)}"', block.group(0), count=1).replace(old_digest, new_digest)
    manifest.write_text(text.replace(block.group(0), fixed))
    return merged, second


def test_each_granule_is_processed_as_its_own_product(two_granules: tuple[Path, Path], tmp_path: Path) -> None:
    merged, alone = two_granules
    with pytest.warns(UserWarning, match="2 granules"):
        product = open_l1c(merged)
    assert granule_tiles(product) == ("32TQM", "32TQN")
    config = ProcessingConfig(resolution=60, granule="32TQN")
    result = process_product(merged, tmp_path / "l2a", config)
    reference = process_product(alone, tmp_path / "alone", ProcessingConfig(resolution=60))
    # Its own tile in the output path and in the Level-2A name.
    assert Path(result.output_dir).relative_to(tmp_path / "l2a").parts[0] == "32TQN"
    assert (
        "_T32TQN_" in result.l2a_id
        and result.l2a_id
        != process_product(merged, tmp_path / "l2a", ProcessingConfig(resolution=60, granule="32TQM")).l2a_id
    )
    for name in ("SCL_60m.tif", "B04_60m.tif", "AOT_60m.tif"):
        with rasterio.open(Path(result.output_dir) / name) as a, rasterio.open(Path(reference.output_dir) / name) as b:
            assert a.transform == b.transform and np.array_equal(a.read(), b.read()), name
    with pytest.raises(InputProductError, match="no granule of tile 33UUU"):
        process_product(merged, tmp_path / "l2a", ProcessingConfig(resolution=60, granule="33UUU"))


def test_skip_done_splits_a_product_into_its_granules(two_granules: tuple[Path, Path], tmp_path: Path) -> None:
    merged, _ = two_granules
    ref = L1CRef.from_href(str(merged))
    options = ProcessingOptions(resolution=60)
    first = skip_done.fn([ref], str(tmp_path), options)
    assert [(r.granule, r.tile, r.href) for r in first.todo] == [("32TQM", "32TQM", ref.href),
                                                                 ("32TQN", "32TQN", ref.href)]  # fmt: skip
    # One granule done: the next skip-done skips it and keeps the other.
    process_product(merged, tmp_path, ProcessingConfig(resolution=60, granule="32TQM"))
    again = skip_done.fn([ref], str(tmp_path), options)
    assert [r.granule for r in again.todo] == ["32TQN"]
    assert [(o.status, o.tile) for o in again.skipped] == [("skipped", "32TQM")]
