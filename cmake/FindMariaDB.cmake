# FindMariaDB: MariaDB Connector/C (libmariadb).
#
# Defines the imported target MariaDB::MariaDB and MariaDB_VERSION. Looks through pkg-config
# (libmariadb.pc) first, then in the usual include and library directories.
include(FindPackageHandleStandardArgs)

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(PC_MariaDB QUIET libmariadb)
endif()

find_path(MariaDB_INCLUDE_DIR mysql.h
  HINTS ${PC_MariaDB_INCLUDE_DIRS}
  PATH_SUFFIXES mariadb)
find_library(MariaDB_LIBRARY NAMES mariadb libmariadb
  HINTS ${PC_MariaDB_LIBRARY_DIRS})

if(MariaDB_INCLUDE_DIR AND EXISTS "${MariaDB_INCLUDE_DIR}/mariadb_version.h")
  file(STRINGS "${MariaDB_INCLUDE_DIR}/mariadb_version.h" _mariadb_version_line
    REGEX "^#define[ \t]+MARIADB_PACKAGE_VERSION[ \t]+\"[^\"]+\"")
  string(REGEX REPLACE ".*\"([^\"]+)\".*" "\\1" MariaDB_VERSION "${_mariadb_version_line}")
  unset(_mariadb_version_line)
endif()

find_package_handle_standard_args(MariaDB
  REQUIRED_VARS MariaDB_LIBRARY MariaDB_INCLUDE_DIR
  VERSION_VAR MariaDB_VERSION
  REASON_FAILURE_MESSAGE "install MariaDB Connector/C (Debian: apt-get install libmariadb-dev)")

if(MariaDB_FOUND AND NOT TARGET MariaDB::MariaDB)
  add_library(MariaDB::MariaDB UNKNOWN IMPORTED)
  set_target_properties(MariaDB::MariaDB PROPERTIES
    IMPORTED_LOCATION "${MariaDB_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${MariaDB_INCLUDE_DIR}")
endif()
mark_as_advanced(MariaDB_INCLUDE_DIR MariaDB_LIBRARY)
