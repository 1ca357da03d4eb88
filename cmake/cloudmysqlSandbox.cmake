# CTest fixtures that start throwaway MariaDB servers for the tests and examples, and stop
# them afterwards, also when a test fails (FIXTURES_CLEANUP always runs).
#   cloudmysql_sandbox   TLS required, max_connections=20, connect_timeout=3
#   cloudmysql_plain     no TLS at all: proves ssl-mode=REQUIRED never falls back to plaintext
# With CLOUDMYSQL_TEST_URL set, the tests use that server and the TLS sandbox is not started.
set(CLOUDMYSQL_SANDBOX_DIR ${CMAKE_BINARY_DIR}/sandbox/tls)
set(CLOUDMYSQL_PLAIN_SANDBOX_DIR ${CMAKE_BINARY_DIR}/sandbox/plain)
set(_sandbox ${PROJECT_SOURCE_DIR}/scripts/mariadb-sandbox)
set(_unless_url ${PROJECT_SOURCE_DIR}/tests/unless-test-url)

add_test(NAME sandbox_start COMMAND ${_unless_url} ${_sandbox} start ${CLOUDMYSQL_SANDBOX_DIR})
add_test(NAME sandbox_stop COMMAND ${_sandbox} stop ${CLOUDMYSQL_SANDBOX_DIR})
add_test(NAME sandbox_plain_start
  COMMAND ${_sandbox} start ${CLOUDMYSQL_PLAIN_SANDBOX_DIR} --no-tls)
add_test(NAME sandbox_plain_stop COMMAND ${_sandbox} stop ${CLOUDMYSQL_PLAIN_SANDBOX_DIR})
set_tests_properties(sandbox_start PROPERTIES FIXTURES_SETUP cloudmysql_sandbox)
set_tests_properties(sandbox_stop PROPERTIES FIXTURES_CLEANUP cloudmysql_sandbox)
set_tests_properties(sandbox_plain_start PROPERTIES FIXTURES_SETUP cloudmysql_plain)
set_tests_properties(sandbox_plain_stop PROPERTIES FIXTURES_CLEANUP cloudmysql_plain)
set_tests_properties(sandbox_start sandbox_stop sandbox_plain_start sandbox_plain_stop
  PROPERTIES LABELS sandbox TIMEOUT 90 RESOURCE_LOCK sandbox_lifecycle)

# What a test needs to find the servers.
set(CLOUDMYSQL_SANDBOX_ENVIRONMENT
  CLOUDMYSQL_SANDBOX_DIR=${CLOUDMYSQL_SANDBOX_DIR}
  CLOUDMYSQL_PLAIN_SANDBOX_DIR=${CLOUDMYSQL_PLAIN_SANDBOX_DIR})

# Runs `target args...` as a test against the TLS sandbox (or CLOUDMYSQL_TEST_URL).
function(cloudmysql_add_server_test name)
  add_test(NAME ${name} COMMAND ${ARGN})
  set_tests_properties(${name} PROPERTIES
    FIXTURES_REQUIRED cloudmysql_sandbox
    ENVIRONMENT "${CLOUDMYSQL_SANDBOX_ENVIRONMENT}"
    TIMEOUT 300)
endfunction()
