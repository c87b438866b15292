#!/bin/sh
# Stand-in for kbench-worker in the isolation tests: the reference mode answers every command,
# the candidate mode misbehaves as $KB_FAKE_BEHAVIOUR says.
if [ "$1" = reference ]; then
  echo '{"event":"ready"}' >&3
  while read -r line; do
    case "$line" in
      *'"begin"'*) echo '{"ok":true,"mailboxes":[]}' >&3 ;;
      *'"end"'*) exit 0 ;;
      *) echo '{"ok":true,"reason":"","outputs":[]}' >&3 ;;
    esac
  done
  exit 0
fi
read -r job
case "$KB_FAKE_BEHAVIOUR" in
  exit0) exit 0 ;;
  hang) echo '{"event":"ready"}' >&3; sleep 1000 ;;
  crash) echo 'about to crash' >&2; kill -SEGV $$ ;;
  flood) head -c 100000000 /dev/zero; exit 0 ;;
  fork) (sleep 1000 &) ; exit 0 ;;
  garbage) echo 'this is not json' >&3; sleep 1000 ;;
  failure) echo '{"event":"ready"}' >&3
           echo '{"event":"failure","outcome":"load_error","message":"dlopen failed: fake"}' >&3
           exit 1 ;;
  cwd) echo "{\"event\":\"failure\",\"outcome\":\"runtime_error\",\"message\":\"$(pwd) $CUDA_VISIBLE_DEVICES $(ulimit -c)\"}" >&3; exit 1 ;;
esac
exit 3
