# ferry_flatbuffers(): FlatBuffers schemas as C++ message contracts.
#
# Included by Ferry's own build and by find_package(Ferry), so users get
# exactly what Ferry's samples use:
#
#   find_package(Ferry REQUIRED)
#   ferry_flatbuffers(TARGET order_contracts INCLUDE_PREFIX orders
#                     SCHEMAS schemas/order_placed.fbs schemas/common.fbs)
#   target_link_libraries(payment_worker PRIVATE order_contracts ferry::runtime)
#   // #include "orders/order_placed_contract.h"
#
# ferry_flatbuffers(TARGET name SCHEMAS a.fbs ... [SUBDIR dir]
#                   [INCLUDE_PREFIX prefix])
# (FERRY_SCHEMAS_INSTALL is Ferry's own switch for installing its schema
# targets with the package; leave it unset in your project.)
# Runs flatc at build time into <binary dir>/generated/<prefix>[/<dir>]
# (prefix defaults to ferry/schemas) and exposes the headers through an
# INTERFACE target `name` (include "<prefix>/[<dir>/]<stem>_generated.h").
# Nothing generated belongs in version control. Per schema it emits the
# object API header (<stem>_generated.h), the binary schema (<stem>.bfbs),
# the binary schema as C++ (<stem>_bfbs_generated.h) and, for a schema with
# a root_type, its contract (<stem>_contract.h: ferry::schema::contract<T>,
# what schema_cache::id_for<T>() and worker::on<T>() take). Schemas may
# include each other by file name; all SCHEMAS of one call are one unit.
include_guard(GLOBAL)
if(NOT FLATC)
  find_program(FLATC flatc)
  if(NOT FLATC)
    message(FATAL_ERROR "flatc not found: install the Debian package flatbuffers-compiler "
                        "(or run Ferry's tools/setup.sh)")
  endif()
endif()

function(ferry_flatbuffers)
  # Next to this file wherever it was included from (a variable set at
  # include time would be missing in other directory scopes).
  set(_FERRY_CONTRACT_SCRIPT ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/FerryContract.cmake)
  cmake_parse_arguments(ARG "" "TARGET;SUBDIR;INCLUDE_PREFIX" "SCHEMAS" ${ARGN})
  if(NOT ARG_TARGET OR NOT ARG_SCHEMAS)
    message(FATAL_ERROR "ferry_flatbuffers: TARGET and SCHEMAS are required")
  endif()
  if(NOT ARG_INCLUDE_PREFIX)
    set(ARG_INCLUDE_PREFIX ferry/schemas)
  endif()
  set(out_dir ${CMAKE_CURRENT_BINARY_DIR}/generated/${ARG_INCLUDE_PREFIX})
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
              -P ${_FERRY_CONTRACT_SCRIPT}
      DEPENDS ${all_schemas} ${FLATC} ${_FERRY_CONTRACT_SCRIPT}
      COMMENT "flatc ${stem}.fbs"
      VERBATIM)
    list(APPEND outputs ${header} ${embedded} ${contract} ${bfbs})
  endforeach()
  add_custom_target(${ARG_TARGET}_gen DEPENDS ${outputs})
  add_library(${ARG_TARGET} INTERFACE)
  add_dependencies(${ARG_TARGET} ${ARG_TARGET}_gen)
  target_include_directories(${ARG_TARGET} INTERFACE
    $<BUILD_INTERFACE:${CMAKE_CURRENT_BINARY_DIR}/generated>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  if(TARGET ferry_schema)  # Ferry's own build
    target_link_libraries(${ARG_TARGET} INTERFACE flatbuffers::flatbuffers ferry_schema)
  else()
    target_link_libraries(${ARG_TARGET} INTERFACE flatbuffers::flatbuffers ferry::schema)
  endif()
  if(FERRY_SCHEMAS_INSTALL)
    add_library(ferry::${ARG_TARGET} ALIAS ${ARG_TARGET})
    set_target_properties(${ARG_TARGET} PROPERTIES EXPORT_NAME ${ARG_TARGET})
    install(TARGETS ${ARG_TARGET} EXPORT FerryTargets)
    install(DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/generated/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  endif()
endfunction()
