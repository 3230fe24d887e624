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


# ---------------------------------------------------------------- manifest checksums (#16 item 2)


def test_manifest_checksums_parsed_from_real_products() -> None:
    from sen2core.io.manifest import parse_manifest

    m = parse_manifest((T31TCJ["S2A"] / "manifest.safe").read_bytes(), product="S2A")
    assert len(m.checksums) == 59
    assert m.checksums["MTD_MSIL1C.xml"] == ("SHA3-256", "838044850439f0b94037b105b4ba7fa920b5d130795bb9a8648ba443fd7d11ad")


@pytest.mark.parametrize("unit", sorted(T31TCJ))
def test_real_metadata_files_match_their_manifest(unit: str) -> None:
    from sen2core.io.integrity import verify_checksums
    from sen2core.io.product import open_product

    p = open_product(T31TCJ[unit])
    files = [p.user_metadata.source, p.tile_metadata.source, "GRANULE/not-listed.xml"]
    done = verify_checksums(p.store, p.href, p.manifest.checksums, files)
    assert (done.files, done.algorithms, done.unchecked) == (2, ("SHA3-256",), ("GRANULE/not-listed.xml",))
    assert done.bytes == sum(p.store.size(f) for f in files[:2])


def test_cropped_band_fails_its_checksum() -> None:
    from sen2core.errors import ChecksumError
    from sen2core.io.integrity import verify_checksums
    from sen2core.io.product import open_product

    p = open_product(T31TCJ["S2A"])
    band = p.band_files["B04"].path
    with pytest.raises(ChecksumError) as info:
        verify_checksums(p.store, p.href, p.manifest.checksums, [band])
    expected = p.manifest.checksums[band][1]
    assert str(info.value).startswith(f"{p.href}: {band}: SHA3-256 checksum mismatch: manifest.safe lists {expected}, "
                                      "the file gives ")  # fmt: skip


@pytest.fixture(scope="module")
def small_l1c(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sen2core.synthetic import SynthConfig, synthesize

    return synthesize(SynthConfig(size=366, seed=3, tile="32TQM", date="2023-07-15", cloud_cover=10.0),
                      tmp_path_factory.mktemp("small-l1c")).product  # fmt: skip


def _flip_a_byte(src: Path, dest: Path, band: str) -> tuple[Path, str]:
    import shutil

    copy = dest / src.name
    shutil.copytree(src, copy)
    target = next(copy.rglob(f"IMG_DATA/*_{band}.jp2"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only the checksum can tell
    target.write_bytes(bytes(data))
    return copy, target.relative_to(copy).as_posix()


def test_synthetic_manifest_lists_real_sha3_digests(small_l1c: Path) -> None:
    import hashlib

    from sen2core.io.manifest import parse_manifest

    m = parse_manifest((small_l1c / "manifest.safe").read_bytes(), product=str(small_l1c))
    band = next(rel for rel in m.checksums if rel.endswith("_B04.jp2"))
    assert m.checksums[band] == ("SHA3-256", hashlib.sha3_256((small_l1c / band).read_bytes()).hexdigest())


def test_flipped_bit_in_a_band_is_refused_and_nothing_published(small_l1c: Path, tmp_path: Path) -> None:
    from sen2core.errors import ChecksumError
    from sen2core.pipeline import process_product

    product, rel = _flip_a_byte(small_l1c, tmp_path, "B11")
    out = tmp_path / "out"
    with pytest.raises(ChecksumError, match=rf"{rel}: SHA3-256 checksum mismatch: manifest.safe lists [0-9a-f]{{64}}, "
                                            r"the file gives [0-9a-f]{64}"):  # fmt: skip
        process_product(product, out)
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


def test_flipped_bit_through_the_cli_and_no_verify(small_l1c: Path, tmp_path: Path) -> None:
    import json

    product, rel = _flip_a_byte(small_l1c, tmp_path, "B11")
    out = tmp_path / "out"
    refused = CliRunner().invoke(main, ["process", "--sc-only", "-o", str(out), str(product)])
    errors = [line for line in refused.stderr.splitlines() if line.startswith("sen2core: error:")]
    assert refused.exit_code == 1 and len(errors) == 1 and rel in errors[0] and "checksum mismatch" in errors[0]
    trusted = CliRunner().invoke(main, ["process", "--sc-only", "--no-verify", "--json", "-o", str(out), str(product)])
    assert trusted.exit_code == 0, trusted.output
    summary = json.loads((Path(json.loads(trusted.stdout)["output_dir"]) / "L2A_SUMMARY.json").read_text())
    assert summary["input_checksums"]["skipped"] == "verify_checksums is off (--no-verify)"


def test_summary_records_the_files_verified(small_l1c: Path, tmp_path: Path) -> None:
    import json

    from sen2core.pipeline import process_product
    from sen2core.run import ProcessingConfig

    result = process_product(small_l1c, tmp_path / "out", ProcessingConfig(sc_only=True))
    checked = json.loads((Path(result.output_dir) / "L2A_SUMMARY.json").read_text())["input_checksums"]
    # MTD_MSIL1C.xml, MTD_TL.xml and the 13 bands, all listed with SHA3-256 digests by the generator.
    assert (checked["files"], checked["algorithms"], checked["unchecked"]) == (15, ["SHA3-256"], [])
    assert checked["bytes"] > 0
