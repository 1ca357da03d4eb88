# Builds tests/cmake_consumer with cloudmysql's source tree inside it, once through
# add_subdirectory and once through FetchContent, as a plain Release build of the user's, and
# runs the result against the test server. The user's build must not inherit the project's
# own warnings nor warnings as errors: a compiler that warns about something new must never
# stop a user's build. compile_commands.json shows every flag each file was compiled with.
foreach(var CLOUDMYSQL_SOURCE_DIR CONSUMER_SOURCE_DIR WORK_DIR CMAKE_GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_subproject.cmake: ${var} is not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "failed (${rc}): ${command}")
  endif()
endfunction()

if(DEFINED ENV{CLOUDMYSQL_TEST_URL} AND NOT "$ENV{CLOUDMYSQL_TEST_URL}" STREQUAL "")
  set(url "$ENV{CLOUDMYSQL_TEST_URL}")
else()
  file(STRINGS "$ENV{CLOUDMYSQL_SANDBOX_DIR}/url" url LIMIT_COUNT 1)
endif()

# The test run's compiler launcher (ccache), so that the two builds share their compiles.
set(launcher)
if(CMAKE_CXX_COMPILER_LAUNCHER)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER})
endif()

file(REMOVE_RECURSE ${WORK_DIR})
foreach(mode add_subdirectory FetchContent)
  set(build ${WORK_DIR}/${mode})
  run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${build} -G ${CMAKE_GENERATOR}
      -DCLOUDMYSQL_CONSUME=${mode} -DCLOUDMYSQL_SOURCE_DIR=${CLOUDMYSQL_SOURCE_DIR}
      -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON ${launcher})

  file(READ ${build}/compile_commands.json commands)
  string(FIND "${commands}" "/src/connection.cpp" library_compiled)
  if(library_compiled EQUAL -1)
    message(FATAL_ERROR "${mode}: cloudmysql's sources are not part of the consumer's build")
  endif()
  foreach(flag -Werror -Wshadow -Wconversion -Wold-style-cast)
    string(FIND "${commands}" "${flag}" at)
    if(NOT at EQUAL -1)
      message(FATAL_ERROR "${mode}: the consumer's build compiles with cloudmysql's ${flag} "
        "(see ${build}/compile_commands.json): the project's warnings and warnings as errors "
        "must stay in its own builds")
    endif()
  endforeach()

  run(${CMAKE_COMMAND} --build ${build})
  run(${build}/consumer "${url}")
endforeach()
