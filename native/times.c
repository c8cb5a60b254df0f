/*
 * krsync's file-time setter: utimensat(2) and futimens(2) with exact seconds and
 * nanoseconds, for Node-API. Node's fs.utimes family takes a double of seconds, which at
 * today's epochs resolves only ~240 ns; rsync (protocol >= 31) sends the mtime's
 * nanoseconds and sets them exactly (syscall.c do_utimensat, AT_SYMLINK_NOFOLLOW for links).
 *
 * Every function returns 0 or the errno of the failed call; the caller (src/engine/attrs.ts)
 * turns a non-zero result into a Node-style error. Wrong argument types throw a TypeError.
 *
 *   utimensat(path: string | Buffer, nofollow: boolean,
 *             atimeSec, atimeNsec, mtimeSec, mtimeNsec: number) -> number
 *   futimens(fd: number, atimeSec, atimeNsec, mtimeSec, mtimeNsec: number) -> number
 *   UTIME_NOW, UTIME_OMIT: the special nanosecond values of utimensat(2).
 *
 * The module also exports copyRange and copyRangeAsync from copy.c (copy_file_range(2)) and
 * stat from stat.c (lstat(2)/stat(2) into a Float64Array).
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "napi-util.h"

napi_value krsync_copy_range(napi_env env, napi_callback_info info); /* copy.c */
napi_value krsync_copy_range_async(napi_env env, napi_callback_info info); /* copy.c */
napi_value krsync_stat(napi_env env, napi_callback_info info); /* stat.c */

/* Seconds and nanoseconds into a timespec; EOVERFLOW when time_t cannot hold the seconds. */
static int to_timespec(int64_t sec, int64_t nsec, struct timespec *ts) {
  ts->tv_sec = (time_t)sec;
  if ((int64_t)ts->tv_sec != sec) return EOVERFLOW;
  ts->tv_nsec = (long)nsec;
  if ((int64_t)ts->tv_nsec != nsec) return EINVAL;
  return 0;
}

/* argv[first..first+3] as atime and mtime; 0, an errno, or -1 after throwing. */
static int get_times(napi_env env, napi_value *argv, struct timespec ts[2]) {
  int64_t v[4];
  static const char *what[4] = {"atime seconds must be a number", "atime nanoseconds must be a number",
                                "mtime seconds must be a number", "mtime nanoseconds must be a number"};
  for (int i = 0; i < 4; i++) {
    if (!get_int64(env, argv[i], &v[i], what[i])) return -1;
  }
  int e = to_timespec(v[0], v[1], &ts[0]);
  return e ? e : to_timespec(v[2], v[3], &ts[1]);
}

static napi_value js_utimensat(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc != 6) {
    throw_type(env, "utimensat(path, nofollow, atimeSec, atimeNsec, mtimeSec, mtimeNsec)");
    return NULL;
  }
  bool nofollow;
  if (napi_get_value_bool(env, argv[1], &nofollow) != napi_ok) {
    throw_type(env, "nofollow must be a boolean");
    return NULL;
  }
  struct timespec ts[2];
  int e = get_times(env, argv + 2, ts);
  if (e < 0) return NULL;
  if (e) return result(env, e);
  char *path = get_path(env, argv[0]);
  if (!path) return NULL;
  int r = utimensat(AT_FDCWD, path, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0);
  e = r == 0 ? 0 : errno;
  free(path);
  return result(env, e);
}

static napi_value js_futimens(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc != 5) {
    throw_type(env, "futimens(fd, atimeSec, atimeNsec, mtimeSec, mtimeNsec)");
    return NULL;
  }
  int64_t fd;
  if (!get_int64(env, argv[0], &fd, "fd must be a number")) return NULL;
  if (fd < 0 || fd > INT32_MAX) return result(env, EBADF);
  struct timespec ts[2];
  int e = get_times(env, argv + 1, ts);
  if (e < 0) return NULL;
  if (e) return result(env, e);
  return result(env, futimens((int)fd, ts) == 0 ? 0 : errno);
}

NAPI_MODULE_INIT() {
  if (!export_fn(env, exports, "utimensat", js_utimensat) || !export_fn(env, exports, "futimens", js_futimens) ||
      !export_int(env, exports, "UTIME_NOW", UTIME_NOW) || !export_int(env, exports, "UTIME_OMIT", UTIME_OMIT) ||
      !export_fn(env, exports, "copyRange", krsync_copy_range) ||
      !export_fn(env, exports, "copyRangeAsync", krsync_copy_range_async) ||
      !export_fn(env, exports, "stat", krsync_stat)) {
    return NULL;
  }
  return exports;
}
