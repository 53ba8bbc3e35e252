/* http.c: the read-only HTTP/1.1 server behind /metrics and the learner's status page. One
 * request per connection, answered and closed; the request head is read into a fixed buffer
 * per connection and parsed strictly after RFC 9112 (anything unusual is refused, since the
 * only clients are scrapers and browsers that never need it). */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common.h"
#include "log.h"

#define MAX_ROUTES 16
#define MAX_METHOD 16
/* Input read and dropped after the response, before the connection is closed anyway. */
#define DRAIN_MAX (1u << 20)
#define LISTEN_BACKLOG 128

enum { C_READING, C_WRITING, C_DRAINING, C_CLOSING };

typedef struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  frl_http_server_t *srv;
  struct conn *prev, *next;
  int state;
  int handles;     /* of tcp and timer, not yet closed */
  bool eof;        /* the client finished sending */
  size_t used;     /* bytes of head[] filled */
  size_t scanned;  /* head[0, scanned) holds no end of head */
  size_t drained;
  frl_http_response_t res;
  uv_buf_t bufs[2];
  char reply_head[768];
  char head[FRL_HTTP_MAX_HEAD + 1]; /* + 1 for a terminating NUL */
} conn_t;

/* A connection over the limit: told 503 and closed at once. */
typedef struct {
  uv_tcp_t tcp;
  frl_http_server_t *srv;
} reject_t;

typedef struct {
  char *path;
  frl_http_handler_fn fn;
  void *arg;
} route_t;

struct frl_http_server {
  uv_loop_t *loop;
  uv_loop_t own_loop;
  bool owns_loop;
  uv_tcp_t listener;
  bool listening;
  bool listener_used; /* the listener handle was initialized once */
  bool destroying;
  bool dirty;   /* callbacks ran that may have queued watcher changes (see timeout_ms) */
  int handles;  /* open libuv handles the server owns: listener, connections, rejects */
  frl_http_options_t opt;
  route_t routes[MAX_ROUTES];
  int n_routes;
  conn_t *conns;
  frl_http_stats_t stats;
  char scratch[4096]; /* input read after the head is complete goes here, unread */
};

static const char *reason_phrase(int status) {
  switch (status) {
  case 200: return "OK";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

/* ---- response bodies ------------------------------------------------------------------ */

static void reserve(frl_http_response_t *res, size_t extra) {
  if (res->len + extra + 1 <= res->cap) return;
  size_t cap = res->cap ? res->cap : 1024;
  while (cap < res->len + extra + 1) cap *= 2;
  res->body = frl_xrealloc(res->body, cap);
  res->cap = cap;
}

void frl_http_append(frl_http_response_t *res, const void *data, size_t len) {
  reserve(res, len);
  memcpy(res->body + res->len, data, len);
  res->len += len;
  res->body[res->len] = '\0';
}

void frl_http_printf(frl_http_response_t *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    frl_http_append(res, small, (size_t)n);
    return;
  }
  reserve(res, (size_t)n);
  va_start(ap, fmt);
  vsnprintf(res->body + res->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  res->len += (size_t)n;
}

void frl_http_set_body(frl_http_response_t *res, char *body, size_t len) {
  free(res->body);
  res->body = body;
  res->len = len;
  res->cap = len; /* a later append reallocates */
}

/* ---- server lifetime ------------------------------------------------------------------- */

static void free_server(frl_http_server_t *s) {
  for (int i = 0; i < s->n_routes; i++) free(s->routes[i].path);
  free(s);
}

/* One of the server's handles finished closing; the last one after destroy frees the server
 * (on a caller's loop, where destroy cannot wait for it). */
static void handle_gone(frl_http_server_t *s) {
  s->handles--;
  if (s->destroying && s->handles == 0 && !s->owns_loop) free_server(s);
}

static void on_listener_closed(uv_handle_t *h) { handle_gone(h->data); }

static void on_reject_closed(uv_handle_t *h) {
  reject_t *r = h->data;
  frl_http_server_t *s = r->srv;
  free(r);
  handle_gone(s);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles > 0) return;
  frl_http_server_t *s = c->srv;
  free(c->res.body);
  free(c);
  handle_gone(s);
}

static void close_conn(conn_t *c) {
  if (c->state == C_CLOSING) return;
  frl_http_server_t *s = c->srv;
  c->state = C_CLOSING;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->stats.open_connections--;
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  s->dirty = true;
}

int frl_http_server_new(frl_http_server_t **out, uv_loop_t *loop, const frl_http_options_t *opt) {
  frl_http_options_t o = {0};
  if (opt) o = *opt;
  if (o.max_connections < 0 || o.head_timeout_s < 0 || o.write_timeout_s < 0 || o.linger_s < 0)
    return FRL_EUSAGE;
  if (o.max_connections == 0) o.max_connections = 64;
  if (o.head_timeout_s == 0) o.head_timeout_s = 10;
  if (o.write_timeout_s == 0) o.write_timeout_s = 10;
  if (o.linger_s == 0) o.linger_s = 1;
  frl_http_server_t *s = frl_xcalloc(1, sizeof *s);
  s->opt = o;
  if (loop) {
    s->loop = loop;
  } else {
    int rc = uv_loop_init(&s->own_loop);
    if (rc != 0) {
      free(s);
      return rc;
    }
    s->loop = &s->own_loop;
    s->owns_loop = true;
  }
  *out = s;
  return 0;
}

void frl_http_server_destroy(frl_http_server_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_http_server_t *s = *self_p;
  *self_p = NULL;
  s->destroying = true;
  if (s->listening) uv_close((uv_handle_t *)&s->listener, on_listener_closed);
  while (s->conns) close_conn(s->conns);
  if (s->owns_loop) {
    /* Nothing else runs on this loop: it ends when the last close callback has run. */
    uv_run(s->loop, UV_RUN_DEFAULT);
    uv_loop_close(s->loop);
    free_server(s);
  } else if (s->handles == 0) {
    free_server(s);
  }
}

int frl_http_server_route(frl_http_server_t *s, const char *path, frl_http_handler_fn fn,
                          void *arg) {
  if (!path || path[0] != '/' || strchr(path, '?') || !fn) return FRL_EUSAGE;
  for (int i = 0; i < s->n_routes; i++)
    if (strcmp(s->routes[i].path, path) == 0) {
      s->routes[i].fn = fn;
      s->routes[i].arg = arg;
      return 0;
    }
  if (s->n_routes == MAX_ROUTES) return FRL_EUSAGE;
  s->routes[s->n_routes++] = (route_t){frl_xstrdup(path), fn, arg};
  return 0;
}

void frl_http_server_stats(const frl_http_server_t *s, frl_http_stats_t *out) { *out = s->stats; }

int frl_http_server_fd(const frl_http_server_t *s) {
  return s->owns_loop ? uv_backend_fd(s->loop) : -1;
}

/* libuv registers watcher changes with epoll only when its loop next polls, and
 * uv_backend_timeout does not count those pending changes; so after callbacks that may have
 * queued some (a new connection, a write that must wait) the embedding poller must not block
 * before calling run_nowait again. */
int frl_http_server_timeout_ms(const frl_http_server_t *s) {
  if (!s->owns_loop) return -1;
  if (s->dirty) return 0;
  return uv_backend_timeout(s->loop);
}

void frl_http_server_run_nowait(frl_http_server_t *s) {
  if (!s->owns_loop) return;
  for (int i = 0; i < 4; i++) {
    s->dirty = false;
    uv_run(s->loop, UV_RUN_NOWAIT);
    if (!s->dirty) break;
  }
}

/* ---- addresses ------------------------------------------------------------------------- */

static int addr_error(char *err, size_t errlen, const char *fmt, const char *text) {
  if (err && errlen) snprintf(err, errlen, fmt, text);
  return FRL_EUSAGE;
}

int frl_http_parse_addr(const char *text, struct sockaddr_storage *out, char *err, size_t errlen) {
  if (!text || !*text)
    return addr_error(err, errlen, "%sthe address is empty; expected ADDR:PORT", "");
  if (strlen(text) >= FRL_HTTP_ADDR_MAX)
    return addr_error(err, errlen, "'%.40s...' is longer than 63 characters", text);
  char host[FRL_HTTP_ADDR_MAX];
  const char *port_text;
  bool v6 = text[0] == '[';
  if (v6) {
    const char *close = strchr(text, ']');
    if (!close || close[1] != ':')
      return addr_error(err, errlen, "'%s': expected [IPV6]:PORT", text);
    memcpy(host, text + 1, (size_t)(close - text - 1));
    host[close - text - 1] = '\0';
    port_text = close + 2;
  } else {
    const char *colon = strrchr(text, ':');
    if (!colon) return addr_error(err, errlen, "'%s' has no port; expected ADDR:PORT", text);
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    if (strchr(host, ':'))
      return addr_error(err, errlen, "'%s': an IPv6 address goes in brackets, [::1]:PORT", text);
    port_text = colon + 1;
  }
  if (!host[0])
    return addr_error(err, errlen,
                      "'%s' has no address; use 127.0.0.1 (this host only) or 0.0.0.0 (all)",
                      text);
  size_t nd = strspn(port_text, "0123456789");
  if (nd == 0 || port_text[nd] != '\0' || nd > 5)
    return addr_error(err, errlen, "'%s': the port must be a number in [0, 65535]", text);
  long port = strtol(port_text, NULL, 10);
  if (port > 65535)
    return addr_error(err, errlen, "'%s': the port is outside the allowed range [0, 65535]",
                      text);
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
      return addr_error(err, errlen, "'%s': not a numeric IPv6 address", text);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
      return addr_error(err, errlen, "'%s': not a numeric IPv4 address (such as 127.0.0.1)",
                        text);
  }
  *out = ss;
  return 0;
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t n) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
    snprintf(out, n, "[%s]:%u", host, (unsigned)ntohs(a->sin6_port));
  } else {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    snprintf(out, n, "%s:%u", host, (unsigned)ntohs(a->sin_port));
  }
}

/* ---- responses ------------------------------------------------------------------------- */

static void on_shutdown(uv_shutdown_t *req, int status);

static void restart_timer(conn_t *c, double seconds, uv_timer_cb cb) {
  uint64_t ms = (uint64_t)(seconds * 1000.0);
  uv_timer_start(&c->timer, cb, ms ? ms : 1, 0);
}

static void on_timer(uv_timer_t *t);

static void on_write(uv_write_t *req, int status) {
  conn_t *c = req->data;
  if (c->state == C_CLOSING) return; /* cancelled by close_conn */
  c->srv->dirty = true;
  if (status < 0) {
    close_conn(c);
    return;
  }
  /* Half-close, then read and drop what the client still sends until it closes too: closing
   * with unread input would reset the connection and could destroy the response in flight. */
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) close_conn(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn_t *c = req->data;
  if (c->state == C_CLOSING) return;
  c->srv->dirty = true;
  if (status < 0 || c->eof) {
    close_conn(c);
    return;
  }
  c->state = C_DRAINING;
  restart_timer(c, c->srv->opt.linger_s, on_timer);
}

/* Sends c->res (headers only for HEAD) and moves to writing. */
static void send_response(conn_t *c, bool head_only, const char *extra_headers) {
  frl_http_server_t *s = c->srv;
  frl_http_response_t *r = &c->res;
  int n = snprintf(c->reply_head, sizeof c->reply_head,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: %s\r\n"
                   "Content-Length: %zu\r\n"
                   "Connection: close\r\n"
                   "Cache-Control: no-store\r\n"
                   "X-Content-Type-Options: nosniff\r\n"
                   /* Pages may run their own inline script and fetch from this server only. */
                   "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                   "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "
                   "base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
                   "%s\r\n",
                   r->status, reason_phrase(r->status),
                   r->content_type ? r->content_type : "text/plain; charset=utf-8", r->len,
                   extra_headers ? extra_headers : "");
  if (n < 0 || (size_t)n >= sizeof c->reply_head) {
    close_conn(c);
    return;
  }
  c->state = C_WRITING;
  restart_timer(c, s->opt.write_timeout_s, on_timer);
  c->bufs[0] = uv_buf_init(c->reply_head, (unsigned)n);
  c->bufs[1] = uv_buf_init(r->body ? r->body : "", (unsigned)r->len);
  c->wreq.data = c;
  int nbufs = head_only || r->len == 0 ? 1 : 2;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, c->bufs, (unsigned)nbufs, on_write) != 0)
    close_conn(c);
  s->dirty = true;
}

/* Answers a request the server refuses, with a one-line reason in the body. */
static void send_error(conn_t *c, int status, const char *why, const char *extra_headers) {
  c->srv->stats.bad_requests++;
  c->res.len = 0;
  c->res.status = status;
  c->res.content_type = "text/plain; charset=utf-8";
  frl_http_printf(&c->res, "%d %s: %s\n", status, reason_phrase(status), why);
  frl_debug("http: answered %d: %s", status, why);
  send_response(c, false, extra_headers);
}

static void on_timer(uv_timer_t *t) {
  conn_t *c = t->data;
  c->srv->dirty = true;
  if (c->state == C_READING) {
    c->srv->stats.timeouts++;
    char why[96];
    snprintf(why, sizeof why, "the request head did not arrive within %g s",
             c->srv->opt.head_timeout_s);
    send_error(c, 408, why, NULL);
    return;
  }
  if (c->state == C_WRITING) c->srv->stats.timeouts++;
  close_conn(c);
}

/* ---- request parsing ------------------------------------------------------------------- */

/* RFC 9110 tchar: the characters of methods and header names. */
static bool is_tchar(unsigned char ch) {
  if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
    return true;
  return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

typedef struct {
  int status;       /* 0: a request to serve; else the status to refuse it with */
  char why[160];
  bool head;        /* HEAD */
  char *path, *query;
} parsed_t;

static void refuse(parsed_t *p, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void refuse(parsed_t *p, int status, const char *fmt, ...) {
  p->status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->why, sizeof p->why, fmt, ap);
  va_end(ap);
}

/* Parses h[0, n) (h[n] is NUL), which ends with the first CRLF CRLF, in place (NULs split the
 * path and the query). Fills p->status with a refusal or leaves it 0 with method, path and query set. */
static void parse_head(char *h, size_t n, parsed_t *p) {
  memset(p, 0, sizeof *p);
  for (size_t i = 0; i < n; i++) {
    if (h[i] == '\0') {
      refuse(p, 400, "NUL byte at offset %zu of the request head", i);
      return;
    }
    /* Every line ends with CRLF; a lone CR or LF is how request smuggling starts. */
    if ((h[i] == '\r' && (i + 1 >= n || h[i + 1] != '\n')) ||
        (h[i] == '\n' && (i == 0 || h[i - 1] != '\r'))) {
      refuse(p, 400, "bare CR or LF at offset %zu of the request head (lines end with CRLF)", i);
      return;
    }
  }
  /* Request line: method SP request-target SP HTTP-version. */
  char *line_end = strstr(h, "\r\n");
  size_t i = 0;
  while (is_tchar((unsigned char)h[i])) i++;
  size_t mlen = i;
  if (mlen == 0 || mlen > MAX_METHOD || h[i] != ' ') {
    refuse(p, 400, "request line: the method must be a token of 1-%d characters followed by "
                   "one space", MAX_METHOD);
    return;
  }
  char method[MAX_METHOD + 1];
  memcpy(method, h, mlen);
  method[mlen] = '\0';
  char *target = h + i + 1;
  size_t tlen = 0;
  while (target + tlen < line_end && (unsigned char)target[tlen] > 0x20 &&
         (unsigned char)target[tlen] < 0x7f)
    tlen++;
  if (tlen == 0 || target[tlen] != ' ') {
    refuse(p, 400, "request line: the target must be 1 or more visible ASCII characters "
                   "followed by one space");
    return;
  }
  char *version = target + tlen + 1;
  size_t vlen = (size_t)(line_end - version);
  if (vlen != 8 || strncmp(version, "HTTP/", 5) != 0 || version[5] < '0' || version[5] > '9' ||
      version[6] != '.' || version[7] < '0' || version[7] > '9') {
    refuse(p, 400, "request line: the version must be HTTP/1.0 or HTTP/1.1");
    return;
  }
  if (version[5] != '1') {
    refuse(p, 505, "only HTTP/1.x is served");
    return;
  }
  bool http11 = version[7] >= '1';

  /* Header fields: name ":" OWS value OWS, one per line, no folding. */
  int hosts = 0, count = 0;
  char *line = line_end + 2;
  while (!(line[0] == '\r' && line[1] == '\n')) {
    char *end = strstr(line, "\r\n");
    if (++count > FRL_HTTP_MAX_HEADERS) {
      refuse(p, 431, "more than %d header lines", FRL_HTTP_MAX_HEADERS);
      return;
    }
    if (line[0] == ' ' || line[0] == '\t') {
      refuse(p, 400, "header line %d: obsolete line folding is not accepted", count);
      return;
    }
    size_t k = 0;
    while (is_tchar((unsigned char)line[k])) k++;
    if (k == 0 || line[k] != ':') {
      refuse(p, 400, "header line %d: expected a field name and ':' with no space before it",
             count);
      return;
    }
    char *value = line + k + 1;
    for (char *v = value; v < end; v++) {
      unsigned char ch = (unsigned char)*v;
      if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
        refuse(p, 400, "header '%.*s': control character 0x%02x in the value", (int)FRL_MIN(k, 40),
               line, ch);
        return;
      }
    }
    while (value < end && (*value == ' ' || *value == '\t')) value++;
    if (k == 4 && strncasecmp(line, "host", 4) == 0) hosts++;
    if (k == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
      refuse(p, 400, "Transfer-Encoding: request bodies are not accepted");
      return;
    }
    if (k == 14 && strncasecmp(line, "content-length", 14) == 0) {
      char *v = value;
      while (v < end && *v == '0') v++;
      while (v < end && (*v == ' ' || *v == '\t')) v++;
      if (value == end || v != end) {
        refuse(p, 400, "Content-Length: request bodies are not accepted (only 0 is)");
        return;
      }
    }
    line = end + 2;
  }
  if (hosts > 1 || (http11 && hosts != 1)) {
    refuse(p, 400, "an HTTP/1.1 request needs exactly one Host header (found %d)", hosts);
    return;
  }
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    refuse(p, 405, "%s: this server is read only (GET and HEAD)", method);
    return;
  }
  p->head = method[0] == 'H';
  if (target[0] != '/') {
    refuse(p, 400, "the request target must be a path starting with '/'");
    return;
  }
  target[tlen] = '\0';
  if (strchr(target, '#')) {
    refuse(p, 400, "the request target must not contain a fragment ('#')");
    return;
  }
  char *q = strchr(target, '?');
  p->query = "";
  if (q) {
    *q = '\0';
    p->query = q + 1;
  }
  p->path = target;
}

static void serve(conn_t *c, size_t head_len) {
  frl_http_server_t *s = c->srv;
  parsed_t p;
  c->head[head_len] = '\0'; /* the head is now a C string (input after it is ignored) */
  parse_head(c->head, head_len, &p);
  if (p.status) {
    send_error(c, p.status, p.why, p.status == 405 ? "Allow: GET, HEAD\r\n" : NULL);
    return;
  }
  const route_t *route = NULL;
  for (int i = 0; i < s->n_routes && !route; i++)
    if (strcmp(s->routes[i].path, p.path) == 0) route = &s->routes[i];
  if (!route) {
    c->res.status = 404;
    frl_http_printf(&c->res, "404 Not Found: no page at this path\n");
    s->stats.requests++;
    send_response(c, p.head, NULL);
    return;
  }
  frl_http_request_t req = {.method = p.head ? "HEAD" : "GET", .path = p.path, .query = p.query};
  c->res.status = 200;
  c->res.content_type = NULL;
  route->fn(route->arg, &req, &c->res);
  if (c->res.status < 100 || c->res.status > 599) c->res.status = 500;
  s->stats.requests++;
  send_response(c, p.head, NULL);
}

/* ---- reading --------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  if (c->state == C_READING && c->used < FRL_HTTP_MAX_HEAD)
    *buf = uv_buf_init(c->head + c->used, (unsigned)(FRL_HTTP_MAX_HEAD - c->used));
  else
    *buf = uv_buf_init(c->srv->scratch, sizeof c->srv->scratch);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = stream->data;
  if (c->state == C_CLOSING || nread == 0) return;
  c->srv->dirty = true;
  if (nread < 0) {
    c->eof = true;
    uv_read_stop(stream);
    if (nread != UV_EOF) {
      close_conn(c); /* reset or error: nobody to answer */
    } else if (c->state == C_READING) {
      if (c->used == 0) close_conn(c);
      else send_error(c, 400, "the connection was half-closed before the request head ended",
                      NULL);
    } else if (c->state == C_DRAINING) {
      close_conn(c);
    }
    return; /* while writing, the response still goes out to a half-closed client */
  }
  if (c->state != C_READING) {
    c->drained += (size_t)nread;
    if (c->drained > DRAIN_MAX) close_conn(c);
    return;
  }
  c->used += (size_t)nread;
  /* Look for CRLF CRLF only in what is new (and the 3 bytes before it). */
  size_t from = c->scanned;
  char *end = memmem(c->head + from, c->used - from, "\r\n\r\n", 4);
  c->scanned = c->used >= 3 ? c->used - 3 : 0;
  if (end) {
    uv_timer_stop(&c->timer);
    serve(c, (size_t)(end - c->head) + 4);
    return;
  }
  if (c->used == FRL_HTTP_MAX_HEAD) {
    char why[96];
    snprintf(why, sizeof why, "the request head exceeds %d bytes", FRL_HTTP_MAX_HEAD);
    uv_timer_stop(&c->timer);
    send_error(c, 431, why, NULL);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  frl_http_server_t *s = server->data;
  s->dirty = true;
  if (status < 0) {
    frl_debug("http: accept failed: %s", uv_strerror(status));
    return;
  }
  if (s->stats.open_connections >= s->opt.max_connections) {
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Length: 43\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
        "503 Service Unavailable: too many clients\n";
    reject_t *r = frl_xcalloc(1, sizeof *r);
    r->srv = s;
    uv_tcp_init(s->loop, &r->tcp);
    r->tcp.data = r;
    s->handles++;
    if (uv_accept(server, (uv_stream_t *)&r->tcp) == 0) {
      uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
      uv_try_write((uv_stream_t *)&r->tcp, &b, 1);
    }
    s->stats.refused_connections++;
    uv_close((uv_handle_t *)&r->tcp, on_reject_closed);
    return;
  }
  conn_t *c = frl_xcalloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  s->handles++;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->stats.open_connections++;
  c->state = C_READING;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    close_conn(c);
    return;
  }
  restart_timer(c, s->opt.head_timeout_s, on_timer);
}

/* ---- listening ------------------------------------------------------------------------- */

int frl_http_server_listen(frl_http_server_t *s, const char *addr, char *bound, size_t boundlen) {
  struct sockaddr_storage ss;
  char err[160];
  if (s->listening || s->listener_used || s->destroying) return FRL_EUSAGE;
  if (frl_http_parse_addr(addr, &ss, err, sizeof err) != 0) {
    if (bound && boundlen) snprintf(bound, boundlen, "%s", err);
    return FRL_EUSAGE;
  }
  /* The socket is bound here rather than by uv_tcp_bind, which on Linux defers EADDRINUSE to
   * uv_listen after the handle exists; this way a failed bind leaves no handle to close. */
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                          : sizeof(struct sockaddr_in);
  if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  struct sockaddr_storage got;
  socklen_t gl = sizeof got;
  if (getsockname(fd, (struct sockaddr *)&got, &gl) != 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  uv_tcp_init(s->loop, &s->listener);
  s->listener.data = s;
  s->listening = s->listener_used = true;
  s->handles++;
  int rc = uv_tcp_open(&s->listener, fd);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
  if (rc != 0) {
    /* The handle owns fd now: closing it closes the socket. The handle cannot be reused
     * until closed, so this server will not listen again. */
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    s->listening = false;
    return rc;
  }
  if (bound && boundlen) format_addr(&got, bound, boundlen);
  s->dirty = true;
  return 0;
}

const char *frl_http_flag_address(const char *flag, const char *role_default) {
  if (!flag || !*flag || strcmp(flag, "auto") == 0) return role_default;
  if (strcmp(flag, "off") == 0) return NULL;
  return flag;
}

static void write_addr_file(const char *path, const char *bound) {
  char tmp[600];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) {
    frl_warn("http: cannot write the address file %s: %s", tmp, strerror(errno));
    return;
  }
  fprintf(f, "%s\n", bound);
  if (fclose(f) != 0 || rename(tmp, path) != 0)
    frl_warn("http: cannot write the address file %s: %s", path, strerror(errno));
}

int frl_http_server_start(frl_http_server_t *s, const char *flag, const char *role_default,
                          const char *what, const char *addr_file, char *bound, size_t boundlen) {
  const char *addr = frl_http_flag_address(flag, role_default);
  bound[0] = '\0';
  /* A file left by an earlier process must not point readers at a server that is not ours. */
  if (addr_file && *addr_file) unlink(addr_file);
  if (!addr) {
    frl_info("http: off (--http off)");
    return 0;
  }
  int rc = frl_http_server_listen(s, addr, bound, boundlen);
  bool is_auto = addr == role_default;
  if (rc == UV_EADDRINUSE && is_auto) {
    /* Another process (often another fleet on this host) has the default port. */
    char any[FRL_HTTP_ADDR_MAX];
    snprintf(any, sizeof any, "%.*s:0", (int)(strrchr(addr, ':') - addr), addr);
    rc = frl_http_server_listen(s, any, bound, boundlen);
    if (rc == 0)
      frl_warn("http: %s is in use; serving on %s instead (--http ADDR:PORT to choose)", addr,
               bound);
  }
  if (rc != 0) {
    frl_warn("http: cannot serve %s on %s: %s; going on without it", what, addr,
             rc == FRL_EUSAGE ? bound : frl_strerror(rc));
    bound[0] = '\0';
    return rc;
  }
  frl_info("http: serving %s on http://%s/", what, bound);
  if (addr_file && *addr_file) write_addr_file(addr_file, bound);
  return 0;
}
