#!/bin/sh
# Runs an example client against examples/http_server (POSIX sh; called by
# with_server.cmake, which checks the results).
#
#   sh with_server.sh WORKDIR SERVER SITE CLIENT [ARG...]
#
# Starts SERVER --print-port --until-eof SITE in the background with its
# stdin on a FIFO, reads the port it prints first, runs CLIENT with every
# @PORT@ in its arguments replaced by that port, then closes the FIFO: the
# server sees EOF on stdin and stops by itself (a clean exit, so sanitizers
# can check it).  Leaves in WORKDIR: client.out, client.err, client.rc,
# server.out (the request log, after the port line), server.err, server.rc.
set -u
work=$1 server=$2 site=$3 client=$4
shift 4

rm -f "$work/ctl" "$work/client.rc" "$work/server.rc"
mkfifo "$work/ctl" || exit 1

# Both ends of the pipeline open the FIFO; each open waits for the other.
{
  "$server" --print-port --until-eof "$site" <"$work/ctl" 2>"$work/server.err"
  echo $? >"$work/server.rc"
} | {
  exec 3>"$work/ctl"
  if read -r port && case $port in '' | *[!0-9]*) false ;; esac; then
    n=$#
    while [ "$n" -gt 0 ]; do
      a=$1
      shift
      case $a in *@PORT@*) a=${a%%@PORT@*}$port${a#*@PORT@} ;; esac
      set -- "$@" "$a"
      n=$((n - 1))
    done
    "$client" "$@" >"$work/client.out" 2>"$work/client.err"
    echo $? >"$work/client.rc"
  else
    echo "with_server.sh: the server printed no port" >"$work/client.err"
    : >"$work/client.out"
    echo 99 >"$work/client.rc"
  fi
  exec 3>&- # EOF on the server's stdin: it stops
  cat >"$work/server.out"
}
rm -f "$work/ctl"
