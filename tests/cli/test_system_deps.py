"""``scripts/system-deps.sh``: the first command on a fresh machine waits for a busy package manager."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "scripts" / "system-deps.sh"


def _fake(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_apt_waits_for_the_package_manager_lock(tmp_path: Path) -> None:
    # libgfortran5 "missing" (dpkg-query finds nothing), apt-get records how it was called.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    _fake(bin_dir, "dpkg-query", "exit 1\n")
    _fake(bin_dir, "apt-get", f'echo "$@" >> {calls}\n')
    _fake(bin_dir, "id", "echo 0\n")  # as root: no sudo
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SEN2CORE_APT_LOCK_TIMEOUT="42")
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert len(lines) == 2 and lines[0].endswith("update -qq") and "install -y -qq libgfortran5" in lines[1]
    assert all("-o DPkg::Lock::Timeout=42" in line for line in lines), lines
