#!/usr/bin/env bash
# Installs the Debian packages listed in packaging/packages-*.txt that are
# missing.  Usage: install-deps.sh run|test
set -euo pipefail
cd "$(dirname "$0")/.."

lists=(packaging/packages-run.txt)
[ "${1:-run}" = test ] && lists+=(packaging/packages-test.txt)

missing=()
for pkg in $(grep -hv '^\s*#' "${lists[@]}"); do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
