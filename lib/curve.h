/* curve.h: CURVE key material for ZeroMQ's encrypted, authenticated transport (RFC 26,
 * CurveZMQ): Z85 text (RFC 32), the key files written by `fleetrl keygen`, and turning a
 * process's --curve-secret / --broker-key flags into the transport's security setting.
 *
 * Key files are read as untrusted input: exact lengths, the Z85 alphabet, and errors that name
 * the file and what was wrong. A public key file (NAME.pub) holds 40 Z85 characters and a
 * newline; a secret key file (NAME.key, mode 0600) holds the line FRL_CURVE_SECRET_HEADER and
 * then the 40-character secret key, so that the two can never be swapped by mistake. */
#ifndef FRL_CURVE_H
#define FRL_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

#define FRL_CURVE_KEY_BYTES 32 /* a Curve25519 key */
#define FRL_CURVE_Z85_LEN 40   /* its Z85 text, without terminator */
#define FRL_CURVE_NAME_MAX 64  /* key (peer) names: 1-64 of [A-Za-z0-9._@-] */
#define FRL_CURVE_SECRET_HEADER "# fleetrl CURVE secret key: keep it private"

/* Decodes exactly `len` characters of Z85 text into a 32-byte key. Accepts only len == 40,
 * characters of the Z85 alphabet, and groups whose value fits 32 bits. Returns 0, or
 * FRL_EUSAGE with the reason (position and character) in err; key is written only on success. */
int frl_curve_z85_decode(const char *text, size_t len, uint8_t key[FRL_CURVE_KEY_BYTES],
                         char *err, size_t err_len);
/* Encodes a 32-byte key as 40 Z85 characters plus a terminating NUL in out[41]. */
void frl_curve_z85_encode(const uint8_t key[FRL_CURVE_KEY_BYTES], char out[FRL_CURVE_Z85_LEN + 1]);

/* True when name is 1-64 characters of [A-Za-z0-9._@-] and does not start with '.'; names
 * become file names (keygen) and the broker's User-Id for a peer (allowlist). */
bool frl_curve_name_valid(const char *name);

/* Reads a public key file (NAME.pub). Returns 0 with the key, or FRL_EUSAGE / -errno with a
 * message naming the file in err. */
int frl_curve_load_public(const char *path, uint8_t key[FRL_CURVE_KEY_BYTES], char *err,
                          size_t err_len);
/* Reads a secret key file (NAME.key) and derives its public key (zmq_curve_public). Warns in
 * the log when the file is readable by group or others. Returns 0, or FRL_EUSAGE / -errno with
 * a message naming the file in err; the outputs are written only on success. */
int frl_curve_load_secret(const char *path, uint8_t secret[FRL_CURVE_KEY_BYTES],
                          uint8_t public_key[FRL_CURVE_KEY_BYTES], char *err, size_t err_len);

/* Generates a key pair (zmq_curve_keypair) and writes DIR/NAME.key (mode 0600) and
 * DIR/NAME.pub (mode 0644), creating DIR if needed. Refuses to overwrite either file: on any
 * error nothing new is left behind. On success the public key's Z85 text is in pub_z85.
 * Returns 0, or FRL_EUSAGE / -errno with the reason in err. */
int frl_curve_keygen(const char *dir, const char *name, char pub_z85[FRL_CURVE_Z85_LEN + 1],
                     char *err, size_t err_len);

/* Configures this process's transport security from cfg->curve_secret, cfg->broker_key and
 * cfg->allow. With no --curve-secret the transport stays plaintext (and --broker-key or
 * --allow alone are refused). `server` is true for the broker, which then needs --allow; the
 * other roles need --broker-key. Every later frl_socket_dealer/frl_socket_router uses the
 * setting. Returns 0, or FRL_EUSAGE with one line naming the flag and file printed to err. */
int frl_curve_setup(const frl_config_t *cfg, bool server, FILE *err);

/* `fleetrl keygen NAME [--out DIR]` (cli/keygen.c). Returns a process exit code. */
int frl_keygen_main(int argc, char **argv, FILE *out, FILE *err);

#endif
