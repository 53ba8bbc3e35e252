/* common.h: error codes, small helpers and limits shared by every fleetrl component. */
#ifndef FRL_COMMON_H
#define FRL_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* Fallible functions return 0 or a negative code: -errno, or one of these. */
enum {
  FRL_EPROTO = -2001,    /* malformed or unverifiable message */
  FRL_ESCHEMA = -2002,   /* peer speaks another schema */
  FRL_ETIMEDOUT = -2003, /* a deadline passed */
  FRL_EFULL = -2004,     /* a bounded queue or store is full */
  FRL_ESQL = -2005,      /* SQLite reported an error */
  FRL_EDIM = -2006,      /* dimensions do not match the task */
  FRL_ECORRUPT = -2007,  /* a file failed its magic, version or checksum */
  FRL_EBUSY = -2008,     /* try again later (flow control) */
  FRL_EUSAGE = -2009,    /* bad flag or config value */
  FRL_ENOTFOUND = -2010, /* no such item, run or file */
};

/* Returns a static, human-readable description of a code returned by any frl_ function. */
const char *frl_strerror(int err);

/* Formats a one-line reason into err (when err is not NULL and errlen > 0) and returns code:
 * the one way modules hand a caller both an error code and the words for it, e.g.
 * `return frl_errf(FRL_EPROTO, err, errlen, "Ack.seq: %llu, max %llu", ...)`. */
int frl_errf(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define FRL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define FRL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define FRL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* On a function of plain elementwise loops over float arrays: GCC also compiles it for AVX2 and
 * picks that version at load time on CPUs that have it (the build targets x86-64-v2, SSE only).
 * The files that use it are built with -fvect-cost-model=dynamic -fno-math-errno (Makefile), so
 * those loops vectorize, 8 floats wide in the AVX2 version. "avx2" without "fma" keeps every
 * result bit-identical between the two versions: nothing is contracted into a fused
 * multiply-add. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FRL_VEC_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FRL_VEC_CLONES
#endif

/* Monotonic clock in seconds and in nanoseconds. */
double frl_now(void);
uint64_t frl_now_ns(void);
/* Wall-clock time in seconds since the Unix epoch (for timestamps users read). */
double frl_wall(void);

/* FNV-1a 64-bit hash; used for the schema hash and parameter checksums. */
uint64_t frl_fnv1a64(const void *data, size_t len, uint64_t seed);
#define FRL_FNV_SEED 0xcbf29ce484222325ULL

/* Creates a directory and its missing parents (mode 0755). Returns 0 or -errno. */
int frl_mkdir_p(const char *path);

/* Allocation that never returns NULL for a non-zero size: it aborts with a message, since
 * running out of memory is not something any caller here can recover from meaningfully. */
void *frl_xmalloc(size_t n);
void *frl_xcalloc(size_t n, size_t size);
void *frl_xrealloc(void *p, size_t n);
char *frl_xstrdup(const char *s);

#endif
