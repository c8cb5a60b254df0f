# krsync agent: finds (or receives) rsync inside a container and execs it as the server.
# POSIX sh, busybox ash compatible. krsync runs it through exec, with no shell string:
#   sh -c '<this script>' krsync-agent [OPTIONS] -- RSYNC-SERVER-ARGS...
# Options:
#   --rsync-path=CMD     run CMD (a shell command, like rsync's --rsync-path) and nothing else
#   --tmp=DIR            try DIR first for an injected binary (then /tmp, /dev/shm, /var/tmp)
#   --bin=ARCH:SHA:SIZE  krsync can send rsync for ARCH (amd64, arm64), SIZE bytes, sha256 SHA
# Lines on stdout before rsync's own stream (each "KRSYNC-<WORD> ...\n"):
#   AGENT 1                   the script runs
#   NEED <arch> <sha> <size>  send exactly <size> bytes of that binary on stdin, now
#   EXEC <how> <path>         everything after this line is rsync's stream
#   ERR <kind> <text>         gave up; kind is arch, nobinary, nodir, nospace, write, upload, hash, cannotrun
# Nothing here waits for stdin EOF (a v4 exec stream cannot send one): the upload reads an
# exact byte count. Comment lines are stripped before krsync sends the script.

say() { printf 'KRSYNC-%s\n' "$*"; }
fail() { say "ERR $1 $2"; exit 126; }

rsync_path=
tmp_first=
bins=
while [ $# -gt 0 ]; do
  case $1 in
    --rsync-path=*) rsync_path=${1#--rsync-path=} ;;
    --tmp=*) tmp_first=${1#--tmp=} ;;
    --bin=*) bins="$bins ${1#--bin=}" ;;
    --) shift; break ;;
    *) fail usage "unknown agent option $1" ;;
  esac
  shift
done
say AGENT 1

# 1. --rsync-path: the user's command ("sudo rsync", "cd /x && rsync"), run by the shell as
#    a remote shell runs it for rsync.
if [ -n "$rsync_path" ]; then
  say EXEC rsync-path "$rsync_path"
  eval "$rsync_path"' "$@"'
  exit
fi

# 2. rsync in PATH.
if found=$(command -v rsync 2>/dev/null) && [ -n "$found" ]; then
  say EXEC path "$found"
  exec "$found" "$@"
fi

# 3. A binary krsync sends: which architecture?
machine=$(uname -m 2>/dev/null) || machine=
[ -n "$machine" ] || machine=$(cat /proc/sys/kernel/arch 2>/dev/null) || machine=
case $machine in
  x86_64|amd64) arch=amd64 ;;
  aarch64|arm64|aarch64_be) arch=arm64 ;;
  *) fail arch "machine '${machine:-unknown}'" ;;
esac
want=
for b in $bins; do
  case $b in "$arch":*) want=${b#*:} ;; esac
done
[ -n "$want" ] || fail nobinary "$arch"
sha=${want%%:*}
size=${want#*:}
name=.krsync-rsync-$sha

hash_of() {
  h=
  if command -v sha256sum >/dev/null 2>&1; then
    h=$(sha256sum "$1" 2>/dev/null) || h=
  elif command -v busybox >/dev/null 2>&1; then
    h=$(busybox sha256sum "$1" 2>/dev/null) || h=
  fi
  printf '%s' "${h%% *}"
}

# Is $1 our binary? By sha256 when there is a tool for it, else by size.
is_ours() {
  [ -f "$1" ] && [ -x "$1" ] || return 1
  h=$(hash_of "$1")
  if [ -n "$h" ]; then
    [ "$h" = "$sha" ]
    return
  fi
  n=$(wc -c <"$1" 2>/dev/null) || return 1
  [ "$((n))" -eq "$size" ]
}

# Does it run here (right architecture, exec allowed)?
runs() {
  v=$("$1" --version 2>/dev/null) || return 1
  case $v in *rsync*) return 0 ;; esac
  return 1
}

# 3a. Already sent on an earlier run.
for d in "$tmp_first" /tmp /dev/shm /var/tmp; do
  [ -n "$d" ] || continue
  if is_ours "$d/$name"; then
    runs "$d/$name" || fail cannotrun "$d/$name"
    say EXEC cached "$d/$name"
    exec "$d/$name" "$@"
  fi
done

# 3b. The first directory we can write, exec from, and fit the binary in.
shell=$(command -v sh 2>/dev/null)
case $shell in /*) ;; *) shell=/bin/sh ;; esac
tried=
dir=
for d in "$tmp_first" /tmp /dev/shm /var/tmp; do
  [ -n "$d" ] || continue
  if [ ! -d "$d" ]; then tried="$tried $d=missing"; continue; fi
  probe=$d/.krsync-probe.$$
  if ! printf '#!%s\nexit 0\n' "$shell" >"$probe" 2>/dev/null; then
    rm -f "$probe" 2>/dev/null
    tried="$tried $d=read-only"
    continue
  fi
  chmod 700 "$probe" 2>/dev/null
  if ! "$probe" 2>/dev/null; then
    rm -f "$probe"
    tried="$tried $d=noexec"
    continue
  fi
  rm -f "$probe"
  # df -P: 1024-byte blocks, "Available" is the 4th field of the last line.
  free=$(df -Pk "$d" 2>/dev/null | tail -n 1 | { read -r _ _ _ avail _; printf '%s' "$avail"; }) || free=
  case $free in
    ''|*[!0-9]*) ;;
    *) if [ "$((free * 1024))" -lt "$size" ]; then tried="$tried $d=full(${free}KiB)"; continue; fi ;;
  esac
  dir=$d
  break
done
[ -n "$dir" ] || fail nodir "${tried# }"

# 3c. Receive exactly $size bytes, check them, and put them in place atomically.
part=$dir/$name.$$
say NEED "$arch" "$sha" "$size"
if ! err=$({ head -c "$size" >"$part"; } 2>&1); then
  got=$(wc -c <"$part" 2>/dev/null) || got=0
  rm -f "$part"
  case $err in
    *[Ss]pace*|*[Qq]uota*) fail nospace "$dir" ;;
    # busybox head reports ENOSPC as "standard output: I/O error"
    *) fail write "$dir $((got)) $size $err" ;;
  esac
fi
got=$(wc -c <"$part" 2>/dev/null) || got=0
if [ "$((got))" -ne "$size" ]; then
  rm -f "$part"
  fail upload "$dir: received $((got)) of $size bytes"
fi
chmod 700 "$part" || { rm -f "$part"; fail upload "$dir: chmod failed"; }
if ! is_ours "$part"; then
  rm -f "$part"
  fail hash "$dir"
fi
mv -f "$part" "$dir/$name" || { rm -f "$part"; fail upload "$dir: rename failed"; }
runs "$dir/$name" || fail cannotrun "$dir/$name"
say EXEC injected "$dir/$name"
exec "$dir/$name" "$@"
