#!/usr/bin/env bash
# Build static rsync binaries (amd64, arm64) from Debian's rsync source package.
#
#   bash vendor/rsync/build.sh [--force] [--verbose]
#
# Outputs (git-ignored):   vendor/rsync/out/rsync-amd64, rsync-arm64,
#                          SHA256SUMS, VERSION
# Log and scratch space:   vendor/rsync/work/ (build.log)
#
# Environment:
#   KRSYNC_RSYNC_REBUILD=1     same as --force: rebuild even if out/ is complete
#   KRSYNC_RSYNC_VERBOSE=1     same as --verbose: copy the log to the terminal
#   KRSYNC_RSYNC_DEB_VERSION   ask apt for this exact source version
#                              (default: the newest one the deb-src lines serve)
#
# Needs root on Debian (bookworm) with apt: it installs the toolchain and the
# static -dev libraries, enables the arm64 architecture and adds deb-src lines
# when the machine has none. When out/ already holds both binaries and they
# match SHA256SUMS, it exits at once without touching apt or the network.
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=$HERE/out
WORK=$HERE/work
LOG=$WORK/build.log
ARCHES=(amd64 arm64)
SRC_LIST=/etc/apt/sources.list.d/krsync-deb-src.sources

FORCE=${KRSYNC_RSYNC_REBUILD:-0}
VERBOSE=${KRSYNC_RSYNC_VERBOSE:-0}
PIN=${KRSYNC_RSYNC_DEB_VERSION:-}

usage() { sed -n '2,19s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

for arg in "$@"; do
  case $arg in
    -f|--force) FORCE=1 ;;
    -v|--verbose) VERBOSE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

# --- fast path: nothing to do when out/ is complete and verified -------------
up_to_date() {
  [ -s "$OUT/SHA256SUMS" ] && [ -s "$OUT/VERSION" ] || return 1
  local a
  for a in "${ARCHES[@]}"; do
    [ -x "$OUT/rsync-$a" ] || return 1
    grep -Eq "^[0-9a-f]{64}  rsync-$a\$" "$OUT/SHA256SUMS" || return 1
  done
  (cd "$OUT" && sha256sum --quiet --strict -c SHA256SUMS) >/dev/null 2>&1
}

if [ "$FORCE" != 1 ] && up_to_date; then
  [ "$VERBOSE" = 1 ] && echo "build.sh: $OUT is up to date ($(cat "$OUT/VERSION"))"
  exit 0
fi

# --- logging and error reporting ---------------------------------------------
mkdir -p "$WORK" "$OUT"
: >"$LOG"
exec 3>&2
if [ "$VERBOSE" = 1 ]; then
  exec > >(tee -a "$LOG") 2>&1
else
  exec >>"$LOG" 2>&1
fi

STEP="starting"
T0=$(date +%s)
step() {
  STEP=$1
  echo
  echo "=== [$(($(date +%s) - T0))s] $STEP"
}
fail() {
  local rc=$?
  [ "$rc" -eq 0 ] && rc=1
  {
    echo "build.sh: error: step '$STEP' failed (exit $rc)."
    if [ "$VERBOSE" != 1 ]; then
      echo "build.sh: last lines of $LOG:"
      tail -n 25 "$LOG" | sed 's/^/  | /'
    fi
  } >&3
  exit "$rc"
}
trap fail ERR
die() { echo "error: $*"; STEP="$STEP: $*"; false; }

echo "build.sh: building static rsync for ${ARCHES[*]} (log: $LOG)" >&3

# A half-finished rebuild must never look complete.
rm -f "$OUT/SHA256SUMS" "$OUT/VERSION"

# --- apt: architecture, deb-src, packages ------------------------------------
step "checking the machine"
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages with apt-get)"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "needs a Debian machine with apt-get and dpkg"
[ "$(dpkg --print-architecture)" = amd64 ] || die "build machine must be amd64, not $(dpkg --print-architecture)"

step "enabling the arm64 architecture"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
fi

# True when some enabled apt source already has deb-src lines.
have_deb_src() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && grep -Eq '^[[:space:]]*deb-src[[:space:]]' "$f" && return 0
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -Eiq '^Types:.*\<deb-src\>' "$f" && return 0
  done
  return 1
}

# Writes a deb822 file that mirrors every enabled Debian-archive "deb" source
# (one-line or deb822 form) as "deb-src": same URIs, suites, components, key.
write_deb_src() {
  local tmp
  tmp=$(mktemp)
  {
    # one-line form: deb [opts] URI SUITE COMPONENT...
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
      [ -f "$f" ] || continue
      awk '
        /^[[:space:]]*deb[[:space:]]/ {
          i = 2; opts = ""
          if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
          uri = $i; suite = $(i + 1); comps = ""
          for (j = i + 2; j <= NF; j++) comps = comps " " $j
          if (uri !~ /\/debian(-security)?\/?$/) next
          key = ""
          if (match(opts, /signed-by=[^] ]+/)) key = substr(opts, RSTART + 10, RLENGTH - 10)
          printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents:%s\n", uri, suite, comps
          if (key != "") printf "Signed-By: %s\n", key
          printf "\n"
        }' "$f"
    done
    # deb822 form: blank-line separated stanzas
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      [ "$f" = "$SRC_LIST" ] && continue
      awk '
        function flush() {
          if (types ~ /(^|[[:space:]])deb([[:space:]]|$)/ && enabled !~ /^[Nn]o/ && uris != "") {
            n = split(uris, u, /[[:space:]]+/); ok = 1
            for (k = 1; k <= n; k++) if (u[k] != "" && u[k] !~ /\/debian(-security)?\/?$/) ok = 0
            if (ok) {
              printf "Types: deb-src\nURIs: %s\nSuites: %s\nComponents: %s\n", uris, suites, comps
              if (key != "") printf "Signed-By: %s\n", key
              printf "\n"
            }
          }
          types = uris = suites = comps = key = enabled = ""
        }
        /^#/ { next }
        /^[[:space:]]*$/ { flush(); next }
        {
          line = $0; field = tolower(line); sub(/:.*/, "", field)
          val = line; sub(/^[^:]*:[[:space:]]*/, "", val)
          if (field == "types") types = val
          else if (field == "uris") uris = val
          else if (field == "suites") suites = val
          else if (field == "components") comps = val
          else if (field == "signed-by") key = val
          else if (field == "enabled") enabled = val
        }
        END { flush() }' "$f"
    done
  } >"$tmp"
  if ! grep -q '^Types: deb-src' "$tmp"; then
    rm -f "$tmp"
    die "found no Debian archive 'deb' source to mirror as deb-src; add deb-src lines by hand"
  fi
  echo "adding $SRC_LIST:"
  cat "$tmp"
  install -m 0644 "$tmp" "$SRC_LIST"
  rm -f "$tmp"
}

step "checking for deb-src sources"
if have_deb_src; then
  echo "deb-src already configured"
else
  write_deb_src
fi

export DEBIAN_FRONTEND=noninteractive
APT=(apt-get -q -y -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0)

step "apt-get update"
"${APT[@]}" update

PKGS=(
  build-essential dpkg-dev autoconf
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu
  libzstd-dev liblz4-dev libxxhash-dev libacl1-dev
  libzstd-dev:arm64 liblz4-dev:arm64 libxxhash-dev:arm64 libacl1-dev:arm64
)
step "apt-get install ${PKGS[*]}"
"${APT[@]}" install --no-install-recommends "${PKGS[@]}"

# Every static archive the link needs, per architecture.
for triplet in x86_64-linux-gnu aarch64-linux-gnu; do
  for lib in zstd lz4 xxhash acl; do
    [ -f "/usr/lib/$triplet/lib$lib.a" ] || die "missing static library /usr/lib/$triplet/lib$lib.a"
  done
done

# --- source ------------------------------------------------------------------
# Source versions the deb-src lines list, newest first (dpkg's ordering).
source_versions() {
  local v out=() i j t
  while read -r v; do
    [ -n "$v" ] && out+=("$v")
  done < <(apt-cache showsrc rsync | sed -n 's/^Version:[[:space:]]*//p' | sort -u)
  for ((i = 0; i < ${#out[@]}; i++)); do
    for ((j = i + 1; j < ${#out[@]}; j++)); do
      if dpkg --compare-versions "${out[j]}" gt "${out[i]}"; then
        t=${out[i]}; out[i]=${out[j]}; out[j]=$t
      fi
    done
  done
  printf '%s\n' "${out[@]}"
}

step "apt-get source rsync${PIN:+=$PIN}"
rm -rf "$WORK/src" "$WORK"/build-*
mkdir -p "$WORK/src"
if [ -n "$PIN" ]; then
  CANDIDATES=("$PIN")
else
  mapfile -t CANDIDATES < <(source_versions)
  [ ${#CANDIDATES[@]} -gt 0 ] || die "apt-cache showsrc lists no rsync source (are the deb-src lists fetched?)"
fi
echo "source versions listed: ${CANDIDATES[*]}"
# The archive can list a source (a fresh security update, say) whose files it
# does not serve; take the newest one that actually downloads.
GOT=
for v in "${CANDIDATES[@]}"; do
  rm -rf "$WORK/src"/*
  if (cd "$WORK/src" && "${APT[@]}" source --download-only "rsync=$v"); then
    GOT=$v
    break
  fi
  echo "rsync source $v could not be fetched; trying the next one"
done
[ -n "$GOT" ] || die "could not fetch any rsync source (tried: ${CANDIDATES[*]})"
DSC=$(ls "$WORK"/src/rsync_*.dsc 2>/dev/null | head -n 1)
[ -n "$DSC" ] || die "apt-get source produced no rsync_*.dsc"
DEB_VERSION=$(sed -n 's/^Version:[[:space:]]*//p' "$DSC" | head -n 1)
[ -n "$DEB_VERSION" ] || die "no Version field in $DSC"
echo "Debian source version: $DEB_VERSION"

step "dpkg-source -x $(basename "$DSC") (applies the Debian patches)"
(cd "$WORK/src" && dpkg-source -x "$DSC" tree)
[ -x "$WORK/src/tree/configure.sh" ] || [ -x "$WORK/src/tree/configure" ] || die "unpacked source has no configure script"
# Debian's patches touch configure.ac (Debian regenerates it with
# dh_autoreconf); regenerate configure.sh and config.h.in the same way the
# package's Makefile would, so the patched checks are the ones that run.
(cd "$WORK/src/tree" && autoconf -o configure.sh && autoheader && touch config.h.in)
if [ -f "$WORK/src/tree/debian/patches/series" ]; then
  echo "applied patches:"; grep -v '^#' "$WORK/src/tree/debian/patches/series" | sed 's/^/  /'
fi

# --- build -------------------------------------------------------------------
# Same for both architectures. openssl (only extra digests and dlopen'd
# engines), iconv (glibc loads gconv modules at run time) and man pages are
# left out; popt and zlib are the bundled copies so nothing needs a shared lib.
CONFIGURE_FLAGS=(
  --prefix=/usr
  --disable-md2man
  --disable-openssl
  --disable-iconv --disable-iconv-open
  --disable-locale
  --with-included-popt
  --with-included-zlib
  --enable-zstd --enable-lz4 --enable-xxhash
  --enable-acl-support --enable-xattr-support
  --enable-ipv6
  --disable-debug
)
# Run tests that configure cannot execute when cross compiling: taken from the
# native (amd64) run, since they probe Linux and glibc, not the CPU.
RUN_TEST_VARS=(
  rsync_cv_HAVE_BROKEN_LARGEFILE rsync_cv_MAKEDEV_TAKES_3_ARGS
  rsync_cv_chown_modifies_symlink rsync_cv_can_hardlink_symlink
  rsync_cv_can_hardlink_special rsync_cv_HAVE_SOCKETPAIR
  rsync_cv_HAVE_BROKEN_READDIR rsync_cv_HAVE_C99_VSNPRINTF
  rsync_cv_HAVE_SECURE_MKSTEMP rsync_cv_MKNOD_CREATES_FIFOS
  rsync_cv_MKNOD_CREATES_SOCKETS rsync_cv_HAVE_GETTIMEOFDAY_TZ
  ac_cv_type_getgroups ac_cv_func_getpgrp_void ac_cv_func_utime_null
)
# A static glibc still dlopen()s the NSS modules nsswitch.conf names after
# "files" (libnss_systemd, sss, ...) when a uid/gid/name is not in
# /etc/passwd or /etc/group; loading the container's shared glibc into the
# static process crashes it (rsync as sender of a file owned by an unknown
# uid dies with SIGSEGV). This constructor, linked into rsync, pins those
# databases to glibc's built-in "files" (and "dns" for hosts) backends.
NSS_C=$WORK/nss-files-only.c
cat >"$NSS_C" <<'EOF'
/* krsync static build: keep NSS lookups inside the static binary. */
#include <nss.h>

__attribute__((constructor)) static void krsync_nss_builtin_only(void)
{
	__nss_configure_lookup("passwd", "files");
	__nss_configure_lookup("group", "files");
	__nss_configure_lookup("initgroups", "files");
	__nss_configure_lookup("hosts", "files dns");
}
EOF

JOBS=$(nproc 2>/dev/null || echo 2)
CACHE_VARS=()

build_arch() {
  local arch=$1 dir=$WORK/build-$1 host strip
  case $arch in
    amd64) host=x86_64-linux-gnu; strip=strip ;;
    arm64) host=aarch64-linux-gnu; strip=aarch64-linux-gnu-strip ;;
  esac
  step "configure rsync for $arch"
  cp -a "$WORK/src/tree" "$dir"
  local hostflags=(CC="$host-gcc")
  if [ "$arch" = amd64 ]; then
    hostflags+=(CXX="$host-g++")
  else
    hostflags+=(--host="$host" --build=x86_64-linux-gnu)
  fi
  "$host-gcc" -O2 -Wall -c -o "$dir/nss-files-only.o" "$NSS_C"
  (cd "$dir" && ./configure "${hostflags[@]}" "${CONFIGURE_FLAGS[@]}" \
      CFLAGS="-O2" LDFLAGS="-static" LIBS="$dir/nss-files-only.o" \
      ${CACHE_VARS[@]+"${CACHE_VARS[@]}"})
  # configure quietly drops a library it cannot link: insist on each one.
  local def
  for def in SUPPORT_ZSTD SUPPORT_LZ4 SUPPORT_XXHASH SUPPORT_ACLS SUPPORT_XATTRS; do
    grep -Eq "^#define $def 1" "$dir/config.h" || die "configure for $arch did not enable $def"
  done
  if [ "$arch" = amd64 ]; then
    local v val
    for v in "${RUN_TEST_VARS[@]}"; do
      val=$(sed -n "s/^$v=\${$v=\(.*\)}\$/\1/p; s/^$v=\(.*\)\$/\1/p" "$dir/config.log" | head -n 1 | tr -d "'")
      [ -n "$val" ] && CACHE_VARS+=("$v=$val")
    done
    echo "run-test results handed to the cross build: ${CACHE_VARS[*]}"
  fi

  step "make rsync for $arch"
  make -C "$dir" -j"$JOBS" rsync

  step "check and strip rsync-$arch"
  local elfinfo
  elfinfo=$(readelf -lh "$dir/rsync")
  grep -q 'Requesting program interpreter' <<<"$elfinfo" && die "rsync for $arch is dynamically linked"
  "$strip" -o "$OUT/rsync-$arch.tmp" "$dir/rsync"
  chmod 0755 "$OUT/rsync-$arch.tmp"
  local run=()
  if [ "$arch" = amd64 ]; then
    run=("$OUT/rsync-$arch.tmp")
  elif command -v qemu-aarch64-static >/dev/null; then
    run=(qemu-aarch64-static "$OUT/rsync-$arch.tmp")
  fi
  if [ ${#run[@]} -gt 0 ]; then
    local ver want
    ver=$("${run[@]}" --version)
    echo "$ver"
    for want in zstd lz4 xxh128; do
      grep -qw "$want" <<<"$ver" || die "rsync-$arch --version does not list $want"
    done
  fi
  mv -f "$OUT/rsync-$arch.tmp" "$OUT/rsync-$arch"
}

for arch in "${ARCHES[@]}"; do
  build_arch "$arch"
done

step "writing SHA256SUMS and VERSION"
(cd "$OUT" && sha256sum "${ARCHES[@]/#/rsync-}" >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
printf '%s\n' "$DEB_VERSION" >"$OUT/VERSION.tmp" && mv -f "$OUT/VERSION.tmp" "$OUT/VERSION"
cat "$OUT/SHA256SUMS" "$OUT/VERSION"
ls -l "$OUT"

T=$(($(date +%s) - T0))
step "done in ${T}s"
echo "build.sh: built rsync $DEB_VERSION (${ARCHES[*]}) in ${T}s -> $OUT" >&3
