#!/bin/sh
# Runs an example client against examples/http_server (POSIX sh; called by
# with_server.cmake, which checks the results).
#
#   sh with_server.sh WORKDIR SERVER SITE CLIENT [ARG...]
#
# Starts SERVER --tls-cert WORKDIR/cert.pem --print-port --until-eof SITE in
# the background with its stdin on a FIFO, reads the two ports it prints
# first (plain HTTP, then HTTPS), runs CLIENT with every @PORT@ in its
# arguments replaced by the first and every @TLSPORT@ by the second, then
# closes the FIFO: the server sees EOF on stdin and stops by itself (a clean
# exit, so sanitizers can check it).  Leaves in WORKDIR: cert.pem (the
# server's self-signed certificate, for the client's --cafile), client.out,
# client.err, client.rc, server.out (the request log, after the port line),
# server.err, server.rc.
set -u
work=$1 server=$2 site=$3 client=$4
shift 4

rm -f "$work/ctl" "$work/client.rc" "$work/server.rc" "$work/cert.pem"
mkfifo "$work/ctl" || exit 1

# Both ends of the pipeline open the FIFO; each open waits for the other.
{
  "$server" --tls-cert "$work/cert.pem" --print-port --until-eof "$site" <"$work/ctl" \
    2>"$work/server.err"
  echo $? >"$work/server.rc"
} | {
  exec 3>"$work/ctl"
  if read -r port tlsport &&
    case $port in '' | *[!0-9]*) false ;; esac &&
    case $tlsport in '' | *[!0-9]*) false ;; esac; then
    n=$#
    while [ "$n" -gt 0 ]; do
      a=$1
      shift
      while :; do
        case $a in
          *@PORT@*) a=${a%%@PORT@*}$port${a#*@PORT@} ;;
          *@TLSPORT@*) a=${a%%@TLSPORT@*}$tlsport${a#*@TLSPORT@} ;;
          *) break ;;
        esac
      done
      set -- "$@" "$a"
      n=$((n - 1))
    done
    "$client" "$@" >"$work/client.out" 2>"$work/client.err"
    echo $? >"$work/client.rc"
  else
    echo "with_server.sh: the server printed no ports" >"$work/client.err"
    : >"$work/client.out"
    echo 99 >"$work/client.rc"
  fi
  exec 3>&- # EOF on the server's stdin: it stops
  cat >"$work/server.out"
}
rm -f "$work/ctl"
