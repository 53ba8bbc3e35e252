/* zap.h: who may talk to the broker. A ZAP 1.0 handler (ZeroMQ RFC 27) on
 * inproc://zeromq.zap.01 in the broker's context admits a CURVE client only when its public key
 * is on the allowlist, and names the connection after it (the User-Id every message from it
 * carries); everything else is answered 400 and logged with the key and the peer's address.
 * The same thread watches the broker's sockets for peers that do not speak CURVE at all
 * (plaintext), which libzmq refuses before any ZAP request, and logs them too. Repeated
 * refusals of one peer are logged at most once per FRL_ZAP_LOG_EVERY_S.
 *
 * On the learner endpoint (ZAP domain FRL_ZAP_DOMAIN_LEARNER) only the key listed under the
 * name FRL_ZAP_LEARNER_NAME is admitted, so that no robot's key can pose as the learner (which
 * receives all experience and sends the parameters every robot acts with).
 *
 * Allowlist file: one peer per line, "NAME Z85PUBKEY" (NAME as in frl_curve_name_valid, the
 * key as in NAME.pub), blank lines and lines starting with '#' ignored. It is read as untrusted
 * input: errors name the file and line. SIGHUP rereads it; a file that fails to parse leaves
 * the previous list in force. A key taken off the list is refused at its next connection;
 * connections already admitted stay up. */
#ifndef FRL_ZAP_H
#define FRL_ZAP_H

#include <stddef.h>
#include <stdint.h>

#define FRL_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define FRL_ALLOWLIST_MAX 100000     /* entries in one allowlist */
#define FRL_ALLOWLIST_MAX_BYTES (8u << 20)
#define FRL_ZAP_LOG_EVERY_S 10.0
#define FRL_ZAP_MAX_WATCH 4          /* sockets whose handshakes are watched */
#define FRL_ZAP_LEARNER_NAME "learner" /* the one allowlist name the learner endpoint admits */

typedef struct frl_allowlist frl_allowlist_t;

/* Parses allowlist text (len bytes; `source` names it in messages). Returns 0 with *out owned
 * by the caller, or FRL_EUSAGE with "source:line: reason" in err. */
int frl_allowlist_parse(const char *text, size_t len, const char *source, frl_allowlist_t **out,
                        char *err, size_t err_len);
/* Reads and parses the file at path (at most FRL_ALLOWLIST_MAX_BYTES). */
int frl_allowlist_load(const char *path, frl_allowlist_t **out, char *err, size_t err_len);
/* The name listed for a 32-byte public key, or NULL. The string lives as long as the list. */
const char *frl_allowlist_lookup(const frl_allowlist_t *list, const uint8_t key[32]);
size_t frl_allowlist_count(const frl_allowlist_t *list);
void frl_allowlist_destroy(frl_allowlist_t **list_p);

typedef struct frl_zap frl_zap_t;

/* Loads the allowlist at allow_path and binds the ZAP endpoint in ctx, so that from now on
 * every CURVE handshake in ctx waits for this handler (requests queue until frl_zap_start).
 * Call it before binding any CURVE socket. Returns 0 with *out, or FRL_EUSAGE (allowlist
 * error, message in err) or -errno (bind failed: another handler in this context). */
int frl_zap_new(void *ctx, const char *allow_path, frl_zap_t **out, char *err, size_t err_len);
/* Starts the handler thread, watching up to FRL_ZAP_MAX_WATCH sockets (named by label in the
 * log) for refused plaintext handshakes; the sockets must belong to the calling thread and
 * stay open until frl_zap_destroy. Installs a SIGHUP handler that asks for a reload. Returns 0
 * or -errno. */
int frl_zap_start(frl_zap_t *self, void *const *watch, const char *const *labels, int n_watch);
/* Asks the handler thread to reread the allowlist (what SIGHUP does). Thread-safe. */
void frl_zap_reload(frl_zap_t *self);
/* What the handler has done so far. */
typedef struct {
  uint64_t admitted;          /* CURVE keys on the allowlist */
  uint64_t refused_key;       /* CURVE keys not on it */
  uint64_t refused_role;      /* listed keys other than the learner's on the learner endpoint */
  uint64_t refused_mechanism; /* ZAP requests for another mechanism (NULL, PLAIN) */
  uint64_t refused_malformed; /* ZAP requests that break RFC 27 */
  uint64_t refused_plaintext; /* watched peers that do not speak CURVE (a mechanism
                                 mismatch, or leaving in the middle of the handshake) */
  uint64_t refused_protocol;  /* watched handshakes that failed otherwise (e.g. a wrong
                                 --broker-key: the client's handshake does not decrypt) */
  uint64_t reloads;           /* allowlist rereads, successful or not */
} frl_zap_stats_t;

/* A snapshot of the counters. Thread-safe. */
void frl_zap_stats(const frl_zap_t *self, frl_zap_stats_t *out);
/* Stops the thread, closes its sockets and frees everything; *self_p becomes NULL. Call it
 * after closing the watched sockets and before zmq_ctx_term. NULL is fine. */
void frl_zap_destroy(frl_zap_t **self_p);

#endif
