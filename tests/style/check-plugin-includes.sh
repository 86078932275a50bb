#!/bin/sh
# The plugin boundary, as text: a file under src/plugins/NAME/ includes only
# oh/ headers, system and library headers (<...>), its own folder's headers
# and what oh_add_plugin() generates for it (NAME_web.h).  The build already
# fails on a host header found through the include path; this also catches
# one reached by a relative path ("../../core/conf.h").
set -eu
src=${1:?source dir}
cd "$src"
bad=0
for dir in src/plugins/*/; do
	name=$(basename "$dir")
	for f in "$dir"*.[ch]; do
		[ -e "$f" ] || continue
		grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" | while IFS= read -r line; do
			inc=$(printf '%s\n' "$line" | sed 's/^[^"]*"\([^"]*\)".*/\1/')
			case "$inc" in
			oh/*.h) ;;
			"${name}_web.h") ;;
			*/* | *..*)
				echo "$f: includes \"$inc\": outside include/oh/ and the plugin's folder"
				exit 1 ;;
			*)
				[ -e "$dir$inc" ] || { echo "$f: includes \"$inc\", which is not in $dir"; exit 1; } ;;
			esac
		done || bad=1
	done
done
[ $bad -eq 0 ] && echo "plugin includes: only oh/, <...> and their own"
exit $bad
