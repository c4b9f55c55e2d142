# Run by CPack (CPACK_PRE_BUILD_SCRIPTS) on the package's staging tree:
# the files that live outside /usr (FerryPackage.cmake says why). file(COPY),
# not file(INSTALL): the latter would prefix CPack's DESTDIR once more.
file(COPY ${CPACK_FERRY_PACKAGE_FILES}/ferryd.toml
     DESTINATION ${CPACK_TEMPORARY_INSTALL_DIRECTORY}/etc/ferry)
file(COPY ${CPACK_FERRY_PACKAGE_FILES}/ferryd.service
     DESTINATION ${CPACK_TEMPORARY_INSTALL_DIRECTORY}/lib/systemd/system)
