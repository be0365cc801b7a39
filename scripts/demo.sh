#!/bin/sh
# Runs the built example programs in turn, each under a "== <name> ==" banner.
#
#   scripts/demo.sh [BUILD_DIR]     (default ./build)
#
# The examples run as their Python originals do (real time: rand, chained,
# async_iterator and async_generator take about ten seconds each; the whole
# demo about a minute and a half).  The HTTP clients (status_checker,
# crawler) run against examples/http_server serving examples/site, started
# by examples/with_server.sh, over http and https (trusting the server's
# throwaway certificate, which with_server.sh leaves in the work
# directory).  Exits non-zero if an example is missing (not built) or fails.
set -u

build=${1:-./build}
dir=$build/examples
root=$(cd "$(dirname "$0")/.." && pwd)
# One program per line: name, then its arguments.
examples='countasync
countsync
rand
chained
call_soon
call_later
call_at
future_callback
cancel_task
cancel_task2
create_task_result
gather_tasks
as_completed_tasks
exception_group
gather_many
wait_all 1
wait_for_timeout 1
shield_task
common_questions
wait
wait_timeout
gather
as_completed
lock
event
condition
queue
asyncq -p 2 -c 5
mygen
powers_of_two
async_iterator
async_generator
async_context_manager
async_comprehension
echo_protocol
echo_streams
echo_ssl
getaddrinfo
getnameinfo
chat_server --demo
signal_handler
subprocess
subprocess_protocol
file_io'

if [ ! -d "$dir" ]; then
  echo "demo.sh: no examples in $dir (build with -DASYNCIO_BUILD_EXAMPLES=ON)" >&2
  exit 2
fi

failed=""
run() {
  name=$1
  echo "== $* =="
  if [ ! -x "$dir/$name" ]; then
    echo "demo.sh: $dir/$name is not built" >&2
    failed="$failed $name"
    return
  fi
  shift
  "$dir/$name" "$@" </dev/null
  status=$?
  if [ "$status" -ne 0 ]; then
    echo "demo.sh: $name failed (exit status $status)" >&2
    failed="$failed $name"
  fi
}

# A here-document keeps the loop in this shell (a pipe would run it in a subshell).
while read -r line; do
  # shellcheck disable=SC2086
  run $line
done <<LIST
$examples
LIST

# The two HTTP clients, against our own static server on examples/site.
for client in status_checker crawler; do
  echo "== $client (against examples/http_server) =="
  if [ ! -x "$dir/$client" ] || [ ! -x "$dir/http_server" ]; then
    echo "demo.sh: $client or http_server is not built" >&2
    failed="$failed $client"
    continue
  fi
  work=$(mktemp -d)
  if [ "$client" = crawler ]; then
    set -- -o "$work/foundurls.txt" --cafile "$work/cert.pem" "http://127.0.0.1:@PORT@/" \
      "http://127.0.0.1:@PORT@/about.html" "https://127.0.0.1:@TLSPORT@/docs"
  else
    set -- --cafile "$work/cert.pem" "http://127.0.0.1:@PORT@/" \
      "http://127.0.0.1:@PORT@/missing.html" "https://127.0.0.1:@TLSPORT@/about.html"
  fi
  sh "$root/examples/with_server.sh" "$work" "$dir/http_server" "$root/examples/site" \
    "$dir/$client" "$@"
  cat "$work/client.out" "$work/client.err"
  if [ "$(cat "$work/client.rc" 2>/dev/null)" != 0 ]; then
    echo "demo.sh: $client failed" >&2
    failed="$failed $client"
  fi
  if [ "$client" = crawler ] && [ -f "$work/foundurls.txt" ]; then
    echo "-- foundurls.txt:"
    cat "$work/foundurls.txt"
  fi
  rm -rf "$work"
done

if [ -n "$failed" ]; then
  echo "demo.sh: failed:$failed" >&2
  exit 1
fi
