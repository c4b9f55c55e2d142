# The Debian package (CPack): `cpack -G DEB` in a build directory, after a
# build; docs/operations.md#the-debian-package. One .deb holds ferryd,
# ferry, the libraries, headers and CMake package (find_package(Ferry)), man
# pages and shell completion, a hardened systemd unit, the ferry system user
# (postinst) and /etc/ferry/ferryd.toml (a conffile).
set(_pkg ${CMAKE_CURRENT_SOURCE_DIR}/tools/package)

# /etc/ferry/ferryd.toml and the unit belong where the system looks for
# them, outside the package's prefix (/usr). They are not install() rules:
# `cmake --install --prefix DIR` must never write to /etc. The package gets
# them from a script CPack runs on its staging tree.
set(CPACK_FERRY_PACKAGE_FILES ${_pkg})
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_CURRENT_SOURCE_DIR}/tools/cmake/FerryPackageFiles.cmake)

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ferry)
set(CPACK_PACKAGE_VENDOR "Ferry")
set(CPACK_PACKAGE_CONTACT "Ferry developers <ferry@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Reliable messaging: a Kafka-style broker on ZeroMQ")
set(CPACK_PACKAGE_DESCRIPTION
    "ferryd (the broker), ferry (the command-line client), and the C++ libraries, headers \
and CMake package for writing producers, consumers and workers with idempotency keys, retries \
and dead letters.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
# The library dependencies (libzmq5, libspdlog1.10, ...) from the binaries;
# adduser for the postinst.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_pkg}/postinst ${_pkg}/prerm ${_pkg}/postrm ${_pkg}/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Debug information stays in the build tree.
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE gzip)
include(CPack)
