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
 *   copyRangeAsync(fdIn, posIn, fdOut, posOut, len: number) -> Promise<number>
 *     the same on libuv's thread pool, copying until len bytes, the input's end or an error:
 *     resolves to the bytes copied, or -errno when nothing was.
 */
#define _GNU_SOURCE
#include <node_api.h>

#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "napi-util.h"

/* The five numbers of both calls; 0 and the values, an errno for bad descriptors or
 * offsets, or -1 after throwing. */
static int get_args(napi_env env, napi_callback_info info, int64_t v[5], const char *usage) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return -1;
  if (argc != 5) {
    throw_type(env, usage);
    return -1;
  }
  static const char *what[5] = {"fdIn must be a number", "posIn must be a number", "fdOut must be a number",
                                "posOut must be a number", "len must be a number"};
  for (int i = 0; i < 5; i++) {
    if (!get_int64(env, argv[i], &v[i], what[i])) return -1;
  }
  if (v[0] < 0 || v[0] > INT32_MAX || v[2] < 0 || v[2] > INT32_MAX) return EBADF;
  if (v[1] < 0 || v[3] < 0 || v[4] < 0) return EINVAL;
  return 0;
}

/* One copy_file_range call of at most 1 GiB: bytes copied, or -errno. */
static int64_t copy_once(int64_t fd_in, int64_t pos_in, int64_t fd_out, int64_t pos_out, int64_t len) {
#ifdef __linux__
  loff_t in = (loff_t)pos_in;
  loff_t out = (loff_t)pos_out;
  size_t n = len > (int64_t)(1 << 30) ? (size_t)(1 << 30) : (size_t)len;
  ssize_t r = copy_file_range((int)fd_in, &in, (int)fd_out, &out, n, 0);
  return r >= 0 ? (int64_t)r : -(int64_t)errno;
#else
  (void)fd_in, (void)pos_in, (void)fd_out, (void)pos_out, (void)len;
  return -ENOSYS;
#endif
}

napi_value krsync_copy_range(napi_env env, napi_callback_info info) {
  int64_t v[5];
  int e = get_args(env, info, v, "copyRange(fdIn, posIn, fdOut, posOut, len)");
  if (e < 0) return NULL;
  if (e) return result(env, -e);
  return result(env, copy_once(v[0], v[1], v[2], v[3], v[4]));
}

struct copy_job {
  napi_async_work work;
  napi_deferred deferred;
  int64_t v[5];
  int64_t done; /* bytes copied, or -errno when none were */
};

/* On the thread pool: until len bytes, the input's end or an error. */
static void copy_execute(napi_env env, void *data) {
  (void)env;
  struct copy_job *j = data;
  int64_t done = 0;
  while (done < j->v[4]) {
    int64_t n = copy_once(j->v[0], j->v[1] + done, j->v[2], j->v[3] + done, j->v[4] - done);
    if (n < 0 && n != -EINTR) {
      if (done == 0) done = n;
      break;
    }
    if (n == 0) break;
    if (n > 0) done += n;
  }
  j->done = done;
}

static void copy_complete(napi_env env, napi_status status, void *data) {
  struct copy_job *j = data;
  napi_value r;
  napi_create_int64(env, status == napi_ok ? j->done : -ECANCELED, &r);
  napi_resolve_deferred(env, j->deferred, r);
  napi_delete_async_work(env, j->work);
  free(j);
}

napi_value krsync_copy_range_async(napi_env env, napi_callback_info info) {
  int64_t v[5];
  int e = get_args(env, info, v, "copyRangeAsync(fdIn, posIn, fdOut, posOut, len)");
  if (e < 0) return NULL;
  struct copy_job *j = calloc(1, sizeof *j);
  if (!j) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    free(j);
    return NULL;
  }
  for (int i = 0; i < 5; i++) j->v[i] = v[i];
  if (e) {
    j->done = -e;
    napi_value r = result(env, -e);
    napi_resolve_deferred(env, j->deferred, r);
    free(j);
    return promise;
  }
  napi_create_string_utf8(env, "krsync.copyRange", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, copy_execute, copy_complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    free(j);
    napi_throw_error(env, NULL, "cannot queue the copy");
    return NULL;
  }
  return promise;
}
