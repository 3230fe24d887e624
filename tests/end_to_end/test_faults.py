"""Faults and hostile input (issue 16): damaged bands, full disks, errors from Dask workers, zipped metadata bombs.

Each test names the fault, and what the run must do: fail with one library error that names
the file or the folder, publish nothing, and leave no temporary folder behind.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
import threading
import tracemalloc
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sen2core.errors import BandReadError, DiskFullError, MetadataError, OutputError, TransientIOError
from sen2core.io.read import bands as io_lazy
from sen2core.io.read.opening import open_l1c
from sen2core.parallel import CODEC_THREADS_ENV
from sen2core.pipeline import ProcessingConfig, process_product

CHUNK_M = 1800.0


def _published(root: Path) -> list[Path]:
    """Files that would make a product look done (STAC items, summaries), anywhere under ``root``."""
    return [p for p in root.rglob("*") if p.is_file() and p.suffix == ".json" and p.name != "collection.json"]


def _hidden(root: Path) -> list[Path]:
    return [p for p in root.rglob(".*") if p.is_dir()]


# ---------------------------------------------------------------- 1. a damaged JPEG 2000 band


def _damage(jp2: Path, keep: float) -> None:
    """Cut the code-stream after ``keep`` of the file and pad it back with zeros to its size (an interrupted
    download into a pre-allocated file): the manifest.safe size check passes, decoding must not."""
    data = jp2.read_bytes()
    cut = int(len(data) * keep)
    jp2.write_bytes(data[:cut] + bytes(len(data) - cut))


@pytest.fixture(scope="module")
def damaged_l1c(cloudy_l1c: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the cloudy synthetic L1C whose B04 is cut at 80 % and zero-padded to its manifest size."""
    safe = tmp_path_factory.mktemp("damaged") / cloudy_l1c.name
    shutil.copytree(cloudy_l1c, safe)
    (b04,) = safe.rglob("IMG_DATA/*_B04.jp2")
    _damage(b04, 0.8)
    return safe


@pytest.mark.parametrize("threads", ["1", "ALL_CPUS"])
def test_a_damaged_band_fails_the_run_whatever_the_codec_threads(
    threads: str, damaged_l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more than one codec thread GDAL used to log ``Stream too short`` and return zeros: a
    product with a damaged B04 was published. Now the decode fails, naming the band and the file."""
    monkeypatch.setenv(CODEC_THREADS_ENV, threads)
    out = tmp_path / "out"
    with pytest.raises(BandReadError) as info:
        # The decoder's own check: with the manifest's checksums verified (the default) the run stops
        # before decoding, at B04's checksum (tests/io/test_l1c_inputs.py).
        process_product(damaged_l1c, out, ProcessingConfig(chunk_m=CHUNK_M, verify_checksums=False))
    text = str(info.value)
    assert text.startswith(f"{damaged_l1c}: band B04: cannot decode rows"), text
    assert "_B04.jp2" in text and "\n" not in text
    assert _published(out) == [] and _hidden(out) == []


@pytest.mark.parametrize("threads", ["1", "2", "ALL_CPUS"])
def test_every_window_of_a_truncated_band_either_fails_or_is_exact(
    threads: str, cloudy_l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut at many places, a band read by windows (straddling its JPEG 2000 tiles, or not) never
    returns wrong pixels: a window either fails or equals the intact file's."""
    monkeypatch.setenv(CODEC_THREADS_ENV, threads)
    (good,) = cloudy_l1c.rglob("IMG_DATA/*_B04.jp2")
    data = good.read_bytes()
    ident = dict(product="P", band="B04", display="P/B04.jp2", gdal_options={})
    windows = [(0, 366, 0, 366), (100, 300, 50, 366), (0, 256, 0, 256)]
    truth = {w: io_lazy.read_window(str(good), *w, **ident) for w in windows}
    bad = tmp_path / "B04.jp2"
    failed = 0
    for keep in np.linspace(0.3, 0.995, 12):
        bad.write_bytes(data[: int(len(data) * keep)])
        for w in windows:
            try:
                got = io_lazy.read_window(str(bad), *w, **ident)
            except BandReadError as exc:
                failed += 1
                assert "P/B04.jp2" in str(exc)
                continue
            np.testing.assert_array_equal(got, truth[w], err_msg=f"cut at {keep:.3f}, window {w}")
    assert failed >= 12  # the whole-band window fails at every cut


# ---------------------------------------------------------------- 3, 4. a full disk


@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Iterator[object]:
    """``mount(size)``: a fresh tmpfs of ``size`` (``"3m"``), unmounted after the test; the test is
    skipped, with the reason, where mounting is not permitted (not root, no CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"tmpfs-{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("a full disk is simulated with a small tmpfs, and mounting one needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs to simulate a full disk: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _cli_process(product: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # A subprocess: before the fix a full disk killed the process with SIGBUS.
    cmd = [sys.executable, "-c", "from sen2core.cli import main; main()", "process", str(product), "-o", str(out),
           "--resolution", "10", *extra]  # fmt: skip
    env = {**os.environ, CODEC_THREADS_ENV: "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("sen2core: error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return errors[0]


@pytest.mark.slow
def test_a_disk_too_small_for_the_kept_bands_is_one_clear_error(cloudy_l1c: Path, small_tmpfs) -> None:
    """The band files kept for the 10 m stage (1.5 MiB here) on a 1 MiB file system: they were sparse
    memory maps, and the first page written on the full disk killed the process with SIGBUS."""
    out = small_tmpfs("1m") / "l2a"
    line = _one_error_line(_cli_process(cloudy_l1c, out))
    assert "not enough free space: the 13 band(s) decoded for the later stages" in line, line
    assert re.search(r"\d iB free|\d [KM]iB free", line) and str(out) in line, line
    assert _published(out) == [] and _hidden(out) == []


def test_kept_bands_are_allocated_and_a_full_disk_while_allocating_is_one_error(
    cloudy_l1c: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Space taken by another writer between the check and the allocation: ENOSPC from
    ``posix_fallocate`` is a DiskFullError naming the scratch folder and the band; nothing is decoded."""
    calls: list[int] = []

    def full(fd: int, offset: int, length: int) -> None:
        if "/.bands/" not in os.readlink(f"/proc/self/fd/{fd}"):
            return  # the checkpoints, allocated first, fit: the band files are what this test fills the disk with
        calls.append(length)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    decoded: list[object] = []
    monkeypatch.setattr(os, "posix_fallocate", full)
    monkeypatch.setattr(io_lazy, "_decode_strip", lambda *a: decoded.append(a))
    out = tmp_path / "out"
    with pytest.raises(
        DiskFullError,
        match=r"/\.S2A_MSIL2A_\S+\.tmp-\S+: no space left for the kept band B01 "
        r"\(\d+\.\d KiB uncompressed\): \d+\.\d KiB needed, .* free$",
    ):
        process_product(cloudy_l1c, out, ProcessingConfig(chunk_m=CHUNK_M))
    assert calls and not decoded
    assert _published(out) == [] and _hidden(out) == []


@pytest.mark.slow
def test_a_disk_too_small_for_the_product_is_one_clear_error(cloudy_l1c: Path, small_tmpfs) -> None:
    """The kept bands fit, the staged rasters of the product do not: one line (it was a window write
    failing deep in GDAL after ``_tiffWriteProc: No space left on device``), nothing published."""
    out = small_tmpfs("3m") / "l2a"
    result = _cli_process(cloudy_l1c, out)
    line = _one_error_line(result)
    assert re.search(r"not enough free space: the \d+ uncompressed staged raster\(s\) of the product need", line), line
    assert "No space left on device" not in result.stderr
    assert _published(out) == [] and _hidden(out) == []


@pytest.mark.slow
def test_a_disk_that_fills_up_while_the_cogs_are_encoded(
    cloudy_l1c: Path, small_tmpfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer fills the disk once every staged raster is written (as the last group of COGs,
    the 20 m and 60 m ones, is encoded): GDAL's COG driver fails (it used to surface as a
    CPLE_AppDefinedError traceback); the run ends in one DiskFullError, publishes nothing and
    removes its temporary folder."""
    from sen2core.io.write import raster as write

    root = small_tmpfs("12m")
    out = root / "l2a"
    real = write._to_cog
    one_at_a_time = threading.Lock()

    def fill_then_encode(tmp: str, final: str, spec: write.RasterSpec) -> str:
        if final.endswith("_10m.tif"):
            return real(tmp, final, spec)
        with one_at_a_time:  # each encoding starts on a full disk (a finished one frees its staged file)
            fd = os.open(root / f"filler-{uuid.uuid4().hex}", os.O_WRONLY | os.O_CREAT)
            try:
                while os.write(fd, bytes(1 << 12)):
                    pass
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
            finally:
                os.close(fd)
            return real(tmp, final, spec)

    monkeypatch.setattr(write, "_to_cog", fill_then_encode)
    with pytest.raises(DiskFullError) as info:
        process_product(cloudy_l1c, out, ProcessingConfig(chunk_m=CHUNK_M))
    text = str(info.value)
    assert re.search(r": no space left on the device for \w+_[26]0m\.tif \(\d+\.\d [KM]iB needed, ", text), text
    assert isinstance(info.value, OutputError) and info.value.__cause__ is None
    assert _published(out) == [] and _hidden(out) == [], [list(h.rglob("*")) for h in _hidden(out)]


# ---------------------------------------------------------------- 7. errors raised on Dask workers


@pytest.fixture(scope="module")
def worker_client() -> Iterator[object]:
    """A client of a real multi-process ``LocalCluster`` (one worker process, one thread), the default
    scheduler while the module runs; errors cross a process boundary, pickled, as in production."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0") as cluster,
        Client(cluster) as client,
    ):
        yield client


def _stale_file_handles() -> None:
    """Run on the worker: every ``.npy`` load fails as on an NFS mount whose file handle went stale."""
    import numpy

    real = numpy.load

    def load(path: object, *args: object, **kwargs: object) -> object:
        if str(path).endswith(".npy"):
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), str(path))
        return real(path, *args, **kwargs)

    numpy.load = load


@pytest.mark.slow
def test_a_band_read_error_on_a_worker_arrives_as_band_read_error(damaged_l1c: Path, worker_client) -> None:
    """GDAL's CPLE_* exceptions in the cause chain could not be unpickled: distributed replaced the
    error by ``Exception("BandReadError(...)")``, which neither ``except BandReadError`` nor the
    flows' retry rule recognised."""
    from tasks.retry import is_transient

    dn = open_l1c(damaged_l1c, chunk_m=CHUNK_M).read_dn("B04")
    with pytest.raises(BandReadError) as info:
        dn.compute()
    text = str(info.value)
    assert text.startswith(f"{damaged_l1c}: band B04: cannot decode rows") and "_B04.jp2" in text, text
    assert "opj_get_decoded_tile() failed" in text or "Stream too short" in text, text  # GDAL's own words
    assert not is_transient(info.value)


@pytest.mark.slow
def test_a_transient_error_on_a_worker_keeps_its_type(cloudy_l1c: Path, tmp_path: Path, worker_client) -> None:
    """A stale NFS handle while a kept band file is written on a worker arrives as TransientIOError,
    which the product task's retry rule retries."""
    from distributed import Client

    from tasks.retry import is_transient

    assert isinstance(worker_client, Client)
    product = open_l1c(cloudy_l1c, chunk_m=CHUNK_M)
    worker_client.run(_stale_file_handles)
    try:
        with pytest.raises(TransientIOError) as info:
            product.keep_dn(["B04"], tmp_path / "kept")
    finally:
        worker_client.restart()  # the worker process without the fault, for the next test
    assert "B04.npy: cannot keep rows 0:366 of band B04" in str(info.value)
    assert os.strerror(errno.ESTALE) in str(info.value)
    assert is_transient(info.value)


# ---------------------------------------------------------------- 8. zipped metadata that inflates without bound


def _zip_with_padded_mtd(safe: Path, archive: Path, pad: int) -> Path:
    """Zip ``safe`` with ``pad`` bytes of spaces before the closing tag of MTD_MSIL1C.xml: still valid
    XML, and deflated to about a thousandth of its size."""
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(p for p in safe.rglob("*") if p.is_file()):
            name = f"{safe.name}/{f.relative_to(safe).as_posix()}"
            if f.name != "MTD_MSIL1C.xml":
                zf.write(f, name)
                continue
            head, _, tail = f.read_bytes().rpartition(b"</")
            with zf.open(name, "w", force_zip64=True) as w:
                w.write(head)
                for _ in range(pad // 2**20):
                    w.write(b" " * 2**20)
                w.write(b"</" + tail)
    return archive


def test_zipped_metadata_that_inflates_past_the_cap_is_refused_unread(tmp_path: Path, safe_builder) -> None:
    """A small .SAFE.zip whose MTD_MSIL1C.xml inflates to 96 MiB (1 GiB in the issue: 2.4 GB of memory):
    refused from the size in the zip directory, without inflating it."""
    safe = safe_builder.l1c(tmp_path / "src", bands=("B02",))
    archive = _zip_with_padded_mtd(safe, tmp_path / f"{safe.name}.zip", 96 * 2**20)
    assert archive.stat().st_size < 2**20
    tracemalloc.start()
    try:
        with pytest.raises(MetadataError) as info:
            open_l1c(archive)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(info.value) == (f"{archive}: {safe.name}/MTD_MSIL1C.xml: 96.0 MiB uncompressed; "
                               "metadata files larger than 64.0 MiB are refused")  # fmt: skip
    assert peak < 8 * 2**20, peak


def test_a_zip_directory_that_understates_a_member_is_refused(tmp_path: Path, safe_builder) -> None:
    """The directory claims a small MTD_MSIL1C.xml; the member inflates to more: the read stops at the
    claimed size and the archive is reported corrupt, one MetadataError."""
    safe = safe_builder.l1c(tmp_path / "src", bands=("B02",))
    archive = _zip_with_padded_mtd(safe, tmp_path / f"{safe.name}.zip", 4 * 2**20)
    member = f"{safe.name}/MTD_MSIL1C.xml".encode()
    data = bytearray(archive.read_bytes())
    # Its central directory entry: the uncompressed size is the 4-byte field at offset 24.
    entry = data.find(b"PK\x01\x02")
    while data[entry + 46 : entry + 46 + len(member)] != member:
        entry = data.find(b"PK\x01\x02", entry + 4)
    data[entry + 24 : entry + 28] = (1000).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    with pytest.raises(
        MetadataError,
        match=rf"^{re.escape(str(archive))}: {safe.name}/MTD_MSIL1C\.xml: cannot be "
        r"read from the archive \(Bad CRC-32",
    ):
        open_l1c(archive)


def test_a_metadata_file_past_the_cap_in_a_folder_is_refused(tmp_path: Path, safe_builder) -> None:
    safe = safe_builder.l1c(tmp_path / "src", bands=("B02",))
    with open(safe / "MTD_MSIL1C.xml", "r+b") as f:
        f.truncate(65 * 2**20)  # sparse: nothing is written
    with pytest.raises(MetadataError, match=r": MTD_MSIL1C\.xml: 65\.0 MiB; metadata files larger than 64\.0 MiB"):
        open_l1c(safe)


def test_a_full_disk_while_allocating_a_checkpoint_is_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints are written through memory maps like the kept bands: their blocks are reserved
    when they are made, so a full disk is a DiskFullError then, not a SIGBUS while a stage writes."""

    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    target = tmp_path / ".screening" / "scl.npy"
    with pytest.raises(DiskFullError, match=r"\.screening: no space left for the checkpoint scl\.npy: "):
        io_lazy.allocate_checkpoint(str(target), (300, 300), np.uint8)
    assert list((tmp_path / ".screening").iterdir()) == []
