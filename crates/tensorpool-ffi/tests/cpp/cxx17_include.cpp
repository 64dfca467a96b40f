// Compiled with -std=c++17 by ctest `header.cxx17_rejected`: must fail with tensorpool.hpp's
// own message.
#include <tensorpool.hpp>

int main() { return 0; }
