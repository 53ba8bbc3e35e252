/* zap.c: the broker's gatekeeper thread: a ZAP 1.0 handler (RFC 27) over the allowlist, and a
 * watcher of the broker sockets' handshakes (zmq_socket_monitor) that reports peers refused
 * before ZAP is ever asked, such as plaintext clients of a CURVE server. */
#include "zap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common.h"
#include "curve.h"
#include "log.h"
#include "transport.h"

/* ---- allowlist ------------------------------------------------------------------------- */

typedef struct {
  uint8_t key[FRL_CURVE_KEY_BYTES];
  char name[FRL_CURVE_NAME_MAX + 1];
  int line;
} allow_entry_t;

struct frl_allowlist {
  allow_entry_t *entries; /* sorted by key */
  size_t n;
};

static int cmp_entry(const void *a, const void *b) {
  return memcmp(((const allow_entry_t *)a)->key, ((const allow_entry_t *)b)->key,
                FRL_CURVE_KEY_BYTES);
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

/* Parses one non-comment line (no newline) into e. */
static int parse_line(const char *s, size_t len, const char *source, int line, allow_entry_t *e,
                      char *err, size_t err_len) {
  const char *field[3];
  size_t flen[3], nf = 0;
  for (size_t i = 0; i < len;) {
    while (i < len && is_blank(s[i])) i++;
    if (i == len) break;
    size_t start = i;
    while (i < len && !is_blank(s[i])) i++;
    if (nf < 3) {
      field[nf] = s + start;
      flen[nf] = i - start;
    }
    nf++;
  }
  if (nf != 2) {
    frl_errf(0, err, err_len, "%s:%d: expected 'NAME Z85PUBKEY', found %zu field%s", source, line,
             nf, nf == 1 ? "" : "s");
    return FRL_EUSAGE;
  }
  char name[FRL_CURVE_NAME_MAX + 2];
  if (flen[0] > FRL_CURVE_NAME_MAX) {
    frl_errf(0, err, err_len, "%s:%d: name is %zu characters, the limit is %d", source, line,
             flen[0], FRL_CURVE_NAME_MAX);
    return FRL_EUSAGE;
  }
  memcpy(name, field[0], flen[0]);
  name[flen[0]] = '\0';
  if (!frl_curve_name_valid(name)) {
    frl_errf(0, err, err_len,
             "%s:%d: name '%s' must be characters of A-Z a-z 0-9 . _ @ - (not "
             "starting with '.')",
             source, line, name);
    return FRL_EUSAGE;
  }
  char why[160];
  if (frl_curve_z85_decode(field[1], flen[1], e->key, why, sizeof why) != 0) {
    frl_errf(0, err, err_len, "%s:%d: public key of '%s': %s", source, line, name, why);
    return FRL_EUSAGE;
  }
  memcpy(e->name, name, flen[0] + 1);
  e->line = line;
  return 0;
}

int frl_allowlist_parse(const char *text, size_t len, const char *source, frl_allowlist_t **out,
                        char *err, size_t err_len) {
  if (len > FRL_ALLOWLIST_MAX_BYTES) {
    frl_errf(0, err, err_len, "%s is %zu bytes, the limit is %u", source, len,
             FRL_ALLOWLIST_MAX_BYTES);
    return FRL_EUSAGE;
  }
  frl_allowlist_t *list = frl_xcalloc(1, sizeof *list);
  size_t cap = 0;
  int rc = 0, line = 0;
  for (size_t pos = 0; pos < len;) {
    const char *s = text + pos;
    const char *nl = memchr(s, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - s) : len - pos;
    pos += n + (nl ? 1 : 0);
    line++;
    if (n > 0 && s[n - 1] == '\r') n--;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)s[i];
      if ((c < ' ' && c != '\t') || c > '~') {
        frl_errf(0, err, err_len, "%s:%d: byte 0x%02x at column %zu is not printable ASCII", source,
                 line, c, i + 1);
        rc = FRL_EUSAGE;
        goto fail;
      }
    }
    size_t i = 0;
    while (i < n && is_blank(s[i])) i++;
    if (i == n || s[i] == '#') continue;
    if (list->n == FRL_ALLOWLIST_MAX) {
      frl_errf(0, err, err_len, "%s:%d: more than %d entries", source, line, FRL_ALLOWLIST_MAX);
      rc = FRL_EUSAGE;
      goto fail;
    }
    if (list->n == cap) {
      cap = cap ? 2 * cap : 16;
      list->entries = frl_xrealloc(list->entries, cap * sizeof *list->entries);
    }
    rc = parse_line(s, n, source, line, &list->entries[list->n], err, err_len);
    if (rc) goto fail;
    list->n++;
  }
  if (list->n > 1) qsort(list->entries, list->n, sizeof *list->entries, cmp_entry);
  for (size_t i = 1; i < list->n; i++) {
    const allow_entry_t *a = &list->entries[i - 1], *b = &list->entries[i];
    if (cmp_entry(a, b) == 0) {
      const allow_entry_t *first = a->line < b->line ? a : b, *second = a->line < b->line ? b : a;
      frl_errf(0, err, err_len, "%s:%d: the key of '%s' is already listed at line %d (for '%s')",
               source, second->line, second->name, first->line, first->name);
      rc = FRL_EUSAGE;
      goto fail;
    }
  }
  *out = list;
  return 0;
fail:
  frl_allowlist_destroy(&list);
  return rc;
}

int frl_allowlist_load(const char *path, frl_allowlist_t **out, char *err, size_t err_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    frl_errf(0, err, err_len, "cannot open %s: %s", path, strerror(e));
    return -e;
  }
  char *buf = NULL;
  int rc = 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    frl_errf(0, err, err_len, "%s is not a regular file", path);
    rc = FRL_EUSAGE;
    goto done;
  }
  if ((uint64_t)st.st_size > FRL_ALLOWLIST_MAX_BYTES) {
    frl_errf(0, err, err_len, "%s is %lld bytes, the limit is %u", path, (long long)st.st_size,
             FRL_ALLOWLIST_MAX_BYTES);
    rc = FRL_EUSAGE;
    goto done;
  }
  /* Read one byte past the size seen, so a file that grew meanwhile is caught. */
  size_t cap = (size_t)st.st_size + 1, n = 0;
  buf = frl_xmalloc(cap);
  for (;;) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = -errno;
      frl_errf(0, err, err_len, "cannot read %s: %s", path, strerror(errno));
      goto done;
    }
    if (r == 0) break;
    n += (size_t)r;
    if (n == cap) {
      frl_errf(0, err, err_len, "%s changed while it was read; try again", path);
      rc = FRL_EUSAGE;
      goto done;
    }
  }
  rc = frl_allowlist_parse(buf, n, path, out, err, err_len);
done:
  free(buf);
  close(fd);
  return rc;
}

const char *frl_allowlist_lookup(const frl_allowlist_t *list, const uint8_t key[32]) {
  if (!list || list->n == 0) return NULL;
  allow_entry_t probe = {.line = 0};
  memcpy(probe.key, key, FRL_CURVE_KEY_BYTES);
  const allow_entry_t *e = bsearch(&probe, list->entries, list->n, sizeof *e, cmp_entry);
  return e ? e->name : NULL;
}

size_t frl_allowlist_count(const frl_allowlist_t *list) { return list ? list->n : 0; }

void frl_allowlist_destroy(frl_allowlist_t **list_p) {
  if (!list_p || !*list_p) return;
  free((*list_p)->entries);
  free(*list_p);
  *list_p = NULL;
}

/* ---- the handler thread --------------------------------------------------------------- */

#define LOG_SLOTS 64           /* distinct refused peers whose log lines are rate-limited */
#define LOG_LINES_PER_WINDOW 20 /* refusal lines in one FRL_ZAP_LOG_EVERY_S, all peers */
#define FD_SLOTS 256           /* accepted connections whose peer address is remembered */
#define ZAP_FRAMES_MAX 8       /* ZAP 1.0 requests have 6 (NULL), 7 (CURVE) or 8 (PLAIN) */
#define STOP_DRAIN_S 5.0       /* longest wait for the watched sockets' monitors to stop */
#define HUNG_UP 0u             /* pending failure: the peer left mid-handshake (no ZMTP code) */

typedef struct {
  uint64_t hash;
  double logged_at;
  uint64_t suppressed;
} log_slot_t;

typedef struct {
  int fd;
  char addr[64]; /* ip:port, for the log */
  char ip[48];   /* for rate-limiting the log: a reconnecting peer changes port */
} fd_slot_t;

typedef struct {
  void *pair;             /* receives the watched socket's monitor events */
  void *sock;             /* the watched socket (owned by the broker's thread) */
  char label[32];
  uint32_t pending[8];    /* protocol errors waiting for their DISCONNECTED(fd), a FIFO */
  int n_pending;
  bool stopped;           /* MONITOR_STOPPED seen */
  fd_slot_t fds[FD_SLOTS];
} watch_t;

struct frl_zap {
  void *ctx, *rep;
  char path[512];
  frl_allowlist_t *list;
  watch_t watch[FRL_ZAP_MAX_WATCH];
  int n_watch;
  pthread_t thread;
  bool running;
  struct sigaction old_hup;
  atomic_bool stop;
  atomic_bool reload;
  atomic_uint_fast64_t admitted, refused_key, refused_role, refused_mechanism,
      refused_malformed, refused_plaintext, refused_protocol, reloads;
  log_slot_t log[LOG_SLOTS];
  double window_start;
  int window_lines;
  uint64_t window_suppressed;
};

static volatile sig_atomic_t g_hup;
static void on_hup(int sig) { g_hup = sig; }

/* Closes a logging window: says how many refusals went unlogged for the global budget. */
static void roll_window(frl_zap_t *z, double now) {
  if (now - z->window_start < FRL_ZAP_LOG_EVERY_S) return;
  if (z->window_suppressed)
    frl_warn("%llu further handshake refusals in the last %.0f s were not logged",
             (unsigned long long)z->window_suppressed, now - z->window_start);
  z->window_start = now;
  z->window_lines = 0;
  z->window_suppressed = 0;
}

/* Decides whether a refusal identified by `what` is logged now: at most once per
 * FRL_ZAP_LOG_EVERY_S per `what`, and LOG_LINES_PER_WINDOW lines in all. When it is, *suppressed
 * is how many refusals of the same `what` were not logged since its last line. */
static bool should_log(frl_zap_t *z, const char *what, double now, uint64_t *suppressed) {
  roll_window(z, now);
  uint64_t h = frl_fnv1a64(what, strlen(what), FRL_FNV_SEED);
  log_slot_t *slot = NULL, *oldest = &z->log[0];
  for (int i = 0; i < LOG_SLOTS; i++) {
    if (z->log[i].hash == h) slot = &z->log[i];
    if (z->log[i].logged_at < oldest->logged_at) oldest = &z->log[i];
  }
  if (slot && now - slot->logged_at < FRL_ZAP_LOG_EVERY_S) {
    slot->suppressed++;
    return false;
  }
  if (z->window_lines >= LOG_LINES_PER_WINDOW) {
    z->window_suppressed++;
    if (slot) slot->suppressed++;
    return false;
  }
  if (!slot) {
    slot = oldest;
    slot->hash = h;
    slot->suppressed = 0;
  }
  *suppressed = slot->suppressed;
  slot->suppressed = 0;
  slot->logged_at = now;
  z->window_lines++;
  return true;
}

/* Copies a peer-supplied frame as printable text for the log (at most 64 characters). */
static void printable(const zmq_msg_t *m, char *out, size_t n) {
  const unsigned char *p = zmq_msg_data((zmq_msg_t *)m);
  size_t len = zmq_msg_size((zmq_msg_t *)m), j = 0;
  for (size_t i = 0; i < len && i < 64 && j + 1 < n; i++)
    out[j++] = p[i] >= ' ' && p[i] <= '~' ? (char)p[i] : '?';
  out[j] = '\0';
}

/* " (N similar refusals not logged)" when N > 0, else "". */
static const char *unlogged(uint64_t n, char *buf, size_t len) {
  if (n == 0) return "";
  snprintf(buf, len, " (%llu similar refusals since the last line were not logged)",
           (unsigned long long)n);
  return buf;
}

static bool frame_is(const zmq_msg_t *m, const char *s) {
  size_t n = strlen(s);
  return zmq_msg_size((zmq_msg_t *)m) == n && memcmp(zmq_msg_data((zmq_msg_t *)m), s, n) == 0;
}

/* Sends one reply frame; more is false on the last. */
static void send_frame(void *sock, const void *data, size_t len, bool more) {
  zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0);
}

static void send_reply(void *rep, const zmq_msg_t *request_id, const char *code,
                       const char *text, const char *user_id) {
  send_frame(rep, "1.0", 3, true);
  if (request_id) send_frame(rep, zmq_msg_data((zmq_msg_t *)request_id),
                             zmq_msg_size((zmq_msg_t *)request_id), true);
  else send_frame(rep, "", 0, true);
  send_frame(rep, code, strlen(code), true);
  send_frame(rep, text, strlen(text), true);
  send_frame(rep, user_id, strlen(user_id), true);
  send_frame(rep, "", 0, false); /* no metadata */
}

/* Answers one ZAP request waiting on the REP socket (RFC 27: version, request id, domain,
 * address, routing id, mechanism, credentials...). */
static void handle_request(frl_zap_t *z) {
  zmq_msg_t f[ZAP_FRAMES_MAX];
  int n = 0;
  bool more = true, overflow = false;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, z->rep, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      break;
    }
    more = zmq_msg_more(&m);
    if (n < ZAP_FRAMES_MAX) f[n++] = m;
    else {
      overflow = true;
      zmq_msg_close(&m);
    }
  }
  if (n == 0) return; /* nothing was there: REP expects no reply */
  double now = frl_now();
  uint64_t suppressed = 0;
  char what[200], note[100];
  if (overflow || n < 6 || !frame_is(&f[0], "1.0")) {
    atomic_fetch_add(&z->refused_malformed, 1);
    send_reply(z->rep, n > 1 ? &f[1] : NULL, "500", "malformed ZAP request", "");
    if (should_log(z, "malformed", now, &suppressed))
      frl_warn("refused a malformed ZAP request (%d frames)", n);
    goto done;
  }
  char addr[80], mech[80];
  printable(&f[3], addr, sizeof addr);
  printable(&f[5], mech, sizeof mech);
  if (!frame_is(&f[5], "CURVE") || n != 7 || zmq_msg_size(&f[6]) != FRL_CURVE_KEY_BYTES) {
    atomic_fetch_add(&z->refused_mechanism, 1);
    send_reply(z->rep, &f[1], "400", "only CURVE clients on the allowlist are admitted", "");
    snprintf(what, sizeof what, "mech %s %s", mech, addr);
    if (should_log(z, what, now, &suppressed))
      frl_warn("refused a %s handshake from %s: only CURVE is admitted%s", mech, addr,
               unlogged(suppressed, note, sizeof note));
    goto done;
  }
  const uint8_t *key = zmq_msg_data(&f[6]);
  const char *name = frl_allowlist_lookup(z->list, key);
  char z85[FRL_CURVE_Z85_LEN + 1];
  frl_curve_z85_encode(key, z85);
  if (!name) {
    atomic_fetch_add(&z->refused_key, 1);
    send_reply(z->rep, &f[1], "400", "public key not on the broker's allowlist", "");
    snprintf(what, sizeof what, "key %s %s", z85, addr);
    if (should_log(z, what, now, &suppressed))
      frl_warn("refused CURVE key %s from %s: not on the allowlist %s%s", z85, addr, z->path,
               unlogged(suppressed, note, sizeof note));
    goto done;
  }
  if (frame_is(&f[2], FRL_ZAP_DOMAIN_LEARNER) && strcmp(name, FRL_ZAP_LEARNER_NAME) != 0) {
    atomic_fetch_add(&z->refused_role, 1);
    send_reply(z->rep, &f[1], "400", "only the learner's key may use the learner endpoint", "");
    snprintf(what, sizeof what, "role %s %s", z85, addr);
    if (should_log(z, what, now, &suppressed))
      frl_warn("refused CURVE key %s ('%s') from %s on the learner endpoint: only the key "
               "listed as '%s' may connect there%s", z85, name, addr, FRL_ZAP_LEARNER_NAME,
               unlogged(suppressed, note, sizeof note));
    goto done;
  }
  atomic_fetch_add(&z->admitted, 1);
  send_reply(z->rep, &f[1], "200", "OK", name);
  frl_debug("admitted %s (key %s) from %s", name, z85, addr);
done:
  for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

static fd_slot_t *fd_slot(watch_t *w, int fd) {
  return &w->fds[(unsigned)fd % FD_SLOTS];
}

/* The peer address of an accepted connection. Read as soon as the event arrives: the socket
 * is libzmq's, and a connection that fails at once may already be closed (then "unknown"). */
static void remember_peer(watch_t *w, int fd) {
  fd_slot_t *s = fd_slot(w, fd);
  s->fd = fd;
  snprintf(s->addr, sizeof s->addr, "an unknown address");
  s->ip[0] = '\0';
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) return;
  char ip[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    snprintf(s->addr, sizeof s->addr, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    snprintf(s->ip, sizeof s->ip, "%s", ip);
  } else if (ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    snprintf(s->addr, sizeof s->addr, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    snprintf(s->ip, sizeof s->ip, "%s", ip);
  }
}

/* Handles one monitor event of a watched socket (libzmq 4.x layout: a 6-byte frame with the
 * event number and value, then the endpoint). */
static void handle_event(frl_zap_t *z, watch_t *w) {
  zmq_msg_t head, ep;
  zmq_msg_init(&head);
  zmq_msg_init(&ep);
  if (zmq_msg_recv(&head, w->pair, ZMQ_DONTWAIT) < 0) goto done;
  if (!zmq_msg_more(&head) || zmq_msg_recv(&ep, w->pair, ZMQ_DONTWAIT) < 0 ||
      zmq_msg_size(&head) != 6)
    goto done;
  uint16_t event;
  uint32_t value;
  memcpy(&event, zmq_msg_data(&head), 2);
  memcpy(&value, (const uint8_t *)zmq_msg_data(&head) + 2, 4);
  double now = frl_now();
  uint64_t suppressed = 0;
  char what[160], note[100];
  frl_debug("%s endpoint: handshake event 0x%x value 0x%x", w->label, (unsigned)event,
            (unsigned)value);
  switch (event) {
  case ZMQ_EVENT_ACCEPTED:
    remember_peer(w, (int)value);
    break;
  case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
  case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
    /* libzmq reports the failure, then closes that connection (DISCONNECTED with its fd),
     * which is when the failure and the address are put together. A peer that leaves in the
     * middle of the handshake (NO_DETAIL) is most often a plaintext client that saw the
     * mechanism mismatch before the broker did. */
    if (w->n_pending < (int)FRL_ARRAY_LEN(w->pending))
      w->pending[w->n_pending++] = event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ? HUNG_UP : value;
    break;
  case ZMQ_EVENT_DISCONNECTED: {
    fd_slot_t *s = fd_slot(w, (int)value);
    bool known = s->fd == (int)value;
    const char *addr = known ? s->addr : "an unknown address", *ip = known ? s->ip : "";
    if (w->n_pending > 0) {
      uint32_t code = w->pending[0];
      memmove(w->pending, w->pending + 1, (size_t)(--w->n_pending) * sizeof w->pending[0]);
      bool plaintext = code == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH || code == HUNG_UP;
      atomic_fetch_add(plaintext ? &z->refused_plaintext : &z->refused_protocol, 1);
      snprintf(what, sizeof what, "handshake %s %s %u", w->label, ip, code);
      if (should_log(z, what, now, &suppressed)) {
        if (code == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
          frl_warn("refused a plaintext (non-CURVE) peer at %s on the %s endpoint: this "
                   "broker admits only CURVE clients on its allowlist%s", addr, w->label,
                   unlogged(suppressed, note, sizeof note));
        else if (code == HUNG_UP)
          frl_warn("refused a peer at %s on the %s endpoint: it left during the CURVE "
                   "handshake (a plaintext client, or not a ZeroMQ peer)%s", addr, w->label,
                   unlogged(suppressed, note, sizeof note));
        else if (code == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
          frl_warn("refused a CURVE peer at %s on the %s endpoint: its handshake does not "
                   "decrypt (is its --broker-key this broker's public key?)%s", addr, w->label,
                   unlogged(suppressed, note, sizeof note));
        else
          frl_warn("refused a peer at %s on the %s endpoint: ZMTP protocol error 0x%x%s", addr,
                   w->label, code, unlogged(suppressed, note, sizeof note));
      }
    }
    if (known) s->fd = -1;
    break;
  }
  case ZMQ_EVENT_MONITOR_STOPPED:
    w->stopped = true;
    break;
  default:
    break;
  }
done:
  zmq_msg_close(&head);
  zmq_msg_close(&ep);
}

static void reload(frl_zap_t *z) {
  frl_allowlist_t *list = NULL;
  char err[400];
  atomic_fetch_add(&z->reloads, 1);
  if (frl_allowlist_load(z->path, &list, err, sizeof err) != 0) {
    frl_error("allowlist reload failed, keeping the previous %zu keys: %s",
              frl_allowlist_count(z->list), err);
    return;
  }
  frl_allowlist_destroy(&z->list);
  z->list = list;
  frl_info("allowlist reloaded from %s: %zu keys (new connections only)", z->path,
           frl_allowlist_count(list));
}

static bool all_stopped(const frl_zap_t *z) {
  for (int i = 0; i < z->n_watch; i++)
    if (!z->watch[i].stopped) return false;
  return true;
}

static void *zap_thread(void *arg) {
  frl_zap_t *z = arg;
  double stop_deadline = 0;
  for (;;) {
    if (atomic_load(&z->stop)) {
      /* Keep answering and draining until every watched socket's monitor has stopped: a
       * monitor whose reader is gone blocks libzmq's I/O thread on its next event. */
      if (stop_deadline == 0) stop_deadline = frl_now() + STOP_DRAIN_S;
      if (all_stopped(z)) break;
      if (frl_now() > stop_deadline) {
        frl_warn("the broker sockets' monitors did not stop within %.0f s", STOP_DRAIN_S);
        break;
      }
    }
    if (g_hup) {
      g_hup = 0;
      atomic_store(&z->reload, true);
    }
    if (atomic_exchange(&z->reload, false)) reload(z);
    zmq_pollitem_t items[1 + FRL_ZAP_MAX_WATCH];
    items[0] = (zmq_pollitem_t){z->rep, 0, ZMQ_POLLIN, 0};
    for (int i = 0; i < z->n_watch; i++)
      items[1 + i] = (zmq_pollitem_t){z->watch[i].pair, 0, ZMQ_POLLIN, 0};
    int rc = zmq_poll(items, 1 + z->n_watch, 100);
    if (rc < 0) {
      if (zmq_errno() == EINTR) continue;
      if (zmq_errno() == ETERM) break;
      frl_error("ZAP handler poll failed: %s", zmq_strerror(zmq_errno()));
      break;
    }
    roll_window(z, frl_now());
    if (items[0].revents & ZMQ_POLLIN) handle_request(z);
    for (int i = 0; i < z->n_watch; i++)
      if (items[1 + i].revents & ZMQ_POLLIN) handle_event(z, &z->watch[i]);
  }
  return NULL;
}

int frl_zap_new(void *ctx, const char *allow_path, frl_zap_t **out, char *err, size_t err_len) {
  if (!ctx || !allow_path || !out) return FRL_EUSAGE;
  frl_zap_t *z = frl_xcalloc(1, sizeof *z);
  int rc = 0;
  z->ctx = ctx;
  if ((size_t)snprintf(z->path, sizeof z->path, "%s", allow_path) >= sizeof z->path) {
    frl_errf(0, err, err_len, "--allow: the path is longer than %zu characters",
             sizeof z->path - 1);
    rc = FRL_EUSAGE;
    goto fail;
  }
  rc = frl_allowlist_load(allow_path, &z->list, err, err_len);
  if (rc) goto fail;
  z->rep = zmq_socket(ctx, ZMQ_REP);
  if (!z->rep) {
    rc = -zmq_errno();
    frl_errf(0, err, err_len, "cannot create the ZAP socket: %s", zmq_strerror(-rc));
    goto fail;
  }
  int zero = 0;
  zmq_setsockopt(z->rep, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_bind(z->rep, FRL_ZAP_ENDPOINT) != 0) {
    rc = -zmq_errno();
    frl_errf(0, err, err_len, "cannot bind %s: %s (another ZAP handler in this context?)",
             FRL_ZAP_ENDPOINT, zmq_strerror(-rc));
    goto fail;
  }
  for (int i = 0; i < FRL_ZAP_MAX_WATCH; i++)
    for (int j = 0; j < FD_SLOTS; j++) z->watch[i].fds[j].fd = -1;
  frl_transport_set_zap_context(ctx);
  *out = z;
  return 0;
fail:
  if (z->rep) zmq_close(z->rep);
  frl_allowlist_destroy(&z->list);
  free(z);
  return rc;
}

int frl_zap_start(frl_zap_t *z, void *const *watch, const char *const *labels, int n_watch) {
  if (!z || z->running || n_watch < 0 || n_watch > FRL_ZAP_MAX_WATCH) return FRL_EUSAGE;
  int rc = 0;
  for (int i = 0; i < n_watch; i++) {
    watch_t *w = &z->watch[i];
    char ep[96];
    snprintf(ep, sizeof ep, "inproc://fleetrl-zap-watch-%p-%d", (void *)z, i);
    int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_MONITOR_STOPPED;
    /* Connect the reader first: libzmq's monitor blocks on an event nobody can receive. */
    w->pair = zmq_socket(z->ctx, ZMQ_PAIR);
    if (!w->pair || zmq_connect(w->pair, ep) != 0 ||
        zmq_socket_monitor(watch[i], ep, events) != 0) {
      rc = -zmq_errno();
      frl_error("cannot watch the %s socket's handshakes: %s", labels[i], zmq_strerror(-rc));
      if (w->pair) zmq_close(w->pair);
      w->pair = NULL;
      goto fail;
    }
    int zero = 0;
    zmq_setsockopt(w->pair, ZMQ_LINGER, &zero, sizeof zero);
    w->sock = watch[i];
    snprintf(w->label, sizeof w->label, "%s", labels[i]);
    z->n_watch = i + 1;
  }
  struct sigaction sa = {.sa_handler = on_hup};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGHUP, &sa, &z->old_hup);
  rc = -pthread_create(&z->thread, NULL, zap_thread, z);
  if (rc) goto fail;
  z->running = true;
  frl_info("CURVE: admitting the %zu keys listed in %s (SIGHUP rereads it)",
           frl_allowlist_count(z->list), z->path);
  return 0;
fail:
  for (int i = 0; i < z->n_watch; i++) {
    zmq_socket_monitor(z->watch[i].sock, NULL, 0);
    zmq_close(z->watch[i].pair);
    z->watch[i].pair = NULL;
  }
  z->n_watch = 0;
  return rc;
}

void frl_zap_reload(frl_zap_t *z) { atomic_store(&z->reload, true); }

void frl_zap_stats(const frl_zap_t *self, frl_zap_stats_t *out) {
  frl_zap_t *z = (frl_zap_t *)self; /* atomic loads take non-const pointers */
  out->admitted = atomic_load(&z->admitted);
  out->refused_key = atomic_load(&z->refused_key);
  out->refused_role = atomic_load(&z->refused_role);
  out->refused_mechanism = atomic_load(&z->refused_mechanism);
  out->refused_malformed = atomic_load(&z->refused_malformed);
  out->refused_plaintext = atomic_load(&z->refused_plaintext);
  out->refused_protocol = atomic_load(&z->refused_protocol);
  out->reloads = atomic_load(&z->reloads);
}

void frl_zap_destroy(frl_zap_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_zap_t *z = *self_p;
  if (z->running) {
    atomic_store(&z->stop, true);
    pthread_join(z->thread, NULL);
    sigaction(SIGHUP, &z->old_hup, NULL);
  }
  for (int i = 0; i < z->n_watch; i++)
    if (z->watch[i].pair) zmq_close(z->watch[i].pair);
  if (z->rep) zmq_close(z->rep);
  frl_transport_set_zap_context(NULL);
  frl_allowlist_destroy(&z->list);
  free(z);
  *self_p = NULL;
}
