# Fails when a file in SOURCE_DIR reads a field of libmariadb's MYSQL or MYSQL_STMT structs
# (mysql->db, stmt->mysql, ...). Their layout is libmariadb's business; what the library needs
# comes through functions: mysql_*(), mysql_stmt_*() and mariadb_get_infov()
# (MARIADB_CONNECTION_SERVER_STATUS, _SCHEMA, _SERVER_CAPABILITIES, ...). MYSQL_FIELD and
# MYSQL_BIND are documented structs and fine. Comment lines are skipped.
file(GLOB_RECURSE sources "${SOURCE_DIR}/*.cpp" "${SOURCE_DIR}/*.hpp")
set(found "")
foreach(source IN LISTS sources)
  file(STRINGS "${source}" lines REGEX "(^|[^A-Za-z0-9_])(mysql|stmt)->[A-Za-z_]")
  foreach(line IN LISTS lines)
    string(STRIP "${line}" line)
    if(line MATCHES "^//")
      continue()
    endif()
    file(RELATIVE_PATH name "${SOURCE_DIR}" "${source}")
    string(APPEND found "\n  ${name}: ${line}")
  endforeach()
endforeach()
if(NOT found STREQUAL "")
  message(FATAL_ERROR "libmariadb's structs read field by field (use mysql_*() or "
                      "mariadb_get_infov() instead):${found}")
endif()
message(STATUS "no MYSQL or MYSQL_STMT field is read in ${SOURCE_DIR}")
