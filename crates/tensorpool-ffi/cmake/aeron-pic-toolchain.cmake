# Used by rusteron's CMake builds of Aeron (see .cargo/config.toml): position-independent
# objects, so that the Aeron C code can go into libtensorpool's shared library as well as
# its static library. Nothing else changes: the host compiler and flags stay the defaults.
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
