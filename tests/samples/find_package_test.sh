#!/usr/bin/env bash
# find_package_test.sh BUILD_DIR SOURCE_DIR WORK_DIR CXX BUILD_TYPE
# What a user does with Ferry: install it, build a project against it with
# find_package(Ferry) (here: samples/), run the result.
set -euo pipefail
build=$1 source=$2 work=$3 cxx=$4 type=${5:-Debug}
rm -rf "$work"
mkdir -p "$work"
echo "find_package_test: installing $build to $work/install" >&2
cmake --install "$build" --prefix "$work/install" >"$work/install.log"
test -f "$work/install/lib/cmake/Ferry/FerryConfig.cmake"
test -f "$work/install/lib/cmake/Ferry/FerrySchemas.cmake"
test -x "$work/install/bin/ferryd"
# An install into a prefix writes nothing outside it (the package's /etc and
# systemd files come from CPack only: tools/cmake/FerryPackage.cmake).
if grep -v "$work/install" "$work/install.log" | grep -E "^-- (Installing|Up-to-date):"; then
  echo "find_package_test: cmake --install wrote outside --prefix (above)" >&2
  exit 1
fi
echo "find_package_test: configuring samples/ against it" >&2
cmake -S "$source/samples" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE="$type" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$work/install"
# The programs order_demo starts must be the installed ones, not this build's.
grep -q "$work/install/bin/ferryd" "$work/build/build.ninja"
echo "find_package_test: building" >&2
cmake --build "$work/build" -j 2
echo "find_package_test: running order_demo" >&2
"$work/build/order_demo" --orders 150 --data-dir "$work/demo" --clean --timeout-s 240
