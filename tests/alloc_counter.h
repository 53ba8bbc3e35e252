/* alloc_counter.h: counts every heap allocation of a test binary while g_counting is set, by
 * wrapping glibc's entry points, so tests can prove a hot path allocates nothing. Include it in
 * exactly one file of a test binary, after the system headers. Disabled under ASan, which owns
 * malloc (COUNT_ALLOCS is then undefined and the counting tests skip). */
#ifndef FRL_TESTS_ALLOC_COUNTER_H
#define FRL_TESTS_ALLOC_COUNTER_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>

#if !defined(__SANITIZE_ADDRESS__)
#define COUNT_ALLOCS 1
/* glibc's own entry points: every allocation in the process passes through the definitions
 * below, which count while counting is on. */
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_memalign(size_t align, size_t n);
static atomic_int g_counting;
static atomic_long g_allocs;
static void count_one(void) {
  if (atomic_load(&g_counting)) atomic_fetch_add(&g_allocs, 1);
}
void *malloc(size_t n) {
  count_one();
  return __libc_malloc(n);
}
void *calloc(size_t n, size_t size) {
  count_one();
  return __libc_calloc(n, size);
}
void *realloc(void *p, size_t n) {
  count_one();
  return __libc_realloc(p, n);
}
void *aligned_alloc(size_t align, size_t n) {
  count_one();
  return __libc_memalign(align, n);
}
int posix_memalign(void **out, size_t align, size_t n) {
  count_one();
  void *p = __libc_memalign(align, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
#endif
#endif
