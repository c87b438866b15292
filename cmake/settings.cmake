# Compiler settings shared by every target.
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_ARCHITECTURES ${KB_CUDA_ARCHITECTURES})
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
if(NOT CMAKE_BUILD_TYPE)
  set(CMAKE_BUILD_TYPE RelWithDebInfo)
endif()
# Binaries find the libraries carried beside them (lib/) before the system's.
set(CMAKE_BUILD_RPATH "$ORIGIN/lib;$ORIGIN/../lib")
add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-Wall> $<$<COMPILE_LANGUAGE:CXX>:-Wextra>
                    $<$<COMPILE_LANGUAGE:CXX>:-Wno-missing-field-initializers>)
set(KB_SOURCE_DIR ${PROJECT_SOURCE_DIR})
execute_process(COMMAND git -C ${PROJECT_SOURCE_DIR} rev-parse --short=12 HEAD
                OUTPUT_VARIABLE KB_GIT_COMMIT OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT KB_GIT_COMMIT)
  set(KB_GIT_COMMIT "unknown")
endif()
# A new commit re-runs the configure step, so the commit that `kbench --version` and every stored
# run report is the one built, not the one first configured.
if(EXISTS ${PROJECT_SOURCE_DIR}/.git/HEAD)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/.git/HEAD)
  file(READ ${PROJECT_SOURCE_DIR}/.git/HEAD kb_git_head)
  if(kb_git_head MATCHES "^ref: ([^\n]+)" AND EXISTS ${PROJECT_SOURCE_DIR}/.git/${CMAKE_MATCH_1})
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
                                           ${PROJECT_SOURCE_DIR}/.git/${CMAKE_MATCH_1})
  endif()
endif()
# Every executable lands in build/bin so kbench finds kbench-worker beside itself.
set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)
