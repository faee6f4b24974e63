# Strict warnings for every project target (not for test frameworks).
set(VMGEN_WARNINGS
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wold-style-cast -Wcast-align
  -Wunused -Woverloaded-virtual -Wconversion -Wsign-conversion -Wnull-dereference
  -Wdouble-promotion -Wformat=2 -Wimplicit-fallthrough)
if(VMGEN_WERROR)
  list(APPEND VMGEN_WARNINGS -Werror)
endif()

function(vmgen_target_warnings target)
  target_compile_options(${target} PRIVATE ${VMGEN_WARNINGS})
endfunction()

if(VMGEN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
