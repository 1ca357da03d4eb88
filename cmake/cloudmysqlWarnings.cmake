# The project's warnings, for its own targets. They are PRIVATE: nothing here reaches the
# exported cloudmysql::cloudmysql target.
#
# The warnings are on when cloudmysql is the top-level project. As a subproject
# (add_subdirectory, FetchContent) the library compiles with the consumer's flags alone.
#
# Warnings become errors only with CLOUDMYSQL_WARNINGS_AS_ERRORS=ON, which the presets (and so
# scripts/test and CI) turn on. A user's plain build, a packager's, or one with a newer
# compiler that warns about something new must never stop on a warning the project did not see.
option(CLOUDMYSQL_WARNINGS_AS_ERRORS
  "Treat the project's compiler warnings as errors (the presets turn it on)" OFF)

function(cloudmysql_strict_warnings target)
  if(NOT CLOUDMYSQL_TOP_LEVEL AND NOT CLOUDMYSQL_WARNINGS_AS_ERRORS)
    return()
  endif()
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic
      -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast
      -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
    if(CLOUDMYSQL_WARNINGS_AS_ERRORS)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()
