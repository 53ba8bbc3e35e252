/* test_http.c: the HTTP server over real loopback sockets: GET and HEAD, 404 and 405 with
 * Allow, the 8 KiB head bound at its exact edge, requests arriving a byte at a time, malformed
 * request lines and headers, slow clients (408), clients that never read (write deadline),
 * resets, the connection bound (503), random and mutated garbage, and address parsing and
 * binding. The server runs in a thread, embedded in poll() the way the broker embeds it in
 * zmq_poll, or on a loop of the caller's as in the learner. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "http.h"
#include "rng.h"

/* ---- the server under test, in a thread ----------------------------------------------- */

typedef struct {
  frl_http_server_t *srv;
  pthread_t thread;
  pthread_mutex_t lock;
  volatile int stop;
  bool own_loop;
  uv_loop_t loop; /* when the server runs on a loop of ours */
  uv_async_t wake;
  int port;
  frl_http_stats_t final;
} fixture_t;

static void on_hello(void *arg, const frl_http_request_t *req, frl_http_response_t *res) {
  (void)arg;
  frl_http_printf(res, "hello, %s\n", req->method);
  if (req->query[0]) frl_http_printf(res, "query=%s\n", req->query);
}

/* /big?mb=N: N MiB of a known pattern (default 1). */
static void on_big(void *arg, const frl_http_request_t *req, frl_http_response_t *res) {
  (void)arg;
  size_t mb = 1;
  if (strncmp(req->query, "mb=", 3) == 0) mb = (size_t)atoi(req->query + 3);
  if (mb > 64) mb = 64;
  size_t n = mb << 20;
  char *body = malloc(n);
  for (size_t i = 0; i < n; i++) body[i] = (char)('a' + i % 26);
  frl_http_set_body(res, body, n);
  res->content_type = "application/octet-stream";
}

static void on_bad_status(void *arg, const frl_http_request_t *req, frl_http_response_t *res) {
  (void)arg;
  (void)req;
  res->status = 1000; /* a handler bug: the server answers 500 instead */
}

static void *embedded_thread(void *p) {
  fixture_t *f = p;
  while (!f->stop) {
    pthread_mutex_lock(&f->lock);
    int fd = frl_http_server_fd(f->srv);
    int t = frl_http_server_timeout_ms(f->srv);
    pthread_mutex_unlock(&f->lock);
    if (t < 0 || t > 20) t = 20; /* so that stop is seen */
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    poll(&pf, 1, t);
    pthread_mutex_lock(&f->lock);
    frl_http_server_run_nowait(f->srv);
    pthread_mutex_unlock(&f->lock);
  }
  frl_http_server_stats(f->srv, &f->final);
  frl_http_server_destroy(&f->srv);
  return NULL;
}

static void on_wake(uv_async_t *a) {
  fixture_t *f = a->data;
  frl_http_server_stats(f->srv, &f->final);
  frl_http_server_destroy(&f->srv);
  uv_close((uv_handle_t *)a, NULL);
}

static void *loop_thread(void *p) {
  fixture_t *f = p;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  return NULL;
}

static fixture_t *start(bool own_loop, const frl_http_options_t *opt) {
  fixture_t *f = calloc(1, sizeof *f);
  pthread_mutex_init(&f->lock, NULL);
  f->own_loop = own_loop;
  if (!own_loop) {
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_async_init(&f->loop, &f->wake, on_wake);
    f->wake.data = f;
  }
  assert_int_equal(frl_http_server_new(&f->srv, own_loop ? NULL : &f->loop, opt), 0);
  assert_int_equal(frl_http_server_route(f->srv, "/hello", on_hello, NULL), 0);
  assert_int_equal(frl_http_server_route(f->srv, "/big", on_big, NULL), 0);
  assert_int_equal(frl_http_server_route(f->srv, "/bad-status", on_bad_status, NULL), 0);
  char bound[FRL_HTTP_ADDR_MAX];
  assert_int_equal(frl_http_server_listen(f->srv, "127.0.0.1:0", bound, sizeof bound), 0);
  assert_memory_equal(bound, "127.0.0.1:", 10);
  f->port = atoi(bound + 10);
  assert_true(f->port > 0);
  pthread_create(&f->thread, NULL, own_loop ? embedded_thread : loop_thread, f);
  return f;
}

/* Runs an own-loop server that the test made itself, listening on port. */
static fixture_t *adopt(frl_http_server_t *srv, int port) {
  fixture_t *f = calloc(1, sizeof *f);
  pthread_mutex_init(&f->lock, NULL);
  f->own_loop = true;
  f->srv = srv;
  f->port = port;
  pthread_create(&f->thread, NULL, embedded_thread, f);
  return f;
}

static void finish(fixture_t *f) {
  if (f->own_loop) {
    f->stop = 1;
    pthread_join(f->thread, NULL);
  } else {
    uv_async_send(&f->wake);
    pthread_join(f->thread, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle was closed */
  }
  assert_null(f->srv);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

static frl_http_stats_t stats(fixture_t *f) {
  frl_http_stats_t s;
  pthread_mutex_lock(&f->lock);
  frl_http_server_stats(f->srv, &s);
  pthread_mutex_unlock(&f->lock);
  return s;
}

/* Polls until the server has exactly n connections open (5 s deadline). */
static void wait_open(fixture_t *f, int n) {
  double deadline = frl_now() + 5;
  while (stats(f).open_connections != n) {
    assert_true(frl_now() < deadline);
    usleep(2000);
  }
}

/* ---- a blocking client with deadlines -------------------------------------------------- */

static int client(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct timeval tv = {.tv_sec = 5}; /* every receive has a deadline */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* Sends what the server will take; stops early if it closed (it may refuse mid-request). */
static void send_some(int fd, const void *data, size_t n) {
  const char *p = data;
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k <= 0) return;
    p += k;
    n -= (size_t)k;
  }
}

typedef struct {
  char *raw;
  size_t len;
  int status;
  char *body;
  size_t body_len;
  bool eof; /* the server closed the connection */
} reply_t;

/* Reads until the server closes (or the 5 s deadline) and splits the response. */
static reply_t read_reply(int fd) {
  reply_t r = {0};
  size_t cap = 1 << 16;
  r.raw = malloc(cap + 1);
  for (;;) {
    if (r.len == cap) {
      cap *= 2;
      r.raw = realloc(r.raw, cap + 1);
    }
    ssize_t k = recv(fd, r.raw + r.len, cap - r.len, 0);
    if (k == 0) r.eof = true;
    if (k <= 0) break;
    r.len += (size_t)k;
  }
  r.raw[r.len] = '\0';
  if (r.len >= 12 && memcmp(r.raw, "HTTP/1.1 ", 9) == 0) r.status = atoi(r.raw + 9);
  char *sep = strstr(r.raw, "\r\n\r\n");
  if (sep) {
    r.body = sep + 4;
    r.body_len = r.len - (size_t)(r.body - r.raw);
  }
  return r;
}

/* The value of a response header (case as the server writes it), or NULL. */
static char *header(const reply_t *r, const char *name) {
  static char value[256];
  char key[64];
  snprintf(key, sizeof key, "\r\n%s: ", name);
  char *p = strstr(r->raw, key);
  if (!p || (r->body && p > r->body)) return NULL;
  p += strlen(key);
  size_t n = strcspn(p, "\r");
  snprintf(value, sizeof value, "%.*s", (int)n, p);
  return value;
}

static reply_t exchange(int port, const char *req, size_t n) {
  int fd = client(port);
  send_some(fd, req, n);
  reply_t r = read_reply(fd);
  close(fd);
  return r;
}

static reply_t get(int port, const char *req) { return exchange(port, req, strlen(req)); }

/* ---- tests ----------------------------------------------------------------------------- */

static void test_get_head_404_405(void **state) {
  (void)state;
  fixture_t *f = start(true, NULL);
  reply_t r = get(f->port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_true(r.eof);
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Type"), "text/plain; charset=utf-8");
  assert_string_equal(header(&r, "Content-Length"), "11");
  assert_string_equal(header(&r, "Connection"), "close");
  assert_int_equal(r.body_len, 11);
  assert_memory_equal(r.body, "hello, GET\n", 11);
  free(r.raw);

  /* HEAD: the same headers, no body. */
  r = get(f->port, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(r.status, 200);
  assert_string_equal(header(&r, "Content-Length"), "12"); /* "hello, HEAD\n" */
  assert_int_equal(r.body_len, 0);
  free(r.raw);

  /* The query goes to the handler; HTTP/1.0 needs no Host; header names are case-blind. */
  r = get(f->port, "GET /hello?a=1&b=%20 HTTP/1.0\r\nuser-agent: t\r\ncontent-length: 0\r\n\r\n");
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "hello, GET\nquery=a=1&b=%20\n");
  free(r.raw);

  r = get(f->port, "GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(r.status, 404);
  free(r.raw);
  r = get(f->port, "GET /hello/ HTTP/1.1\r\nHost: x\r\n\r\n"); /* exact paths only */
  assert_int_equal(r.status, 404);
  free(r.raw);

  const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "get", "BREW"};
  for (size_t i = 0; i < FRL_ARRAY_LEN(methods); i++) {
    char req[128];
    snprintf(req, sizeof req, "%s /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
             methods[i]);
    r = get(f->port, req);
    assert_int_equal(r.status, 405);
    assert_string_equal(header(&r, "Allow"), "GET, HEAD");
    free(r.raw);
  }
  r = get(f->port, "GET /bad-status HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(r.status, 500);
  free(r.raw);
  frl_http_stats_t s = stats(f);
  assert_int_equal(s.requests, 6);
  assert_int_equal(s.bad_requests, FRL_ARRAY_LEN(methods));
  finish(f);
}

/* A request head of exactly FRL_HTTP_MAX_HEAD bytes is served; one byte more is 431. */
static void test_head_bound(void **state) {
  (void)state;
  fixture_t *f = start(true, NULL);
  for (int extra = 0; extra <= 1; extra++) {
    size_t total = FRL_HTTP_MAX_HEAD + (size_t)extra;
    char *req = malloc(total + 1);
    const char *start_line = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t n = strlen(start_line);
    memcpy(req, start_line, n);
    memset(req + n, 'p', total - n - 4);
    memcpy(req + total - 4, "\r\n\r\n", 4);
    reply_t r = exchange(f->port, req, total);
    assert_int_equal(r.status, extra ? 431 : 200);
    if (extra) assert_non_null(strstr(r.body, "exceeds 8192 bytes"));
    free(r.raw);
    free(req);
  }
  /* Far too much: answered 431 while the client is still sending, which is then drained. */
  size_t big = 200000;
  char *req = malloc(big);
  memcpy(req, "GET / HTTP/1.1\r\nX: ", 19);
  memset(req + 19, 'x', big - 19);
  reply_t r = exchange(f->port, req, big);
  assert_int_equal(r.status, 431);
  free(r.raw);
  free(req);
  /* Too many header lines. */
  char many[4096] = "GET /hello HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < FRL_HTTP_MAX_HEADERS; i++) strcat(many, "A: b\r\n");
  strcat(many, "\r\n");
  r = get(f->port, many);
  assert_int_equal(r.status, 431);
  free(r.raw);
  finish(f);
}

static void test_byte_at_a_time(void **state) {
  (void)state;
  fixture_t *f = start(true, NULL);
  const char *req = "GET /hello?slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  int fd = client(f->port);
  for (size_t i = 0; req[i]; i++) {
    send_some(fd, req + i, 1);
    if (i % 8 == 0) usleep(1000); /* separate segments, not a timing condition */
  }
  reply_t r = read_reply(fd);
  close(fd);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "hello, GET\nquery=slow\n");
  free(r.raw);
  /* A client that sends its request and half-closes still gets the answer. */
  fd = client(f->port);
  send_some(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 33);
  shutdown(fd, SHUT_WR);
  r = read_reply(fd);
  close(fd);
  assert_int_equal(r.status, 200);
  free(r.raw);
  /* Half-closing before the head ended is a bad request, answered. */
  fd = client(f->port);
  send_some(fd, "GET /hello HTTP/1.1\r\nHo", 23);
  shutdown(fd, SHUT_WR);
  r = read_reply(fd);
  close(fd);
  assert_int_equal(r.status, 400);
  free(r.raw);
  finish(f);
}

static void test_malformed(void **state) {
  (void)state;
  fixture_t *f = start(true, NULL);
  struct {
    const char *req;
    size_t len; /* 0: strlen */
    int status;
    const char *why;
  } cases[] = {
      {"GET /hello\r\nHost: x\r\n\r\n", 0, 400, "target"},
      {"GET  /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "target"},
      {"GET /hello  HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "version"},
      {"GET /hello HTTP/1.1 \r\nHost: x\r\n\r\n", 0, 400, "version"},
      {"GET /hello http/1.1\r\nHost: x\r\n\r\n", 0, 400, "version"},
      {"GET /hello HTTP/1.10\r\nHost: x\r\n\r\n", 0, 400, "version"},
      {"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n", 0, 505, "HTTP/1.x"},
      {"GET /hello HTTP/0.9\r\nHost: x\r\n\r\n", 0, 505, "HTTP/1.x"},
      {"\r\n\r\n", 0, 400, "method"},
      {" GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "method"},
      {"GE(T /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "method"},
      {"ABCDEFGHIJKLMNOPQ /hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "method"},
      {"GET hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "starting with '/'"},
      {"GET http://x/hello HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "starting with '/'"},
      {"GET /hel\x7flo HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "target"},
      {"GET /h\xc3\xa9llo HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "target"},
      {"GET /hello#frag HTTP/1.1\r\nHost: x\r\n\r\n", 0, 400, "fragment"},
      {"GET /he\0llo HTTP/1.1\r\nHost: x\r\n\r\n", 33, 400, "NUL"},
      {"GET /hello HTTP/1.1\nHost: x\r\n\r\n", 0, 400, "bare CR or LF"},
      {"GET /hello HTTP/1.1\r\nHost: x\rY: z\r\n\r\n", 0, 400, "bare CR or LF"},
      {"GET /hello HTTP/1.1\r\n\r\n", 0, 400, "Host"},
      {"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0, 400, "Host"},
      {"GET /hello HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 0, 400, "Host"},
      {"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", 0, 400, "no space before"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 0, 400, "field name"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", 0, 400, "field name"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nA: b\r\n folded\r\n\r\n", 0, 400, "folding"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nA: b\x01" "c\r\n\r\n", 0, 400, "control character"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nA: b\x7f\r\n\r\n", 0, 400, "control character"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 0, 400, "bodies"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0x0\r\n\r\n", 0, 400, "bodies"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 0, 400, "bodies"},
      {"GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0, 400,
       "bodies"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(cases); i++) {
    size_t n = cases[i].len ? cases[i].len : strlen(cases[i].req);
    reply_t r = exchange(f->port, cases[i].req, n);
    if (r.status != cases[i].status || !r.body || !strstr(r.body, cases[i].why))
      fprintf(stderr, "case %zu: %s\n", i, r.raw);
    assert_int_equal(r.status, cases[i].status);
    assert_non_null(strstr(r.body, cases[i].why));
    assert_true(r.eof);
    free(r.raw);
  }
  /* Obs-text in a value, tabs and spaces around it, and an empty value are fine. */
  reply_t r = get(f->port, "GET /hello HTTP/1.1\r\nHost: x\r\nA:\t\xe2\x82\xac v \t\r\nB:\r\n\r\n");
  assert_int_equal(r.status, 200);
  free(r.raw);
  frl_http_stats_t s = stats(f);
  assert_int_equal(s.bad_requests, FRL_ARRAY_LEN(cases));
  assert_int_equal(s.requests, 1);
  finish(f);
}

static void test_slow_clients(void **state) {
  (void)state;
  frl_http_options_t opt = {.head_timeout_s = 0.2, .write_timeout_s = 0.3, .linger_s = 0.2};
  fixture_t *f = start(true, &opt);
  /* A head that never ends: 408, then closed. */
  int fd = client(f->port);
  send_some(fd, "GET /hello HTTP/1.1\r\nHo", 23);
  reply_t r = read_reply(fd);
  close(fd);
  assert_true(r.eof);
  assert_int_equal(r.status, 408);
  free(r.raw);
  /* A client that connects and says nothing gets the same. */
  fd = client(f->port);
  r = read_reply(fd);
  close(fd);
  assert_int_equal(r.status, 408);
  free(r.raw);
  /* A client that asks for 32 MiB and never reads: the write deadline frees the connection. */
  fd = client(f->port);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  send_some(fd, "GET /big?mb=32 HTTP/1.1\r\nHost: x\r\n\r\n", 36);
  /* Poll the counter itself: the open count is 0 before the server accepts, too. */
  double deadline = frl_now() + 5;
  while (stats(f).timeouts != 3) {
    assert_true(frl_now() < deadline);
    usleep(2000);
  }
  wait_open(f, 0);
  close(fd);
  frl_http_stats_t s = stats(f);
  assert_int_equal(s.timeouts, 3);
  /* A client that resets mid-request. */
  fd = client(f->port);
  send_some(fd, "GET /hel", 8);
  wait_open(f, 1);
  struct linger lg = {.l_onoff = 1, .l_linger = 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
  wait_open(f, 0);
  /* Still serving, and a large body arrives whole. */
  fd = client(f->port);
  send_some(fd, "GET /big?mb=3 HTTP/1.1\r\nHost: x\r\n\r\n", 35);
  r = read_reply(fd);
  close(fd);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.body_len, 3u << 20);
  for (size_t i = 0; i < r.body_len; i += 4099) assert_int_equal(r.body[i], 'a' + i % 26);
  free(r.raw);
  finish(f);
}

static void test_connection_bound(void **state) {
  (void)state;
  frl_http_options_t opt = {.max_connections = 2};
  fixture_t *f = start(true, &opt);
  int a = client(f->port), b = client(f->port);
  wait_open(f, 2);
  int c = client(f->port);
  reply_t r = read_reply(c);
  close(c);
  assert_int_equal(r.status, 503);
  assert_true(r.eof);
  free(r.raw);
  assert_int_equal(stats(f).refused_connections, 1);
  close(a);
  wait_open(f, 1);
  r = get(f->port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(r.status, 200);
  free(r.raw);
  close(b);
  wait_open(f, 0);
  finish(f);
}

/* Random bytes and randomly damaged requests: every answer is a well-formed response or a
 * close, and the server keeps serving (under ASan this is also a memory-safety check). */
static void test_garbage(void **state) {
  (void)state;
  fixture_t *f = start(true, NULL);
  frl_rng_t rng;
  frl_rng_seed(&rng, 20240613);
  const char *valid = "GET /hello?x=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n";
  size_t vn = strlen(valid);
  char buf[12000];
  for (int i = 0; i < 300; i++) {
    size_t n;
    if (i % 3 == 0) {
      n = 1 + frl_rng_below(&rng, sizeof buf - 1);
      for (size_t k = 0; k < n; k++) buf[k] = (char)frl_rng_below(&rng, 256);
    } else {
      memcpy(buf, valid, vn);
      n = vn;
      int edits = 1 + (int)frl_rng_below(&rng, 4);
      for (int e = 0; e < edits; e++) {
        size_t at = frl_rng_below(&rng, (uint32_t)n);
        int kind = (int)frl_rng_below(&rng, 3);
        if (kind == 0) {
          buf[at] = (char)frl_rng_below(&rng, 256);
        } else if (kind == 1 && n > 1) {
          memmove(buf + at, buf + at + 1, n - at - 1);
          n--;
        } else if (n + 1 < sizeof buf) {
          memmove(buf + at + 1, buf + at, n - at);
          buf[at] = "\r\n :/?\0\t"[frl_rng_below(&rng, 8)];
          n++;
        }
      }
    }
    int fd = client(f->port);
    send_some(fd, buf, n);
    shutdown(fd, SHUT_WR);
    reply_t r = read_reply(fd);
    close(fd);
    assert_true(r.eof);
    if (r.len > 0) {
      static const int ok[] = {200, 400, 404, 405, 431, 505};
      bool known = false;
      for (size_t k = 0; k < FRL_ARRAY_LEN(ok); k++) known |= r.status == ok[k];
      assert_true(known);
      assert_non_null(header(&r, "Content-Length"));
      assert_int_equal((size_t)atol(header(&r, "Content-Length")), r.body_len);
    }
    free(r.raw);
  }
  reply_t r = get(f->port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(r.status, 200);
  free(r.raw);
  wait_open(f, 0);
  finish(f);
}

/* The same server on a loop the caller runs (the learner's arrangement), destroyed from a
 * callback on that loop: every handle is closed and freed once the loop has run. */
static void test_callers_loop(void **state) {
  (void)state;
  fixture_t *f = start(false, NULL);
  reply_t r = get(f->port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(r.status, 200);
  free(r.raw);
  int idle = client(f->port); /* open when the server goes away */
  usleep(20000);
  finish(f);
  r = read_reply(idle);
  assert_true(r.eof);
  free(r.raw);
  close(idle);
}

static void test_addresses(void **state) {
  (void)state;
  struct sockaddr_storage ss;
  char err[160];
  assert_int_equal(frl_http_parse_addr("127.0.0.1:9464", &ss, err, sizeof err), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9464);
  assert_int_equal(frl_http_parse_addr("0.0.0.0:0", &ss, err, sizeof err), 0);
  assert_int_equal(frl_http_parse_addr("[::1]:65535", &ss, err, sizeof err), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 65535);
  struct {
    const char *text, *why;
  } bad[] = {
      {"", "empty"},
      {"127.0.0.1", "no port"},
      {"127.0.0.1:", "[0, 65535]"},
      {"127.0.0.1:65536", "[0, 65535]"},
      {"127.0.0.1:99999999", "[0, 65535]"},
      {"127.0.0.1:-1", "[0, 65535]"},
      {"127.0.0.1:80x", "[0, 65535]"},
      {":80", "no address"},
      {"localhost:80", "numeric IPv4"},
      {"256.0.0.1:80", "numeric IPv4"},
      {"::1:80", "brackets"},
      {"[::1]80", "[IPV6]:PORT"},
      {"[zz]:80", "numeric IPv6"},
      {"1111111111111111111111111111111111111111111111111111111111111111:1", "longer"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(bad); i++) {
    err[0] = '\0';
    assert_int_equal(frl_http_parse_addr(bad[i].text, &ss, err, sizeof err), FRL_EUSAGE);
    if (!strstr(err, bad[i].why)) fprintf(stderr, "%s: %s\n", bad[i].text, err);
    assert_non_null(strstr(err, bad[i].why));
  }
  assert_string_equal(frl_http_flag_address("auto", "1.2.3.4:5"), "1.2.3.4:5");
  assert_null(frl_http_flag_address("off", "1.2.3.4:5"));
  assert_string_equal(frl_http_flag_address("127.0.0.1:7", "x"), "127.0.0.1:7");
}

/* A taken port: an explicit address fails with EADDRINUSE, auto falls back to a free port and
 * writes it to the address file, off serves nothing. */
static void test_bind_in_use(void **state) {
  (void)state;
  fixture_t *f = start(true, NULL);
  char taken[FRL_HTTP_ADDR_MAX], bound[FRL_HTTP_ADDR_MAX];
  snprintf(taken, sizeof taken, "127.0.0.1:%d", f->port);
  frl_http_server_t *s = NULL;
  assert_int_equal(frl_http_server_new(&s, NULL, NULL), 0);
  assert_int_equal(frl_http_server_listen(s, taken, bound, sizeof bound), UV_EADDRINUSE);
  assert_int_equal(frl_http_server_start(s, taken, "127.0.0.1:1", "test", NULL, bound,
                                         sizeof bound), UV_EADDRINUSE);
  assert_string_equal(bound, "");
  assert_int_equal(frl_http_server_start(s, "off", taken, "test", NULL, bound, sizeof bound), 0);
  assert_string_equal(bound, "");
  char file[] = "/tmp/fleetrl-test-http-XXXXXX";
  int tfd = mkstemp(file);
  assert_true(tfd >= 0);
  close(tfd);
  assert_int_equal(frl_http_server_start(s, "auto", taken, "test", file, bound, sizeof bound), 0);
  assert_string_not_equal(bound, taken);
  assert_memory_equal(bound, "127.0.0.1:", 10);
  FILE *fp = fopen(file, "r");
  char line[128] = "";
  assert_non_null(fgets(line, sizeof line, fp));
  fclose(fp);
  unlink(file);
  char want[128];
  snprintf(want, sizeof want, "%s\n", bound);
  assert_string_equal(line, want);
  /* It serves there. */
  frl_http_server_route(s, "/hello", on_hello, NULL);
  fixture_t *g = adopt(s, atoi(bound + 10));
  reply_t r = get(g->port, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(r.status, 200);
  free(r.raw);
  finish(g); /* destroys s */
  s = NULL;
  /* Bad options and routes. */
  assert_int_equal(frl_http_server_new(&s, NULL, &(frl_http_options_t){.max_connections = -1}),
                   FRL_EUSAGE);
  assert_int_equal(frl_http_server_new(&s, NULL, NULL), 0);
  assert_int_equal(frl_http_server_route(s, "nope", on_hello, NULL), FRL_EUSAGE);
  assert_int_equal(frl_http_server_route(s, "/a?b", on_hello, NULL), FRL_EUSAGE);
  assert_int_equal(frl_http_server_listen(s, "nonsense", bound, sizeof bound), FRL_EUSAGE);
  assert_non_null(strstr(bound, "no port"));
  frl_http_server_destroy(&s);
  finish(f);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_head_404_405), cmocka_unit_test(test_head_bound),
      cmocka_unit_test(test_byte_at_a_time),   cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_slow_clients),     cmocka_unit_test(test_connection_bound),
      cmocka_unit_test(test_garbage),          cmocka_unit_test(test_callers_loop),
      cmocka_unit_test(test_addresses),        cmocka_unit_test(test_bind_in_use),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
