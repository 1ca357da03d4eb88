# Installs cloudmysql into a fresh prefix, builds tests/cmake_consumer against it with
# find_package(cloudmysql), and runs the result against the test server.
foreach(var CLOUDMYSQL_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR CMAKE_GENERATOR POOL_EXAMPLE_SOURCE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake: ${var} is not set")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "failed (${rc}): ${command}")
  endif()
endfunction()

set(prefix ${WORK_DIR}/install)
file(REMOVE_RECURSE ${WORK_DIR})
run(${CMAKE_COMMAND} --install ${CLOUDMYSQL_BUILD_DIR} --prefix ${prefix})
run(${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR} -B ${WORK_DIR}/build -G ${CMAKE_GENERATOR}
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_BUILD_TYPE=Release
    -DPOOL_EXAMPLE_SOURCE=${POOL_EXAMPLE_SOURCE})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/build)

if(DEFINED ENV{CLOUDMYSQL_TEST_URL} AND NOT "$ENV{CLOUDMYSQL_TEST_URL}" STREQUAL "")
  set(url "$ENV{CLOUDMYSQL_TEST_URL}")
else()
  file(STRINGS "$ENV{CLOUDMYSQL_SANDBOX_DIR}/url" url LIMIT_COUNT 1)
endif()
run(${WORK_DIR}/build/consumer "${url}")
# 64 threads on a pool of 16 against max_connections = 20: no error, never more than 16
# sessions on the server (the program checks both and fails otherwise).
run(${CMAKE_COMMAND} -E env "CLOUDMYSQL_URL=${url}"
    ${WORK_DIR}/build/consumer_pool --threads 64 --acquires 100 --size 16)
