"""Bad input gives one clear error of the sen2core hierarchy, through the API and the CLI."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sen2core.cli import main
from sen2core.errors import BandReadError, InputProductError, MetadataError, MetadataWarning, Sen2CoreError
from sen2core.io.read.opening import open_l1c, open_product
from sen2core.io.read.product import Product

DATA = Path(__file__).parents[1] / "data"
L2A_509 = (
    DATA
    / "metadata/gdal-autotest-sentinel2/fake_l2a_processing_baseline_5_09"
    / ("S2B_MSIL2A_20230823T095559_N0509_R122_T34UCF_20230823T124759.SAFE")
)
GRANULE = "GRANULE/L1C_T34UCF_A033753_20230823T095553"
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<n1:Level-1C_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd">
<n1:General_Info><Product_Info><PRODUCT_URI>&lol9;</PRODUCT_URI></Product_Info></n1:General_Info>
</n1:Level-1C_User_Product>
"""


def _xxe(target: Path, root: str = "n1:Level-1C_User_Product") -> str:
    return f"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file://{target}">]>
<{root} xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/x.xsd">
<n1:General_Info><Product_Info><PRODUCT_URI>&xxe;</PRODUCT_URI></Product_Info></n1:General_Info>
</{root.split()[0]}>
"""


def _open_quiet(href: Path) -> Product:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        return open_product(href)


# Each case builds a bad product in tmp_path and returns (path, expected error, message part).
Case = Callable[[Path, object], tuple[Path, type[Sen2CoreError], str]]


def _missing(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    return tmp / "nowhere.SAFE", InputProductError, "no such file or directory"


def _empty_dir(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    (tmp / "empty").mkdir()
    return tmp / "empty", InputProductError, "directory is empty"


def _random_file(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    f = tmp / "notes.txt"
    f.write_text("hello\n")
    return f, InputProductError, "not a Sentinel-2 product"


def _bad_zip(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    f = tmp / "S2A_MSIL1C_X.SAFE.zip"
    f.write_bytes(np.random.default_rng(1).bytes(4096))
    return f, InputProductError, "not a readable zip archive"


def _truncated_zip(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    safe = b.l1c(tmp / "src", bands=("B02",))
    archive = b.zip(safe, tmp / "p.SAFE.zip")
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    return archive, InputProductError, "not a readable zip archive"


def _unrelated_zip(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    f = tmp / "photos.zip"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("a/b.txt", "x")
    return f, InputProductError, "holds no Sentinel-2 metadata"


def _no_mtd(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    safe = b.l1c(tmp, bands=(), manifest=True)
    (safe / "MTD_MSIL1C.xml").unlink()
    return safe, MetadataError, "missing product metadata: no MTD_MSIL1C.xml or MTD_MSIL2A.xml"


def _truncated_mtd(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    safe = b.l1c(tmp, bands=())
    mtd = safe / "MTD_MSIL1C.xml"
    mtd.write_bytes(mtd.read_bytes()[:5000])
    return safe, MetadataError, "MTD_MSIL1C.xml: malformed or truncated XML"


def _billion_laughs(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    safe = b.l1c(tmp, bands=())
    (safe / "MTD_MSIL1C.xml").write_text(BILLION_LAUGHS)
    return safe, MetadataError, "unsafe XML refused"


def _xxe_product(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    secret = tmp / "secret.txt"
    secret.write_text("TOPSECRET-1234")
    safe = b.l1c(tmp, bands=())
    (safe / "MTD_MSIL1C.xml").write_text(_xxe(secret))
    return safe, MetadataError, "unsafe XML refused"


def _xxe_tile(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    secret = tmp / "secret.txt"
    secret.write_text("TOPSECRET-1234")
    safe = b.l1c(tmp, bands=())
    (safe / GRANULE / "MTD_TL.xml").write_text(_xxe(secret, "n1:Level-1C_Tile_ID"))
    return safe, MetadataError, "MTD_TL.xml: unsafe XML refused"


def _truncated_tile(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    safe = b.l1c(tmp, bands=())
    tl = safe / GRANULE / "MTD_TL.xml"
    tl.write_bytes(tl.read_bytes()[:3000])
    return safe, MetadataError, "MTD_TL.xml: malformed or truncated XML"


def _wrong_root(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    d = tmp / "X.SAFE"
    d.mkdir()
    (d / "MTD_MSIL1C.xml").write_text("<?xml version='1.0'?><kml><Document/></kml>")
    return d, MetadataError, "not Sentinel-2 user-product metadata (root element <kml>)"


def _bad_tileinfo(tmp: Path, b: object) -> tuple[Path, type[Sen2CoreError], str]:
    d = tmp / "tile"
    shutil.copytree(DATA / "l1c-T19UDP-20170729-900m", d)
    (d / "tileInfo.json").write_text('{"path": "tiles/19/U/DP", "timestamp": ')
    return d, MetadataError, "tileInfo.json: malformed or truncated JSON"


METADATA_CASES: dict[str, Case] = {
    "missing": _missing,
    "empty-folder": _empty_dir,
    "random-file": _random_file,
    "random-bytes-zip": _bad_zip,
    "truncated-zip": _truncated_zip,
    "unrelated-zip": _unrelated_zip,
    "no-mtd": _no_mtd,
    "truncated-mtd": _truncated_mtd,
    "billion-laughs": _billion_laughs,
    "xxe-mtd": _xxe_product,
    "xxe-mtd-tl": _xxe_tile,
    "truncated-mtd-tl": _truncated_tile,
    "wrong-root": _wrong_root,
    "bad-tileinfo": _bad_tileinfo,
}


@pytest.mark.parametrize("case", list(METADATA_CASES))
def test_bad_product_api(case: str, tmp_path: Path, safe_builder) -> None:
    path, error, message = METADATA_CASES[case](tmp_path, safe_builder)
    with pytest.raises(error) as info:
        _open_quiet(path)
    text = str(info.value)
    assert message in text
    assert text.startswith(str(path))  # names the product
    assert "TOPSECRET" not in text and "\n" not in text


@pytest.mark.parametrize("case", list(METADATA_CASES))
def test_bad_product_cli(case: str, tmp_path: Path, safe_builder) -> None:
    path, _, message = METADATA_CASES[case](tmp_path, safe_builder)
    result = CliRunner().invoke(main, ["info", "--json", str(path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sen2core: error: ") and message in lines[0]
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- bands


def _band_case(kind: str, tmp: Path, builder) -> tuple[Path, str]:
    safe = builder.l1c(tmp, bands=("B02", "B03", "B04"), manifest=(kind == "truncated-manifest"))
    jp2 = safe / GRANULE / "IMG_DATA" / "T34UCF_20230823T095559_B03.jp2"
    if kind == "missing":
        jp2.unlink()
    elif kind == "corrupt":
        jp2.write_bytes(b"\x00\x00\x00\x0cjP  \r\n\x87\n" + np.random.default_rng(2).bytes(2000))
    else:  # truncated, truncated-manifest
        jp2.write_bytes(jp2.read_bytes()[:6000])
    return safe, jp2.name


def test_missing_band_file(tmp_path: Path, safe_builder) -> None:
    safe, name = _band_case("missing", tmp_path, safe_builder)
    p = _open_quiet(safe)
    assert "B03" not in p.bands
    with pytest.raises(BandReadError) as info:
        p.read_dn("B03")
    assert str(info.value).startswith(str(safe))
    assert "band B03" in str(info.value) and name in str(info.value)
    with pytest.raises(BandReadError, match="band B05: raster file not found"):
        p.toa("B05")


def test_corrupt_band_detected_on_open(tmp_path: Path, safe_builder) -> None:
    safe, name = _band_case("corrupt", tmp_path, safe_builder)
    p = _open_quiet(safe)
    with pytest.raises(BandReadError) as info:
        p.read_dn("B03")
    assert "band B03: cannot open" in str(info.value) and name in str(info.value)


def test_truncated_band_detected_at_compute(tmp_path: Path, safe_builder) -> None:
    safe, name = _band_case("truncated", tmp_path, safe_builder)
    p = _open_quiet(safe)
    rho = p.toa("B03")  # header is intact: building the graph succeeds
    with pytest.raises(BandReadError) as info:
        rho.compute()
    text = str(info.value)
    assert text.startswith(str(safe)) and "band B03: cannot decode" in text and name in text
    assert np.isfinite(p.toa("B02").compute()).any()  # other bands unaffected


def test_truncated_band_detected_from_manifest(tmp_path: Path, safe_builder) -> None:
    safe, name = _band_case("truncated-manifest", tmp_path, safe_builder)
    p = _open_quiet(safe)
    with pytest.raises(BandReadError, match=r"band B03: .*B03\.jp2 is truncated \(6000 bytes, manifest.safe says"):
        p.read_dn("B03")


@pytest.mark.parametrize("kind", ["missing", "corrupt", "truncated"])
def test_band_errors_through_cli(kind: str, tmp_path: Path, safe_builder) -> None:
    safe, name = _band_case(kind, tmp_path, safe_builder)
    ok = CliRunner().invoke(main, ["info", str(safe)])
    assert ok.exit_code == 0  # metadata is fine
    result = CliRunner().invoke(main, ["info", "--check", str(safe)])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sen2core: error: {safe}: band B0")
    assert "Traceback" not in result.output


def test_check_passes_on_good_product(l1c_safe: Path) -> None:
    result = CliRunner().invoke(main, ["info", "--check", "--json", str(l1c_safe)])
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- level


def test_l2a_where_l1c_needed() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(InputProductError) as info:
            open_l1c(L2A_509)
    assert str(info.value) == (
        f"{L2A_509}: S2B_MSIL2A_20230823T095559_N0509_R122_T34UCF_20230823T124759 is a Level-2A product; "
        "sen2core needs Level-1C"
    )
    assert isinstance(info.value, ValueError)


def test_l2a_zip_where_l1c_needed(tmp_path: Path, safe_builder) -> None:
    archive = safe_builder.zip(L2A_509, tmp_path / f"{L2A_509.name}.zip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetadataWarning)
        with pytest.raises(InputProductError, match="is a Level-2A product; sen2core needs Level-1C"):
            open_l1c(archive)


# ---------------------------------------------------------------- --debug and a real process


def test_debug_shows_the_exception(tmp_path: Path, safe_builder) -> None:
    path, error, _ = _truncated_mtd(tmp_path, safe_builder)
    result = CliRunner().invoke(main, ["--debug", "info", str(path)])
    assert result.exit_code != 0 and isinstance(result.exception, error)


@pytest.mark.slow
def test_subprocess_one_line_and_debug_traceback(tmp_path: Path, safe_builder) -> None:
    path, _, message = _billion_laughs(tmp_path, safe_builder)
    cmd = [sys.executable, "-c", "from sen2core.cli import main; main()"]
    plain = subprocess.run([*cmd, "info", str(path)], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and plain.stdout == ""
    assert plain.stderr.strip().splitlines() == [
        f"sen2core: error: {path}: MTD_MSIL1C.xml: " + plain.stderr.split("MTD_MSIL1C.xml: ", 1)[1].strip()
    ]
    assert message in plain.stderr
    debug = subprocess.run([*cmd, "--debug", "info", str(path)], capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "MetadataError" in debug.stderr


def test_corrupt_band_in_aws_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tile"
    shutil.copytree(DATA / "l1c-T19UDP-20170729-900m", folder)
    (folder / "B04.jp2").write_bytes(b"not a raster")
    p = _open_quiet(folder)
    assert any(w.startswith("band B04: header unreadable") for w in p.warnings)
    assert p.band_resolution("B04") == 900  # the folder's common pixel size
    with pytest.raises(BandReadError, match=r"band B04: cannot open .*B04\.jp2"):
        p.toa("B04")
    result = CliRunner().invoke(main, ["info", "--check", str(folder)])
    assert result.exit_code == 1 and result.stderr.startswith(f"sen2core: error: {folder}: band B04: cannot open")


def test_input_errors_survive_pickling() -> None:
    """A BandReadError raised on a Dask worker reaches the client intact."""
    import pickle

    from sen2core.errors import BandReadError, InputProductError, MetadataError

    for cls in (InputProductError, MetadataError, BandReadError):
        err = pickle.loads(pickle.dumps(cls("S2A_X.SAFE", "band B04 cannot be decoded")))
        assert type(err) is cls and str(err) == "S2A_X.SAFE: band B04 cannot be decoded" and err.product == "S2A_X.SAFE"
