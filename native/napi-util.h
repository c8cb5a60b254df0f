/* Small Node-API helpers shared by krsync's addon sources (times.c, copy.c). */
#ifndef KRSYNC_NAPI_UTIL_H
#define KRSYNC_NAPI_UTIL_H
#include <node_api.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline bool throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return false;
}

static inline bool get_int64(napi_env env, napi_value v, int64_t *out, const char *what) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return throw_type(env, what);
  return napi_get_value_int64(env, v, out) == napi_ok || throw_type(env, what);
}

static inline napi_value result(napi_env env, int64_t e) {
  napi_value r;
  napi_create_int64(env, e, &r);
  return r;
}

static inline bool export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  return napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) == napi_ok &&
         napi_set_named_property(env, exports, name, fn) == napi_ok;
}

static inline bool export_int(napi_env env, napi_value exports, const char *name, int64_t value) {
  napi_value v;
  return napi_create_int64(env, value, &v) == napi_ok && napi_set_named_property(env, exports, name, v) == napi_ok;
}

/* The path as a NUL-terminated string; NULL after throwing. Embedded NULs are refused. */
static inline char *get_path(napi_env env, napi_value v) {
  bool is_buffer = false;
  napi_is_buffer(env, v, &is_buffer);
  if (is_buffer) {
    void *data;
    size_t len;
    if (napi_get_buffer_info(env, v, &data, &len) != napi_ok) return NULL;
    if (memchr(data, 0, len)) {
      throw_type(env, "path must not contain NUL bytes");
      return NULL;
    }
    char *p = malloc(len + 1);
    if (!p) {
      napi_throw_error(env, "ENOMEM", "out of memory");
      return NULL;
    }
    memcpy(p, data, len);
    p[len] = '\0';
    return p;
  }
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    throw_type(env, "path must be a string or a Buffer");
    return NULL;
  }
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *p = malloc(len + 1);
  if (!p) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  size_t got;
  if (napi_get_value_string_utf8(env, v, p, len + 1, &got) != napi_ok) {
    free(p);
    return NULL;
  }
  if (strlen(p) != got) {
    free(p);
    throw_type(env, "path must not contain NUL bytes");
    return NULL;
  }
  return p;
}

#endif
