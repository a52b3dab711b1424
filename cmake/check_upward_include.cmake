# cmake -DSRC=<src> -DROOTS=<build>/layers -DCXX=<compiler> -DWORK=<dir> -P
#   check_upward_include.cmake
# An upward include does not build: for every layer L and every layer M that L may not
# include (cmake/layers.cmake), a probe source `#include "M/<a header of M>"` compiled the
# way L's sources are (-I build/layers/L) must fail, with the compiler saying it cannot find
# that header. And every header L may include is there in L's include root.
cmake_minimum_required(VERSION 3.25)  # script mode: IN_LIST and friends
include(${CMAKE_CURRENT_LIST_DIR}/layers.cmake)
nimbus_check_layer_table()
foreach(var SRC ROOTS CXX WORK)
  if(NOT ${var})
    message(FATAL_ERROR "usage: cmake -DSRC= -DROOTS= -DCXX= -DWORK= -P check_upward_include.cmake")
  endif()
endforeach()
file(MAKE_DIRECTORY ${WORK})

set(problems "")
set(probes 0)
foreach(layer IN LISTS NIMBUS_LAYERS)
  set(root ${ROOTS}/${layer})
  if(NOT IS_DIRECTORY ${root})
    list(APPEND problems "${layer}: no include root ${root} (configure the build first)")
    continue()
  endif()
  nimbus_layer_closure(${layer} allowed)
  foreach(other IN LISTS NIMBUS_LAYERS)
    file(GLOB_RECURSE headers RELATIVE ${SRC} ${SRC}/${other}/*.h)
    list(FILTER headers EXCLUDE REGEX "_test|test_")
    if(NOT headers)
      continue()  # nothing to include yet
    endif()
    list(SORT headers)
    list(GET headers 0 header)
    if(other IN_LIST allowed)
      if(NOT EXISTS ${root}/${header})
        list(APPEND problems "${layer} may include ${other}, but ${root}/${header} is missing")
      endif()
      continue()
    endif()
    # A forbidden pair: the compiler must not find the header.
    set(probe ${WORK}/${layer}_includes_${other}.cpp)
    file(WRITE ${probe} "#include \"${header}\"\n")
    execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -I ${root} ${probe}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    math(EXPR probes "${probes} + 1")
    string(REPLACE "." "\\." header_re "${header}")
    if(rc EQUAL 0)
      list(APPEND problems "${layer} can include ${header} (a layer above it): the probe built")
    elseif(NOT err MATCHES "${header_re}.*(No such file|not found)")
      list(APPEND problems "${layer} including ${header}: failed, but not for a missing header:\n${err}")
    elseif(layer STREQUAL "cpu" AND other STREQUAL "machine")
      # One example of what an upward include looks like, for the log.
      string(STRIP "${err}" err)
      message(STATUS "e.g. cpu including ${header}:\n${err}")
    endif()
  endforeach()
endforeach()

if(problems)
  list(JOIN problems "\n  " text)
  message(FATAL_ERROR "the layers' include roots do not hold:\n  ${text}")
endif()
message(STATUS "${probes} upward includes probed: none builds")
