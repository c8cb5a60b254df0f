#!/bin/sh
# Remote-shell stand-in for the benchmarks: called the way rsync/krsync call ssh,
#   fakersh.sh [ssh options] [user@]host command...
# it drops the options and the host and runs the command locally with `sh -c`, as sshd would
# (rsync quotes the remote args for that shell, options.c safe_arg).
#
# BENCH_RSH_DETACH=1 (set by the harness when it measures peak RSS through bench/rusage.py):
# the command runs in an orphaned grandchild, so the client that waits for this shell does not
# fold the remote side's peak RSS into its own figure. rusage.py is a child subreaper: it
# adopts and reaps that grandchild and reports its peak separately. Without a subreaper the
# orphan would be left to init, so detaching is off unless asked for.
set -u
IFS=' '
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    -[BbcDEeFIiJLlmOoPpQRSWw])  # ssh options with a separate value
      [ $# -ge 2 ] || { echo "fakersh: option $1 needs a value" >&2; exit 255; }
      shift 2 ;;
    -?*) shift ;;               # -p22, -T, -x, -4 ...
    *) break ;;
  esac
done
[ $# -ge 1 ] || { echo "fakersh: no host given" >&2; exit 255; }
shift
[ $# -ge 1 ] || { echo "fakersh: no remote command" >&2; exit 255; }
if [ "${BENCH_RSH_DETACH:-}" != 1 ]; then
  exec sh -c "$*"
fi
# Keep the real stdin/stdout on fds 3/4; the command substitution's pipe carries only the exit
# status, written by the orphan once the command is done (EOF there = the orphan has exited).
exec 3<&0 4>&1
status=$( ( ( sh -c "$*" 0<&3 1>&4 3<&- 4>&-; echo "$?" ) & ) )
exit "${status:-255}"
