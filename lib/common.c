/* common.c: error strings, clocks, hashing and checked allocation. */
#include "common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

const char *frl_strerror(int err) {
  switch (err) {
  case 0: return "success";
  case FRL_EPROTO: return "malformed message";
  case FRL_ESCHEMA: return "schema mismatch";
  case FRL_ETIMEDOUT: return "deadline passed";
  case FRL_EFULL: return "queue or store full";
  case FRL_ESQL: return "SQLite error";
  case FRL_EDIM: return "dimension mismatch";
  case FRL_ECORRUPT: return "corrupt file";
  case FRL_EBUSY: return "busy, try again";
  case FRL_EUSAGE: return "invalid usage";
  case FRL_ENOTFOUND: return "not found";
  default: break;
  }
  if (err < 0 && err > -4096) return strerror(-err);
  return "unknown error";
}

double frl_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t frl_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double frl_wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t frl_fnv1a64(const void *data, size_t len, uint64_t seed) {
  const unsigned char *p = data;
  uint64_t h = seed;
  for (size_t i = 0; i < len; i++) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

int frl_mkdir_p(const char *path) {
  char buf[1024];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -ENAMETOOLONG;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -errno;
  return 0;
}

static void oom(size_t n) {
  fprintf(stderr, "fleetrl: out of memory allocating %zu bytes\n", n);
  abort();
}

void *frl_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) oom(n);
  return p;
}

void *frl_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) oom(n * size);
  return p;
}

void *frl_xrealloc(void *p, size_t n) {
  void *q = realloc(p, n ? n : 1);
  if (!q) oom(n);
  return q;
}

char *frl_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = frl_xmalloc(n);
  memcpy(p, s, n);
  return p;
}

int frl_errf(int code, char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return code;
}
