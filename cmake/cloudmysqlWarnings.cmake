# Strict warnings for the project's own targets. They are PRIVATE: nothing here reaches the
# exported cloudmysql::cloudmysql target, so a consumer's build is never broken by our flags.
function(cloudmysql_strict_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic -Werror
      -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast
      -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
  endif()
endfunction()
