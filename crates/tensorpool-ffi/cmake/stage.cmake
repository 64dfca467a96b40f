# Build step (cmake -P): copies one cargo artifact into the install staging directory,
#   KIND=split: SRC -> DEST without debug information or the static symbol table, the debug
#               information in DEBUG (objcopy --only-keep-debug), DEST pointing at it with a
#               .gnu_debuglink (gdb finds DEBUG in the .debug/ directory beside DEST);
#   KIND=strip: SRC -> DEST without debug information (a static archive: its members keep
#               their symbol tables, the linker needs them);
#   KIND=copy:  SRC -> DEST unchanged (TENSORPOOL_STRIP=OFF).
# OBJCOPY is the objcopy to use.
cmake_minimum_required(VERSION 3.25)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${err}")
  endif()
endfunction()
get_filename_component(dest_dir "${DEST}" DIRECTORY)
file(MAKE_DIRECTORY "${dest_dir}")
# Write next to DEST, then rename: an interrupted step never leaves a half-written DEST.
set(tmp "${DEST}.tmp")
if(KIND STREQUAL "split")
  get_filename_component(debug_dir "${DEBUG}" DIRECTORY)
  file(MAKE_DIRECTORY "${debug_dir}")
  run("${OBJCOPY}" --only-keep-debug "${SRC}" "${DEBUG}")
  run("${OBJCOPY}" --strip-debug --strip-unneeded "--add-gnu-debuglink=${DEBUG}" "${SRC}" "${tmp}")
elseif(KIND STREQUAL "strip")
  run("${OBJCOPY}" --strip-debug "${SRC}" "${tmp}")
else()
  file(COPY_FILE "${SRC}" "${tmp}")
endif()
file(RENAME "${tmp}" "${DEST}")
