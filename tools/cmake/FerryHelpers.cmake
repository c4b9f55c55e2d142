# Helpers shared by every Ferry target. Flags are attached to targets through
# INTERFACE libraries, never set directory-wide.

add_library(ferry_warnings INTERFACE)
target_compile_options(ferry_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast
  -Wcast-align -Woverloaded-virtual -Wconversion -Wsign-conversion
  -Wimplicit-fallthrough
  $<$<CXX_COMPILER_ID:GNU>:-Wduplicated-cond -Wlogical-op -Wno-maybe-uninitialized>
  $<$<BOOL:${FERRY_WARNINGS_AS_ERRORS}>:-Werror>)

add_library(ferry_sanitizers INTERFACE)
if(FERRY_SANITIZERS)
  list(JOIN FERRY_SANITIZERS "," _ferry_san)
  target_compile_options(ferry_sanitizers INTERFACE -fsanitize=${_ferry_san} -fno-omit-frame-pointer
                         -fno-sanitize-recover=all)
  target_link_options(ferry_sanitizers INTERFACE -fsanitize=${_ferry_san})
endif()
if(FERRY_FUZZ)
  # Coverage instrumentation for every library the fuzzers link.
  target_compile_options(ferry_sanitizers INTERFACE -fsanitize=fuzzer-no-link)
endif()
install(TARGETS ferry_warnings ferry_sanitizers EXPORT FerryTargets)

# ferry_add_library(NAME name SOURCES ... DEPS ... [PRIVATE_DEPS ...])
# Creates ferry_<name> with alias ferry::<name>; public headers live in
# <dir>/include/ferry/<name>/ and are installed.
function(ferry_add_library)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target ferry_${ARG_NAME})
  add_library(${target} ${ARG_SOURCES})
  add_library(ferry::${ARG_NAME} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${ARG_NAME} OUTPUT_NAME ferry_${ARG_NAME}
                        POSITION_INDEPENDENT_CODE ON)
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${target} PUBLIC ${ARG_DEPS} ferry_sanitizers
                        PRIVATE ${ARG_PRIVATE_DEPS} $<BUILD_INTERFACE:ferry_warnings>)
  install(TARGETS ${target} EXPORT FerryTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()

# ferry_add_executable(NAME name SOURCES ... DEPS ...)
function(ferry_add_executable)
  cmake_parse_arguments(ARG "" "NAME" "SOURCES;DEPS" ${ARGN})
  add_executable(${ARG_NAME} ${ARG_SOURCES})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS} ferry_sanitizers ferry_warnings)
endfunction()

# ferry_flatbuffers(): tools/cmake/FerrySchemas.cmake, shared with
# find_package(Ferry) users. In this tree the generated targets are installed.
set(FERRY_SCHEMAS_INSTALL ON)
include(FerrySchemas)
