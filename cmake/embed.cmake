# Turns files into a C table {path, content type, bytes, length} at build
# time, so the daemon serves its UI with no files to install or lose.
# The list goes through a file: a CMake list on a command line would be
# split into separate arguments.

# oh_embed_table(out.c ROOT dir INCLUDE header TYPE struct TABLE symbol
#                [FIND function] FILES file...)
# Paths in the table are relative to ROOT.  With FIND, out.c also defines
# `const struct TYPE *FIND(const char *path)` (a plugin's lookup; the
# core's own is in src/core/embedded.c).
function(oh_embed_table out)
	cmake_parse_arguments(E "" "ROOT;INCLUDE;TYPE;TABLE;FIND" "FILES" ${ARGN})
	set(list_file ${out}.txt)
	string(REPLACE ";" "\n" lines "${E_FILES}")
	file(WRITE ${list_file}.new "${lines}\n")
	file(COPY_FILE ${list_file}.new ${list_file} ONLY_IF_DIFFERENT)
	add_custom_command(OUTPUT ${out}
		COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DROOT=${E_ROOT} -DLIST=${list_file}
			-DINCLUDE=${E_INCLUDE} -DTYPE=${E_TYPE} -DTABLE=${E_TABLE} -DFIND=${E_FIND}
			-P ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
		DEPENDS ${E_FILES} ${list_file} ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
		COMMENT "Embedding ${E_TABLE}")
endfunction()

# The core's own web files (src/web/), looked up with embedded_find().
function(oh_embed_files out)
	oh_embed_table(${out} ROOT ${CMAKE_SOURCE_DIR} INCLUDE embedded.h TYPE embedded_file
		TABLE embedded_files FILES ${ARGN})
endfunction()
