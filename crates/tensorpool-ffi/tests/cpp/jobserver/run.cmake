# ctest driver: configure the package in STAGE with a stand-in cargo (fake-cargo.sh), build
# its cargo step with `cmake --build -j 3` and check what cargo got: with the Makefile
# generator make's jobserver (MAKEFLAGS with -j3 and --jobserver-auth), and with
# TENSORPOOL_CARGO_JOBS=2 an explicit `-j 2`. Inputs: SOURCE (the package), STAGE, HERE.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(run_out "${out}" PARENT_SCOPE)
endfunction()
file(REMOVE_RECURSE "${STAGE}")
run(${CMAKE_COMMAND} -S "${SOURCE}" -B "${STAGE}" -G "Unix Makefiles" "-DCARGO=${HERE}/fake-cargo.sh"
    -DTENSORPOOL_BUILD_TESTS=OFF -DTENSORPOOL_BUILD_EXAMPLES=OFF "-DTENSORPOOL_CARGO_TARGET_DIR=${STAGE}/target")
run(${CMAKE_COMMAND} --build "${STAGE}" -j 3 --target tensorpool_cargo)
if(NOT run_out MATCHES "fake-cargo MAKEFLAGS:[^\n]*-j3[^\n]*--jobserver-auth=" OR
   NOT run_out MATCHES "descriptors open: yes")
  message(FATAL_ERROR "cargo did not get make's jobserver:\n${run_out}")
endif()
run(${CMAKE_COMMAND} -S "${SOURCE}" -B "${STAGE}" -DTENSORPOOL_CARGO_JOBS=2)
run(${CMAKE_COMMAND} --build "${STAGE}" -j 3 --target tensorpool_cargo)
if(NOT run_out MATCHES "fake-cargo args: build [^\n]* -j 2")
  message(FATAL_ERROR "TENSORPOOL_CARGO_JOBS=2 did not reach cargo:\n${run_out}")
endif()
file(REMOVE_RECURSE "${STAGE}")
message(STATUS "cargo gets the build's jobs (jobserver; TENSORPOOL_CARGO_JOBS)")
