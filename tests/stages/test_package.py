"""Atomic and idempotent COG products: killed runs leave nothing that looks complete, the next run
completes the product, and a further run is a no-op (real subprocesses, SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sen2core.io.stac.cog_product import item_name
from sen2core.io.stac.validation import validate_item
from sen2core.io.write.checksums import verify_manifest
from sen2core.package import _HOST, is_done, remove_stale_siblings

#: Runs ``sen2core process`` with one library function replaced by a hook that signals
#: (writes a file) and sleeps, so the test can kill the process at that exact moment.
_HOOKED_CLI = """
import os, sys, time
from pathlib import Path
import importlib

signal_file, module_name, attr = sys.argv[1], sys.argv[2], sys.argv[3]
module = importlib.import_module(module_name)

def hook(*args, **kwargs):
    Path(signal_file).write_text(str(os.getpid()))
    time.sleep(600)

setattr(module, attr, hook)
from sen2core.cli import main
main(sys.argv[4:])
"""

#: Moments to kill a run at: (module whose global is replaced, function replaced).
_MOMENTS = [
    ("sen2core.io.stac.cog_product", "write_quicklook"),  # every COG written, no metadata yet
    ("sen2core.io.stac.cog_product", "write_manifest"),  # metadata written, checksums not
    ("sen2core.io.stac.item", "write_item"),  # checksums written, the item not
    ("sen2core.package", "publish_folder"),  # item written in the temporary folder, not renamed into place
]


def _synth(folder: Path) -> Path:
    out = subprocess.run([sys.executable, "-m", "sen2core.cli", "synth", str(folder), "--size", "366", "--seed", "9",
                          "--cloud-cover", "10"], check=True, capture_output=True, text=True).stdout  # fmt: skip
    return Path(out.strip().splitlines()[-1])


def _process_args(safe: Path, root: Path) -> list[str]:
    return ["process", str(safe), "-o", str(root), "--resolution", "20", "--json"]


def _wait_for(predicate: object, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before the moment to kill it"
        assert time.monotonic() < end, "timed out waiting for the moment to kill the run"
        time.sleep(0.002)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def _temporaries(root: Path) -> list[Path]:
    return sorted(root.glob("*/*/*/*/.*.tmp-*"))


def _assert_nothing_complete(root: Path) -> None:
    for folder in root.glob("*/*/*/*/*"):
        if folder.name.startswith("."):
            continue  # hidden build folders are never taken for products
        assert not is_done(folder), f"{folder} looks complete after a killed run"
        assert not (folder / item_name(folder)).exists()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_killed_runs_leave_nothing_complete_and_rerun_completes(tmp_path: Path) -> None:
    safe = _synth(tmp_path / "l1c")
    root = tmp_path / "l2a"
    env = dict(os.environ, PYTHONWARNINGS="ignore")

    # 1. Plain CLI, killed as soon as its temporary build folder appears.
    proc = subprocess.Popen([sys.executable, "-m", "sen2core.cli", *_process_args(safe, root)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    _wait_for(lambda: bool(_temporaries(root)), proc)
    _kill(proc)
    _assert_nothing_complete(root)
    assert [str(proc.pid) in t.name for t in _temporaries(root)] == [True]

    # 2. Killed at each later moment of the write order.
    for module, attr in _MOMENTS:
        flag = tmp_path / f"{attr}.started"
        cmd = [sys.executable, "-c", _HOOKED_CLI, str(flag), module, attr, *_process_args(safe, root)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(flag.exists, proc)
        _kill(proc)
        _assert_nothing_complete(root)
        # Only this run's build folder is left: each run removes those of dead runs before building.
        (tmp,) = _temporaries(root)
        assert f"-{proc.pid}-" in tmp.name
        if attr == "publish_folder":
            # The finished temporary folder has its item, yet it is not the product.
            assert (tmp / f"{tmp.name.split('.tmp-')[0][1:]}.json").is_file()

    # 3. The next run completes the product and clears the dead runs' leftovers.
    run = subprocess.run([sys.executable, "-m", "sen2core.cli", *_process_args(safe, root)], env=env,
                         check=True, capture_output=True, text=True)  # fmt: skip
    result = json.loads(run.stdout)
    folder = Path(result["output_dir"])
    assert result["status"] == "done" and is_done(folder)
    assert _temporaries(root) == []
    item = folder / item_name(folder)
    validate_item(item)
    assert verify_manifest(folder) == []
    stamp = item.stat().st_mtime_ns
    files = sorted(p.name for p in folder.iterdir())

    # 4. Same L1C, same version: a no-op.
    again = json.loads(subprocess.run([sys.executable, "-m", "sen2core.cli", *_process_args(safe, root)], env=env,
                                      check=True, capture_output=True, text=True).stdout)  # fmt: skip
    assert again["status"] == "skipped" and again["output_dir"] == result["output_dir"]
    assert item.stat().st_mtime_ns == stamp and sorted(p.name for p in folder.iterdir()) == files


def test_only_dead_processes_leftovers_are_removed(tmp_path: Path) -> None:
    final = tmp_path / "T31TCJ" / "S2A_MSIL2A_X"
    final.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = final.parent / f".{final.name}.tmp-{_HOST}-{dead.pid}-0123abcd"
    retired = final.parent / f".{final.name}.old-{_HOST}-{dead.pid}-0123abce"
    live = final.parent / f".{final.name}.tmp-{_HOST}-{os.getppid()}-0123abcd"
    other_host = final.parent / f".{final.name}.tmp-otherhost-{dead.pid}-0123abcd"
    other_product = final.parent / f".S2A_MSIL2A_Y.tmp-{_HOST}-{dead.pid}-0123abcd"
    for p in (stale, retired, live, other_host, other_product):
        (p / "sub").mkdir(parents=True)
    assert sorted(remove_stale_siblings(final)) == sorted([stale, retired])
    assert live.exists() and other_host.exists() and other_product.exists() and not stale.exists()
