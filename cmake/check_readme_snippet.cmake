# Fails unless README contains SOURCE's text verbatim (inside a ```cpp block).
file(READ "${README}" readme)
file(READ "${SOURCE}" source)
string(FIND "${readme}" "```cpp\n${source}```" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${README} does not show ${SOURCE} verbatim: copy the file into the "
                      "README's ```cpp block")
endif()
message(STATUS "README shows ${SOURCE} verbatim")
