/* log.c: timestamped single-line records; safe to call from several threads. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static char g_component[32] = "fleetrl";
static int g_level = FRL_LOG_INFO;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

void frl_log_init(const char *component, int level) {
  snprintf(g_component, sizeof g_component, "%s", component);
  g_level = level;
}

int frl_log_level_parse(const char *s) {
  static const char *names[] = {"debug", "info", "warn", "error"};
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

void frl_log(int level, const char *fmt, ...) {
  static const char *tags[] = {"debug", "info", "WARN", "ERROR"};
  if (level < g_level) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&g_lock);
  fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
          ts.tv_nsec / 1000000L, g_component, tags[level], msg);
  pthread_mutex_unlock(&g_lock);
}
