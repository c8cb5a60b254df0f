/*
 * krsync's in-kernel file copy for Node-API: copy_file_range(2) between two descriptors at
 * explicit offsets, so a local copy's whole files move without passing through a user buffer
 * (on file systems that share extents it may not copy data at all). Node's fs has no
 * descriptor-based form of it (fs.copyFile takes paths).
 *
 *   copyRange(fdIn, posIn, fdOut, posOut, len: number) -> number
 *     bytes copied (0 at the input's end), or -errno (ENOSYS where the call does not exist:
 *     not Linux, or a kernel before 4.5). The caller (src/engine/receiver.ts) falls back to
 *     read/write on any error.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "napi-util.h"

napi_value krsync_copy_range(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc != 5) {
    throw_type(env, "copyRange(fdIn, posIn, fdOut, posOut, len)");
    return NULL;
  }
  int64_t v[5];
  static const char *what[5] = {"fdIn must be a number", "posIn must be a number", "fdOut must be a number",
                                "posOut must be a number", "len must be a number"};
  for (int i = 0; i < 5; i++) {
    if (!get_int64(env, argv[i], &v[i], what[i])) return NULL;
  }
  if (v[0] < 0 || v[0] > INT32_MAX || v[2] < 0 || v[2] > INT32_MAX) return result(env, -EBADF);
  if (v[1] < 0 || v[3] < 0 || v[4] < 0) return result(env, -EINVAL);
#ifdef __linux__
  loff_t in = (loff_t)v[1];
  loff_t out = (loff_t)v[3];
  size_t len = v[4] > (int64_t)(1 << 30) ? (size_t)(1 << 30) : (size_t)v[4];
  ssize_t n = copy_file_range((int)v[0], &in, (int)v[2], &out, len, 0);
  return result(env, n >= 0 ? (int64_t)n : -(int64_t)errno);
#else
  return result(env, -ENOSYS);
#endif
}
