/* replay.c: runs a fuzz target's LLVMFuzzerTestOneInput over every file of its seed corpus
 * and of its regression folder (tests/fuzz/regressions/<target>/), without libFuzzer, so that
 * `make test` replays them in the normal and the sanitizer build: a seed or a past finding that
 * crashes, trips a sanitizer or breaks one of the target's invariants (they abort) fails the
 * test. Built once per target with FUZZ_TARGET (its name) and FUZZ_CORPUS (its seed folder)
 * defined; run from the repository root, as every test is. */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifndef FUZZ_TARGET
#error "define FUZZ_TARGET (the target's name) and FUZZ_CORPUS (its seed folder)"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs every regular file of dir but READMEs, in name order; returns how many, or -1 when
 * the folder cannot be read or a file cannot be. A folder that may be missing counts as
 * empty: a target has a regression folder from its first finding on. */
static int replay_dir(const char *dir, bool may_be_missing) {
  DIR *d = opendir(dir);
  if (!d) {
    if (may_be_missing && errno == ENOENT) return 0;
    fprintf(stderr, "cannot open %s\n", dir);
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.' || strncmp(e->d_name, "README", 6) == 0) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      char **grown = realloc(names, cap * sizeof *names);
      if (!grown) abort();
      names = grown;
    }
    names[n] = strdup(e->d_name);
    if (!names[n]) abort();
    n++;
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, by_name);
  int ran = 0;
  for (size_t i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    struct stat st;
    FILE *f = stat(path, &st) == 0 && S_ISREG(st.st_mode) ? fopen(path, "rb") : NULL;
    if (!f) {
      if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) continue; /* a subfolder */
      fprintf(stderr, "cannot read %s\n", path);
      ran = -1;
      break;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data || fread(data, 1, size, f) != size) abort();
    fclose(f);
    /* Named first: a crash leaves the input that caused it as the last line. */
    printf("%s (%zu bytes)\n", path, size);
    fflush(stdout);
    /* A copy of exactly the file's size, as libFuzzer passes it. */
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    ran++;
  }
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return ran;
}

int main(void) {
  const char *seeds = FUZZ_CORPUS;
  const char *regressions = "tests/fuzz/regressions/" FUZZ_TARGET;
  int a = replay_dir(seeds, false);
  int b = replay_dir(regressions, true);
  if (a < 0 || b < 0) return 1;
  /* An empty seed folder would pass without testing anything: a moved corpus is a failure. */
  if (a == 0) {
    fprintf(stderr, "no seed inputs in %s\n", seeds);
    return 1;
  }
  printf("fuzz_%s: %d seed and %d regression inputs replayed\n", FUZZ_TARGET, a, b);
  return 0;
}
