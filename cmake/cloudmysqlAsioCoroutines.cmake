# Boost.Asio's coroutine support (awaitable, co_spawn, use_awaitable) for the project's targets
# that use it.
#
# Boost 1.74's asio/detail/config.hpp turns co_await support on for Clang only when
# <experimental/coroutine> exists, which libc++ had and libstdc++ (Debian's default standard
# library for Clang too) never had; so under Clang with libstdc++, awaitable and co_spawn are
# not declared at all. BOOST_ASIO_HAS_CO_AWAIT says the compiler has co_await (Clang does in
# C++20). BOOST_ASIO_HAS_STD_COROUTINE, which picks <coroutine> over the experimental header,
# Asio already sets by itself under Clang: Clang defines __GNUC__, and that branch of the
# check looks for <coroutine>. GCC needs nothing. Both macros are tested with #if !defined,
# so defining one that a newer Boost would set by itself changes nothing.
#
# A user's program that uses use_awaitable under Clang needs the same definition (README,
# "Asynchronous use"); the library itself does not use coroutines, so the exported target
# does not carry it.
function(cloudmysql_asio_coroutines target)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    target_compile_definitions(${target} PRIVATE BOOST_ASIO_HAS_CO_AWAIT=1)
  endif()
endfunction()
