"""L1C inputs checked before processing: real T31TCJ products with band crops, quality masks, manifest checksums."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sen2core.cli import main

DATA = Path(__file__).parent / "data" / "l1c-T31TCJ-N0510"
T31TCJ = {
    "S2A": DATA / "S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244.SAFE",
    "S2B": DATA / "S2B_MSIL1C_20240305T104819_N0510_R051_T31TCJ_20240305T125347.SAFE",
}


# ---------------------------------------------------------------- crops of real products (#15 item 5)


@pytest.mark.parametrize("unit", sorted(T31TCJ))
def test_info_reads_the_cropped_products(unit: str) -> None:
    result = CliRunner().invoke(main, ["info", "--json", str(T31TCJ[unit])])
    assert result.exit_code == 0, result.output
    assert "T31TCJ" in result.stdout and f"Sentinel-2{unit[-1]}" in result.stdout


@pytest.mark.parametrize("unit", sorted(T31TCJ))
def test_process_refuses_the_crops_naming_the_band(unit: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["process", "-o", str(out), str(T31TCJ[unit])])
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("sen2core: error:")]
    assert len(errors) == 1 and "Traceback" not in result.output
    # The first band of the plan (B01, 60 m) is named with both sizes.
    assert errors[0].endswith("_B01.jp2 is 30x30 px, but MTD_TL.xml declares 1830x1830 px at 60 m: "
                              "a crop or another file, not the band of this tile")  # fmt: skip
    assert f"{T31TCJ[unit]}: band B01: GRANULE/" in errors[0]
    assert not out.exists() or not any(out.rglob("*"))  # nothing made
