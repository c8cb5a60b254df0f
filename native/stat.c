/*
 * krsync's lstat/stat for Node-API: the fields of a struct stat the file list and the
 * generator need, written into a caller's Float64Array (no Stats object, no Dates, no BigInts
 * per call: the file-list walk and the generator's quick check stat every file).
 *
 *   stat(path: string, follow: boolean, out: Float64Array(13)) -> number
 *     0 or an errno; a path with a NUL byte throws a TypeError, as Node's fs does.
 *     out = [mode, uid, gid, size, mtime sec, mtime nsec, dev high 32 bits, dev low 32 bits,
 *     ino high, ino low, nlink, rdev high, rdev low].
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "napi-util.h"

#define STAT_FIELDS 13

static void put64(double *o, uint64_t v) {
  o[0] = (double)(v >> 32);
  o[1] = (double)(v & 0xffffffffu);
}

napi_value krsync_stat(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc != 3) {
    throw_type(env, "stat(path, follow, out)");
    return NULL;
  }
  bool follow;
  if (napi_get_value_bool(env, argv[1], &follow) != napi_ok) {
    throw_type(env, "follow must be a boolean");
    return NULL;
  }
  bool is_typed = false;
  napi_is_typedarray(env, argv[2], &is_typed);
  napi_typedarray_type type;
  size_t length;
  void *data;
  if (!is_typed || napi_get_typedarray_info(env, argv[2], &type, &length, &data, NULL, NULL) != napi_ok ||
      type != napi_float64_array || length < STAT_FIELDS) {
    throw_type(env, "out must be a Float64Array of 13");
    return NULL;
  }
  char *path = get_path(env, argv[0]);
  if (!path) return NULL;
  struct stat st;
  int e = (follow ? stat(path, &st) : lstat(path, &st)) == 0 ? 0 : errno;
  free(path);
  if (!e) {
    double *o = data;
    o[0] = (double)st.st_mode;
    o[1] = (double)st.st_uid;
    o[2] = (double)st.st_gid;
    o[3] = (double)st.st_size;
    o[4] = (double)st.st_mtim.tv_sec;
    o[5] = (double)st.st_mtim.tv_nsec;
    put64(o + 6, (uint64_t)st.st_dev);
    put64(o + 8, (uint64_t)st.st_ino);
    o[10] = (double)st.st_nlink;
    put64(o + 11, (uint64_t)st.st_rdev);
  }
  return result(env, e);
}
