# moe_cc_library(NAME name SRCS ... HDRS ... DEPS ... [COPTS ...])
#   One library target per unit someone would test alone. Include paths are the repository root
#   (so includes read "model/safetensors.h") and the generated-proto directory.
# moe_cc_test(NAME name SRCS ... DEPS ... LABELS unit|integration|golden|gpu [ARGS ...])
# moe_cc_binary(NAME name SRCS ... DEPS ...)
set(MOE_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)

function(moe_cc_library)
  cmake_parse_arguments(A "" "NAME" "SRCS;HDRS;DEPS;COPTS" ${ARGN})
  if(A_SRCS)
    add_library(${A_NAME} STATIC ${A_SRCS} ${A_HDRS})
    target_include_directories(${A_NAME} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
    target_link_libraries(${A_NAME} PUBLIC ${A_DEPS})
    target_compile_options(${A_NAME} PRIVATE ${MOE_WARNINGS} ${A_COPTS})
  else()
    add_library(${A_NAME} INTERFACE ${A_HDRS})
    target_include_directories(${A_NAME} INTERFACE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
    target_link_libraries(${A_NAME} INTERFACE ${A_DEPS})
  endif()
endfunction()

function(moe_cc_binary)
  cmake_parse_arguments(A "" "NAME;OUTPUT_NAME" "SRCS;DEPS;COPTS" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS})
  target_compile_options(${A_NAME} PRIVATE ${MOE_WARNINGS} ${A_COPTS})
  if(A_OUTPUT_NAME)
    set_target_properties(${A_NAME} PROPERTIES OUTPUT_NAME ${A_OUTPUT_NAME})
  endif()
endfunction()

function(moe_cc_test)
  cmake_parse_arguments(A "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS;ARGS;ENV" ${ARGN})
  add_executable(${A_NAME} ${A_SRCS})
  target_link_libraries(${A_NAME} PRIVATE ${A_DEPS} moe_subprocess GTest::gmock GTest::gtest_main)
  target_include_directories(${A_NAME} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${A_NAME} PRIVATE ${MOE_WARNINGS})
  target_compile_definitions(${A_NAME} PRIVATE
    MOE_GOLDEN_DIR="${MOE_GOLDEN_DIR}"
    MOE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    MOE_BINARY_DIR="${PROJECT_BINARY_DIR}")
  add_test(NAME ${A_NAME} COMMAND ${A_NAME} ${A_ARGS})
  if(NOT A_LABELS)
    set(A_LABELS unit)
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  # Exit code 77 = skipped (e.g. a gpu test without a device).
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABELS}" TIMEOUT ${A_TIMEOUT}
    SKIP_RETURN_CODE 77 ENVIRONMENT "MOE_BIN=$<TARGET_FILE_DIR:moe>/moe;${A_ENV}")
endfunction()
