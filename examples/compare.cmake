# Runs one example and compares its output with the expected transcript.
#
#   cmake -DEXE=<program> -DARGS="<space-separated arguments>"
#         -DEXPECTED=<file> -DNORMALIZE=0|1 -P compare.cmake
#
# The program must exit 0, write nothing to stderr, and print exactly the
# expected text.  With NORMALIZE=1 every decimal number in its output (the
# timings, loop and wall-clock times) becomes <float>, and every HH:MM:SS
# time of day <time>, first, so the check
# is exact but independent of timing; the expected file is written that way.
foreach(var EXE EXPECTED)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "compare.cmake: ${var} is not set")
  endif()
endforeach()

separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${EXE} ${args}
                OUTPUT_VARIABLE out
                ERROR_VARIABLE err
                RESULT_VARIABLE status)

if(NORMALIZE)
  string(REGEX REPLACE "[0-9]+\\.[0-9]+" "<float>" out "${out}")
  # wall-clock times of day, time.strftime("%X")
  string(REGEX REPLACE "[0-9][0-9]:[0-9][0-9]:[0-9][0-9]" "<time>" out "${out}")
endif()
file(READ ${EXPECTED} expected)

# message(NOTICE) prints the transcripts verbatim; the error comes last.
set(failed FALSE)
if(NOT status STREQUAL "0")
  message(NOTICE "exit status: ${status}")
  set(failed TRUE)
endif()
if(NOT err STREQUAL "")
  message(NOTICE "unexpected output on stderr:\n${err}")
  set(failed TRUE)
endif()
if(NOT out STREQUAL expected)
  message(NOTICE "--- expected (${EXPECTED})\n${expected}--- actual\n${out}---")
  set(failed TRUE)
endif()
if(failed)
  message(FATAL_ERROR "${EXE} ${ARGS}: output does not match the transcript")
endif()
message(STATUS "output matches ${EXPECTED}")
