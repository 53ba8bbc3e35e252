/* log.h: one-line log records to stderr, with component name and level. */
#ifndef FRL_LOG_H
#define FRL_LOG_H

enum { FRL_LOG_DEBUG, FRL_LOG_INFO, FRL_LOG_WARN, FRL_LOG_ERROR };

/* Sets the process-wide component tag ("broker", "learner", "actor-3") and minimum level. */
void frl_log_init(const char *component, int level);
/* Parses "debug|info|warn|error"; returns the level or -1. */
int frl_log_level_parse(const char *s);
void frl_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define frl_debug(...) frl_log(FRL_LOG_DEBUG, __VA_ARGS__)
#define frl_info(...) frl_log(FRL_LOG_INFO, __VA_ARGS__)
#define frl_warn(...) frl_log(FRL_LOG_WARN, __VA_ARGS__)
#define frl_error(...) frl_log(FRL_LOG_ERROR, __VA_ARGS__)

#endif
