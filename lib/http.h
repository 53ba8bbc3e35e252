/* http.h: a small read-only HTTP/1.1 server on libuv for /metrics and status pages. GET and
 * HEAD only, one request per connection (Connection: close), a bounded request head, a bounded
 * number of connections and deadlines for slow clients. Every received byte is treated as
 * hostile: a malformed request gets a 4xx naming what was wrong and the server keeps serving.
 * It runs either on a loop the caller owns (the learner) or on its own loop that the caller
 * embeds in another poller through one file descriptor (the broker's zmq_poll). */
#ifndef FRL_HTTP_H
#define FRL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

/* Largest request head (request line, headers and the blank line) accepted; longer is 431. */
#define FRL_HTTP_MAX_HEAD 8192
/* Largest number of header lines accepted; more is 431. */
#define FRL_HTTP_MAX_HEADERS 64
/* Default listen addresses of the two processes that serve HTTP (--http auto). */
#define FRL_HTTP_LEARNER_DEFAULT "127.0.0.1:9464"
#define FRL_HTTP_BROKER_DEFAULT "127.0.0.1:9465"
/* Longest formatted address "[v6]:port" written by frl_http_server_listen. */
#define FRL_HTTP_ADDR_MAX 64

typedef struct frl_http_server frl_http_server_t;

typedef struct {
  const char *method; /* "GET" or "HEAD" */
  const char *path;   /* starts with '/', without the query; NUL-terminated */
  const char *query;  /* after '?', "" when absent */
} frl_http_request_t;

/* What a handler fills in. status defaults to 200 and content_type to text/plain; the body is
 * owned by the server (append with frl_http_append/frl_http_printf or hand over a heap buffer
 * with frl_http_set_body). For HEAD the server sends the headers of the same response. */
typedef struct {
  int status;
  const char *content_type; /* a static string */
  char *body;
  size_t len, cap;
} frl_http_response_t;

typedef void (*frl_http_handler_fn)(void *arg, const frl_http_request_t *req,
                                    frl_http_response_t *res);

typedef struct {
  int max_connections;    /* open at once; more are answered 503 and closed (default 64) */
  double head_timeout_s;  /* the whole request head must arrive within this (default 10) */
  double write_timeout_s; /* the client must take the response within this (default 10) */
  double linger_s;        /* after the response, unread input is drained this long (default 1) */
} frl_http_options_t;

typedef struct {
  uint64_t requests;            /* answered with a handler's response (any status) */
  uint64_t bad_requests;        /* answered 4xx/5xx by the parser (400, 405, 408, 431, 505) */
  uint64_t refused_connections; /* over max_connections, answered 503 */
  uint64_t timeouts;            /* closed because a deadline passed */
  int open_connections;
} frl_http_stats_t;

/* Creates a server on `loop`, or on a loop of its own when loop is NULL (then embed it with
 * frl_http_server_fd/_timeout_ms/_run_nowait). opt may be NULL for the defaults; zero fields
 * take their default too. Nothing listens until frl_http_server_listen. Returns 0 and *out, or
 * FRL_EUSAGE for a negative option, or a libuv error for an own loop that cannot start. */
int frl_http_server_new(frl_http_server_t **out, uv_loop_t *loop, const frl_http_options_t *opt);

/* Closes the listener and every connection. With a caller's loop the memory is released by the
 * close callbacks, so the caller must run that loop again before closing it; with an own loop
 * this runs it to completion and frees everything. Accepts NULL; sets *self_p to NULL. */
void frl_http_server_destroy(frl_http_server_t **self_p);

/* Serves GET/HEAD of exactly `path` (a path without query, starting with '/') with fn(arg,..).
 * A later route for the same path replaces the earlier one. Returns 0 or FRL_EUSAGE. */
int frl_http_server_route(frl_http_server_t *s, const char *path, frl_http_handler_fn fn,
                          void *arg);

/* Parses "IPV4:PORT" or "[IPV6]:PORT" (numeric addresses, port 0-65535) into *out. Returns 0, or
 * FRL_EUSAGE with a message in err naming what is wrong and the allowed range. */
int frl_http_parse_addr(const char *text, struct sockaddr_storage *out, char *err, size_t errlen);

/* Binds and listens on `addr` (as frl_http_parse_addr reads it; port 0 picks a free port) and
 * writes the bound address, e.g. "127.0.0.1:40123", to bound (FRL_HTTP_ADDR_MAX bytes). Returns
 * 0, FRL_EUSAGE for a bad address (message in bound), or a libuv error such as UV_EADDRINUSE
 * (the server stays usable: listen may be tried again). Processes serving HTTP must ignore
 * SIGPIPE, as every fleetrl process does. */
int frl_http_server_listen(frl_http_server_t *s, const char *addr, char *bound, size_t boundlen);

/* Embedding an own loop into another poller: poll fd for readability, wait at most
 * timeout_ms (-1: no limit of the server's own), then call run_nowait, which runs whatever is
 * due without blocking. Calling run_nowait on every turn of the outer loop is also right. */
int frl_http_server_fd(const frl_http_server_t *s);
int frl_http_server_timeout_ms(const frl_http_server_t *s);
void frl_http_server_run_nowait(frl_http_server_t *s);

void frl_http_server_stats(const frl_http_server_t *s, frl_http_stats_t *out);

/* Appends to a response body; the body grows as needed (allocation failure aborts). */
void frl_http_append(frl_http_response_t *res, const void *data, size_t len);
void frl_http_printf(frl_http_response_t *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Replaces the body with a heap buffer of len bytes that the response takes over. */
void frl_http_set_body(frl_http_response_t *res, char *body, size_t len);

/* Resolves the --http flag for a process: "auto" gives role_default, "off" gives NULL, anything
 * else is returned as is. */
const char *frl_http_flag_address(const char *flag, const char *role_default);

/* Binds a server for a process's --http flag (auto, off or ADDR:PORT) and writes the bound
 * address with a newline to addr_file when that is non-NULL and non-empty. With auto, a default
 * port that is taken falls back to a free port (with a warning), so that several fleets share a
 * host. Logs the outcome. Returns 0 with *bound set ("" when off), or the listen error (the
 * process goes on without HTTP; logged as a warning). */
int frl_http_server_start(frl_http_server_t *s, const char *flag, const char *role_default,
                          const char *what, const char *addr_file, char *bound, size_t boundlen);

#endif
