#!/bin/sh
# Every C file of the tree as .clang-format lays it out, so a change shows
# its content and not a reformatting.  Fix with: clang-format -i FILE...
# Exit 77 (CTest: skipped) where no clang-format is installed.
set -eu
src=${1:?source dir}
fmt=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$fmt" ] || { echo "clang-format is not installed: skipped"; exit 77; }
cd "$src"
files=$(find src include tests bench examples -name '*.[ch]' -not -path '*/build*' | sort)
bad=0
for f in $files; do
	if ! "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1; then
		echo "not formatted: $f"
		bad=1
	fi
done
[ $bad -eq 0 ] || echo "run: clang-format -i <files above> (the style is .clang-format)"
exit $bad
