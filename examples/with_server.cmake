# Runs an example client against examples/http_server serving a copy of
# examples/site, and checks what both did.
#
#   cmake -DSERVER=<http_server> -DSITE=<dir> -DWORKDIR=<dir> -DCLIENT=<program>
#         -DARGS="<space-separated arguments>" -DEXPECTED=<file>
#         [-DSORT=1] [-DSERVER_LOG=<file>] [-DOUTPUT=<name> -DOUTPUT_EXPECTED=<file>]
#         -P with_server.cmake
#
# In ARGS, @PORT@ is the server's plain HTTP port and @TLSPORT@ its HTTPS
# one (with_server.sh puts them in), @WORKDIR@ the work directory; the
# server's certificate is @WORKDIR@/cert.pem.  Checks:
#   - the client and the server exit 0 and write nothing to stderr;
#   - the client's stdout is EXPECTED once the port numbers (after
#     127.0.0.1:, 127.1: and localhost:) are replaced by PORT, every
#     HH:MM:SS time of day by <time> and a padding of spaces before ":<TAB>"
#     by one space; with SORT=1 its lines are sorted first (the log of
#     concurrent work comes in any order);
#   - SERVER_LOG: the server's request log, sorted, is that file;
#   - OUTPUT: the file the client wrote in WORKDIR is OUTPUT_EXPECTED, its
#     first line as it is and the others sorted.
cmake_minimum_required(VERSION 3.18) # CMP0053: "@WORKDIR@" is a plain string
foreach(var SERVER SITE WORKDIR CLIENT EXPECTED)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "with_server.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORKDIR})
file(MAKE_DIRECTORY ${WORKDIR})
file(COPY ${SITE}/ DESTINATION ${WORKDIR}/site)

string(REPLACE "@WORKDIR@" "${WORKDIR}" args "${ARGS}")
separate_arguments(args UNIX_COMMAND "${args}")
get_filename_component(here ${CMAKE_CURRENT_LIST_FILE} DIRECTORY)
execute_process(COMMAND sh ${here}/with_server.sh ${WORKDIR} ${SERVER} ${WORKDIR}/site
                        ${CLIENT} ${args}
                RESULT_VARIABLE status)

set(failed FALSE)
macro(fail text)
  message(NOTICE "${text}")
  set(failed TRUE)
endmacro()

if(NOT status STREQUAL "0")
  fail("with_server.sh exit status: ${status}")
endif()
foreach(who client server)
  foreach(f ${who}.rc ${who}.err ${who}.out)
    if(NOT EXISTS ${WORKDIR}/${f})
      file(WRITE ${WORKDIR}/${f} "")
    endif()
  endforeach()
  file(READ ${WORKDIR}/${who}.rc rc)
  string(STRIP "${rc}" rc)
  if(NOT rc STREQUAL "0")
    fail("${who} exit status: '${rc}'")
  endif()
  file(READ ${WORKDIR}/${who}.err err)
  if(NOT err STREQUAL "")
    fail("unexpected output on the ${who}'s stderr:\n${err}")
  endif()
endforeach()

# The ports and the times of day change from run to run.  127.1 is
# 127.0.0.1 too (status_checker and crawler use it for a certificate that
# does not match).
function(normalize var)
  string(REGEX REPLACE "(127\\.0\\.0\\.1|127\\.1|localhost):[0-9]+" "\\1:PORT" text
                       "${${var}}")
  string(REGEX REPLACE "[0-9][0-9]:[0-9][0-9]:[0-9][0-9]" "<time>" text "${text}")
  # status_checker's f'{url:30}:' padding depends on how many digits the port has
  string(REGEX REPLACE "  +:\t" " :\t" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

# Sorts the lines of a text (from line `from` on, 0-based); keeps the final newline.
function(sort_lines var from)
  string(REGEX REPLACE "\n$" "" text "${${var}}")
  if(text STREQUAL "")
    return()
  endif()
  string(REPLACE ";" "\\;" text "${text}")
  string(REPLACE "\n" ";" lines "${text}")
  list(LENGTH lines n)
  set(head "")
  if(from GREATER 0 AND n GREATER 0)
    list(SUBLIST lines 0 ${from} head)
    list(SUBLIST lines ${from} -1 lines)
  endif()
  list(SORT lines)
  list(APPEND head ${lines})
  string(REPLACE ";" "\n" text "${head}")
  string(REPLACE "\\\n" ";" text "${text}")
  set(${var} "${text}\n" PARENT_SCOPE)
endfunction()

function(check what actual expected_file)
  file(READ ${expected_file} expected)
  if(NOT actual STREQUAL expected)
    message(NOTICE "--- expected ${what} (${expected_file})\n${expected}--- actual\n${actual}---")
    set(failed TRUE PARENT_SCOPE)
  endif()
endfunction()

file(READ ${WORKDIR}/client.out out)
normalize(out)
if(SORT)
  sort_lines(out 0)
endif()
check("client output" "${out}" ${EXPECTED})

if(DEFINED SERVER_LOG)
  file(READ ${WORKDIR}/server.out log)
  normalize(log)
  sort_lines(log 0)
  check("server log" "${log}" ${SERVER_LOG})
endif()

if(DEFINED OUTPUT)
  if(EXISTS ${WORKDIR}/${OUTPUT})
    file(READ ${WORKDIR}/${OUTPUT} written)
  else()
    set(written "")
  endif()
  normalize(written)
  sort_lines(written 1)
  check("${OUTPUT}" "${written}" ${OUTPUT_EXPECTED})
endif()

if(failed)
  message(FATAL_ERROR "${CLIENT} ${ARGS}: output does not match (see ${WORKDIR})")
endif()
message(STATUS "output matches ${EXPECTED}")
