# Turns files into a C table {path, content type, bytes, length} at build
# time, so the daemon serves its UI with no files to install or lose.
# The list goes through a file: a CMake list on a command line would be
# split into separate arguments.
function(oh_embed_files out)
	set(list_file ${CMAKE_CURRENT_BINARY_DIR}/embedded_files.txt)
	string(REPLACE ";" "\n" lines "${ARGN}")
	file(WRITE ${list_file}.new "${lines}\n")
	file(COPY_FILE ${list_file}.new ${list_file} ONLY_IF_DIFFERENT)
	add_custom_command(OUTPUT ${out}
		COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DROOT=${CMAKE_SOURCE_DIR}
			-DLIST=${list_file} -P ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
		DEPENDS ${ARGN} ${list_file} ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
		COMMENT "Embedding web files")
endfunction()
