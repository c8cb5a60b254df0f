#!/bin/sh
# Remote-shell stand-in for `rsync -e` / `krsync -e`: accepts an ssh-style command line
#   fakersh.sh [ssh options] [user@]host command words...
# drops the options and the host, then runs the command locally the way sshd would: the words
# are joined with single spaces and handed to `sh -c`. rsync escapes shell metacharacters in the
# remote args (options.c safe_arg), so paths with spaces or quotes survive this re-parse.
# Environment: FAKERSH_LOG=file appends each received command line to that file.
set -u
IFS=' '
while [ $# -gt 0 ]; do
  case "$1" in
    --) shift; break ;;
    # ssh options that take a value: "-p 22" or "-p22"
    -[BbcDEeFIiJLlmOoPpQRSWw])
      if [ $# -lt 2 ]; then echo "fakersh: option $1 needs a value" >&2; exit 255; fi
      shift 2 ;;
    -[BbcDEeFIiJLlmOoPpQRSWw]?*) shift ;;
    # flag bundles such as -T, -x, -4, -Cq
    -?*) shift ;;
    *) break ;;
  esac
done
if [ $# -eq 0 ]; then echo "fakersh: no host given" >&2; exit 255; fi
shift # [user@]host
if [ $# -eq 0 ]; then echo "fakersh: no remote command (interactive login not supported)" >&2; exit 255; fi
if [ -n "${FAKERSH_LOG:-}" ]; then printf '%s\n' "$*" >>"$FAKERSH_LOG"; fi
exec sh -c "$*"
