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

# ferry_flatbuffers(TARGET name SCHEMAS a.fbs ... [SUBDIR dir])
# Runs flatc at build time into ${CMAKE_CURRENT_BINARY_DIR}/generated/ferry/
# schemas[/SUBDIR] and exposes the headers through an INTERFACE target
# (include "ferry/schemas/[SUBDIR/]<stem>_generated.h"). Nothing generated is
# committed. Per schema it also emits the binary schema (<stem>.bfbs), the
# binary schema as C++ (<stem>_bfbs_generated.h) and, for a schema with a
# root_type, its contract (<stem>_contract.h, ferry/schema/contract.h).
set(FERRY_CONTRACT_SCRIPT ${CMAKE_CURRENT_LIST_DIR}/FerryContract.cmake)
function(ferry_flatbuffers)
  cmake_parse_arguments(ARG "" "TARGET;SUBDIR" "SCHEMAS" ${ARGN})
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/generated/ferry/schemas)
  if(ARG_SUBDIR)
    set(out_dir ${out_dir}/${ARG_SUBDIR})
  endif()
  set(outputs)
  set(all_schemas)  # a schema's outputs depend on every schema it may include
  foreach(schema ${ARG_SCHEMAS})
    get_filename_component(abs ${schema} ABSOLUTE)
    list(APPEND all_schemas ${abs})
  endforeach()
  foreach(schema ${ARG_SCHEMAS})
    get_filename_component(abs ${schema} ABSOLUTE)
    get_filename_component(stem ${schema} NAME_WE)
    get_filename_component(dir ${abs} DIRECTORY)
    set(header ${out_dir}/${stem}_generated.h)
    set(embedded ${out_dir}/${stem}_bfbs_generated.h)
    set(contract ${out_dir}/${stem}_contract.h)
    set(bfbs ${out_dir}/${stem}.bfbs)
    add_custom_command(OUTPUT ${header} ${embedded} ${contract} ${bfbs}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${out_dir}
      COMMAND ${FLATC} --cpp --cpp-std c++17 --scoped-enums --bfbs-gen-embed
              --bfbs-comments --bfbs-builtins -o ${out_dir} -I ${CMAKE_CURRENT_SOURCE_DIR} -I ${dir} ${abs}
      COMMAND ${FLATC} --binary --schema --bfbs-comments --bfbs-builtins
              -o ${out_dir} -I ${CMAKE_CURRENT_SOURCE_DIR} -I ${dir} ${abs}
      COMMAND ${CMAKE_COMMAND} -DFBS=${abs} -DSTEM=${stem} -DOUT=${out_dir}
              -P ${FERRY_CONTRACT_SCRIPT}
      DEPENDS ${all_schemas} ${FLATC} ${FERRY_CONTRACT_SCRIPT}
      COMMENT "flatc ${stem}.fbs"
      VERBATIM)
    list(APPEND outputs ${header} ${embedded} ${contract} ${bfbs})
  endforeach()
  add_custom_target(${ARG_TARGET}_gen DEPENDS ${outputs})
  add_library(${ARG_TARGET} INTERFACE)
  add_library(ferry::${ARG_TARGET} ALIAS ${ARG_TARGET})
  add_dependencies(${ARG_TARGET} ${ARG_TARGET}_gen)
  target_include_directories(${ARG_TARGET} INTERFACE
    $<BUILD_INTERFACE:${CMAKE_CURRENT_BINARY_DIR}/generated>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  target_link_libraries(${ARG_TARGET} INTERFACE flatbuffers::flatbuffers ferry_schema)
  set_target_properties(${ARG_TARGET} PROPERTIES EXPORT_NAME ${ARG_TARGET})
  install(TARGETS ${ARG_TARGET} EXPORT FerryTargets)
  install(DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/generated/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endfunction()
