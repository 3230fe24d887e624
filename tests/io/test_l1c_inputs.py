"""L1C inputs checked before processing: real T31TCJ products with band crops, quality masks, manifest checksums."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from sen2core.cli import main

DATA = Path(__file__).parents[1] / "data" / "l1c-T31TCJ-N0510"
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
    from sen2core.io.read.manifest import parse_manifest

    m = parse_manifest((T31TCJ["S2A"] / "manifest.safe").read_bytes(), product="S2A")
    assert len(m.checksums) == 59
    digest = "838044850439f0b94037b105b4ba7fa920b5d130795bb9a8648ba443fd7d11ad"  # as listed, in lower case
    assert m.checksums["MTD_MSIL1C.xml"] == ("SHA3-256", digest)


@pytest.mark.parametrize("unit", sorted(T31TCJ))
def test_real_metadata_files_match_their_manifest(unit: str) -> None:
    from sen2core.io.read.integrity import verify_checksums
    from sen2core.io.read.opening import open_product

    p = open_product(T31TCJ[unit])
    files = [p.user_metadata.source, p.tile_metadata.source, "GRANULE/not-listed.xml"]
    done = verify_checksums(p.store, p.href, p.manifest.checksums, files)
    assert (done.files, done.algorithms, done.unchecked) == (2, ("SHA3-256",), ("GRANULE/not-listed.xml",))
    assert done.bytes == sum(p.store.size(f) for f in files[:2])


def test_cropped_band_fails_its_checksum() -> None:
    from sen2core.errors import ChecksumError
    from sen2core.io.read.integrity import verify_checksums
    from sen2core.io.read.opening import open_product

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

    from sen2core.io.read.manifest import parse_manifest

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
    # MTD_MSIL1C.xml, MTD_TL.xml, the 13 bands, their 13 quality masks and the cloud mask, all listed with
    # SHA3-256 digests by the generator.
    assert (checked["files"], checked["algorithms"], checked["unchecked"]) == (29, ["SHA3-256"], [])
    assert checked["bytes"] > 0


# ---------------------------------------------------------------- L1C quality masks (#15 item 4)


def _mask_counts(product: str, band: str) -> list[int]:
    """Flagged pixels of layers 3, 5, 7, 8 of a real full-tile mask, read as the decode stage reads it."""
    import numpy as np

    from sen2core.io.read.bands import read_layers
    from sen2core.io.read.opening import open_product
    from sen2core.kernels.quality import QUALITY_LAYERS, split_quality

    p = open_product(T31TCJ[product])
    rel = p.quality_mask_file(band)
    assert rel is not None
    total = np.zeros(4, dtype=np.int64)
    n = 5490
    for r in range(0, n, 2048):
        layers = read_layers(p.store.gdal_path(rel), tuple(QUALITY_LAYERS), r, min(n, r + 2048), 0, n, product=p.href,
                             what=band, display=rel, gdal_options=p.gdal_options)  # fmt: skip
        total += split_quality(layers)[2]
    return total.tolist()


@pytest.mark.slow
def test_real_quality_masks_read_layer_by_layer() -> None:
    # Counted independently with rasterio over all 8 layers: S2A B11 flags 7 px in layer 7 (cross-talk) and 4 in
    # layer 8 (saturated); S2B B12 flags 1121 defective px (layer 5); no layer 3 anywhere.
    assert _mask_counts("S2A", "B11") == [0, 0, 7, 4]
    assert _mask_counts("S2B", "B12") == [0, 1121, 0, 0]


def test_quality_layers_split_into_no_data_and_class_1() -> None:
    import numpy as np

    from sen2core.kernels.quality import split_quality

    layers = np.zeros((4, 2, 3), dtype=np.uint8)
    layers[0, 0, 0] = 1  # lost
    layers[1, 0, 0] = 1  # also defective: no data wins
    layers[1, 0, 1] = 1  # defective
    layers[2, 1, 1] = 1  # partially corrected cross-talk: usable
    layers[3, 1, 2] = 1  # saturated
    lost, bad, counts = split_quality(layers)
    assert lost.tolist() == [[True, False, False], [False, False, False]]
    assert bad.tolist() == [[False, True, False], [False, False, True]]
    assert counts.tolist() == [1, 2, 1, 1]


def test_flags_map_onto_coarser_and_finer_grids() -> None:
    import numpy as np

    from sen2core.kernels.quality import flags_on_grid

    out20 = np.zeros((3, 3), dtype=bool)
    flags_on_grid(np.array([1, 5]), np.array([3, 0]), 10, 20, out20)  # 10 m pixels -> their 20 m pixels
    assert np.argwhere(out20).tolist() == [[0, 1], [2, 0]]
    out20 = np.zeros((6, 6), dtype=bool)
    flags_on_grid(np.array([1]), np.array([0]), 60, 20, out20)  # a 60 m pixel covers 3 x 3 pixels at 20 m
    assert np.argwhere(out20).tolist() == [[r, c] for r in (3, 4, 5) for c in (0, 1, 2)]


def test_real_l1c_cloud_mask_against_an_scl() -> None:
    import dask.array as da
    import numpy as np
    import rasterio

    from sen2core.io.read.bands import cloud_mask_table
    from sen2core.io.read.opening import open_product
    from sen2core.kernels.quality import agreement_summary

    p = open_product(T31TCJ["S2B"])
    rel = p.cloud_mask_file()
    assert rel is not None
    with rasterio.open(p.store.gdal_path(rel)) as ds:
        esa = ds.read()
    cloud = (esa[0] == 1) | (esa[1] == 1)
    snow = (esa[2] == 1) & ~cloud
    # An SCL (20 m, chunks not aligned with anything) that calls cloud the left half of the tile.
    scl = np.full((5490, 5490), 4, dtype=np.uint8)
    scl[:, :2745] = 9
    table = cloud_mask_table(p.store.gdal_path(rel), da.from_array(scl, chunks=1000), 20, product=p.href,
                             display=rel, gdal_options=p.gdal_options).compute()  # fmt: skip
    left = np.zeros((1830, 1830), dtype=bool)
    left[:, :915] = True  # 2745 px at 20 m = 915 px at 60 m
    nine = 9  # 20 m pixels per 60 m pixel
    expected = np.array([
        [np.sum(~cloud & ~snow & ~left), np.sum(~cloud & ~snow & left), 0],
        [np.sum(cloud & ~left), np.sum(cloud & left), 0],
        [np.sum(snow & ~left), np.sum(snow & left), 0],
    ]) * nine  # fmt: skip
    assert table.tolist() == expected.tolist()
    assert table[1].sum() > 0  # the real mask flags some cloud
    s = agreement_summary(table)
    assert s["pixels_compared"] == 5490 * 5490
    assert s["scl_cloud_percentage"] == pytest.approx(50.0, abs=1e-3)
    assert s["l1c_cloud_percentage"] == pytest.approx(100.0 * cloud.sum() / cloud.size, abs=1e-3)


@pytest.fixture(scope="module")
def flagged_l1c(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    import json

    from sen2core.synthetic import SynthConfig, synthesize

    result = synthesize(SynthConfig(size=366, seed=5, tile="32TQM", date="2023-07-15", cloud_cover=10.0, defective=6,
                                    lost_packets=4), tmp_path_factory.mktemp("flagged-l1c"))  # fmt: skip
    return result.product, json.loads((result.truth / "truth.json").read_text())


def _read(folder: Path, pattern: str):
    import rasterio

    with rasterio.open(next(folder.rglob(pattern))) as ds:
        return ds.read(1)


@pytest.mark.slow
def test_quality_masks_give_class_1_and_no_data(flagged_l1c: tuple[Path, dict], tmp_path: Path) -> None:
    import json

    from sen2core.pipeline import process_product
    from sen2core.run import ProcessingConfig

    product, truth = flagged_l1c
    defective, lost = truth["defective_pixels_10m"], truth["lost_packet_pixels_10m"]
    assert len(defective) == 6 and len(lost) == 4
    result = process_product(product, tmp_path / "out", ProcessingConfig(chunk_m=1800.0))
    out = Path(result.output_dir)
    scl20, b04 = _read(out, "SCL_20m.tif"), _read(out, "B04_10m.tif")
    for r, c in defective:
        assert scl20[r // 2, c // 2] == 1, (r, c)
        assert b04[r, c] > 0  # class 1 keeps its reflectance
    for r, c in lost:
        assert scl20[r // 2, c // 2] == 0, (r, c)
        assert b04[r, c] == 0  # no data in the BOA band
    summary = json.loads((out / "L2A_SUMMARY.json").read_text())
    assert summary["l1c_quality"]["source"] == "MSK_QUALIT"
    for band in ("B04", "B8A", "B01"):
        # Two random pixels can share a 20 m or 60 m pixel: at most 6 (or 4) native pixels.
        counts = summary["l1c_quality"]["flagged_pixels"][band]
        assert (0 < counts["defective"] <= 6, 0 < counts["msi_lost"] <= 4, counts["saturated"]) == (True, True, 0)
    assert summary["l1c_quality"]["flagged_pixels"]["B04"] == {
        "msi_lost": 4,
        "defective": 6,
        "partially_corrected": 0,
        "saturated": 0,
    }
    agreement = summary["l1c_cloud_mask"]
    assert agreement["source"] == "MSK_CLASSI_B00" and agreement["agreement_percentage"] > 90.0
    assert summary["input_checksums"]["files"] == 15 + 14  # + 13 quality masks and the cloud mask


@pytest.mark.slow
def test_quality_masks_the_same_by_tiles(flagged_l1c: tuple[Path, dict], tmp_path: Path) -> None:
    import numpy as np
    from conftest import read_rasters

    from sen2core.pipeline import process_product
    from sen2core.run import ProcessingConfig

    product, _ = flagged_l1c
    config = ProcessingConfig(chunk_m=1800.0, resolution=20)
    tiled = process_product(product, tmp_path / "tiles", config, tile_blocks=2)
    whole = process_product(product, tmp_path / "whole", config)
    a, b = read_rasters(Path(tiled.output_dir)), read_rasters(Path(whole.output_dir))
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert (a["SCL_20m.tif"] == 1).any() and tiled.class_percentages == whole.class_percentages


@pytest.mark.slow
def test_products_without_masks_keep_their_output(flagged_l1c: tuple[Path, dict], tmp_path: Path) -> None:
    import shutil

    from sen2core.config import SceneClassificationConfig
    from sen2core.pipeline import process_product
    from sen2core.run import ProcessingConfig

    product, truth = flagged_l1c
    bare = tmp_path / product.name
    shutil.copytree(product, bare)
    for mask in bare.rglob("QI_DATA/MSK_*.jp2"):
        mask.unlink()
    config = ProcessingConfig(sc_only=True, resolution=20)
    without = process_product(bare, tmp_path / "bare", config)
    off = process_product(
        product,
        tmp_path / "off",
        ProcessingConfig(
            sc_only=True, resolution=20, classification=SceneClassificationConfig(handle_l1c_quality_mask=False)
        ),
    )
    scl_bare, scl_off = _read(Path(without.output_dir), "SCL_20m.tif"), _read(Path(off.output_dir), "SCL_20m.tif")
    assert (scl_bare == scl_off).all() and not (scl_bare == 1).any()
    r, c = truth["lost_packet_pixels_10m"][0]
    assert scl_bare[r // 2, c // 2] != 0


@pytest.mark.slow
def test_flow_options_carry_no_verify() -> None:
    from tasks.models import ProcessingOptions
    from tasks.product import to_config

    assert to_config(ProcessingOptions()).verify_checksums is True
    assert to_config(ProcessingOptions(verify_checksums=False)).verify_checksums is False
    for command in ("product", "ingest", "backfill"):
        shown = CliRunner().invoke(main, ["flow", command, "--help"])
        assert shown.exit_code == 0 and "--no-verify" in shown.output, command
