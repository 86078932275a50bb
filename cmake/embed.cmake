# Turns files into a C table {path, content type, bytes, length} at build
# time, so the daemon serves its UI with no files to install or lose.
function(oh_embed_files out)
	set(inputs ${ARGN})
	add_custom_command(OUTPUT ${out}
		COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DROOT=${CMAKE_SOURCE_DIR}
			"-DINPUTS=${inputs}" -P ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
		DEPENDS ${inputs} ${CMAKE_SOURCE_DIR}/cmake/embed_run.cmake
		COMMENT "Embedding web files")
endfunction()
