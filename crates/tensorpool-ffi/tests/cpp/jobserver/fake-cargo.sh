#!/bin/sh
# Stands in for cargo in ctest `package.cargo_gets_the_build_jobs`: prints its arguments, the
# make flags it inherited and whether the jobserver's descriptors named there are open in it
# (a real cargo joins that jobserver).
echo "fake-cargo args: $*"
echo "fake-cargo MAKEFLAGS: $MAKEFLAGS"
fds=$(echo "$MAKEFLAGS" | sed -n 's/.*--jobserver-auth=\([0-9]*\),\([0-9]*\).*/\1 \2/p')
open=yes
[ -n "$fds" ] || open=no
for fd in $fds; do
    [ -e "/proc/$$/fd/$fd" ] || open=no
done
echo "fake-cargo jobserver descriptors open: $open"
