#!/usr/bin/env bash
# Installs the Debian packages listed in packaging/packages-*.txt that are
# missing; for the tests also the OpenAPI validators (npm packages pinned by
# tests/openapi/package-lock.json, into tests/openapi/node_modules).
# Usage: install-deps.sh run|test
set -euo pipefail
cd "$(dirname "$0")/.."

lists=(packaging/packages-run.txt)
[ "${1:-run}" = test ] && lists+=(packaging/packages-test.txt)

missing=()
for pkg in $(grep -hv '^\s*#' "${lists[@]}"); do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci empties node_modules first, so it runs only when the lock is newer
# than the last install (npm writes node_modules/.package-lock.json).
if [ "${1:-run}" = test ]; then
	stamp=tests/openapi/node_modules/.package-lock.json
	if [ ! -f "$stamp" ] || [ tests/openapi/package-lock.json -nt "$stamp" ]; then
		echo "installing the OpenAPI validators (npm ci --prefix tests/openapi)"
		npm ci --prefix tests/openapi --no-audit --no-fund --ignore-scripts --loglevel=error
	fi
fi
