/* curve.c: CURVE keys as text and files, key generation, and the process's transport security
 * from its flags. Z85 is ZeroMQ's RFC 32 encoding: 4 bytes, read big-endian, become 5 digits
 * in base 85 over a fixed alphabet, so a 32-byte key is 40 printable characters. */
#include "curve.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common.h"
#include "log.h"
#include "transport.h"

/* Key files are tiny; anything larger is not a key file and is refused unread. */
#define KEY_FILE_MAX 256

static const char k_z85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

static int z85_digit(char c) {
  const char *p = c ? strchr(k_z85, c) : NULL;
  return p ? (int)(p - k_z85) : -1;
}

int frl_curve_z85_decode(const char *text, size_t len, uint8_t key[FRL_CURVE_KEY_BYTES],
                         char *err, size_t err_len) {
  if (len != FRL_CURVE_Z85_LEN) {
    frl_errf(0, err, err_len, "a key is %d Z85 characters, found %zu", FRL_CURVE_Z85_LEN, len);
    return FRL_EUSAGE;
  }
  uint8_t out[FRL_CURVE_KEY_BYTES];
  for (size_t g = 0; g < FRL_CURVE_Z85_LEN / 5; g++) {
    uint64_t v = 0;
    for (size_t i = 0; i < 5; i++) {
      char c = text[5 * g + i];
      int d = z85_digit(c);
      if (d < 0) {
        if (c > ' ' && c <= '~')
          frl_errf(0, err, err_len, "character '%c' at position %zu is not in the Z85 alphabet", c,
                   5 * g + i + 1);
        else
          frl_errf(0, err, err_len, "byte 0x%02x at position %zu is not a Z85 character",
                   (unsigned)(unsigned char)c, 5 * g + i + 1);
        return FRL_EUSAGE;
      }
      v = v * 85 + (uint64_t)d;
    }
    /* 85^5 exceeds 2^32: five digits can spell a value no 4 bytes encode. */
    if (v > 0xffffffffULL) {
      frl_errf(0, err, err_len, "characters %zu-%zu encode no 4-byte group (value above 2^32)",
               5 * g + 1, 5 * g + 5);
      return FRL_EUSAGE;
    }
    out[4 * g] = (uint8_t)(v >> 24);
    out[4 * g + 1] = (uint8_t)(v >> 16);
    out[4 * g + 2] = (uint8_t)(v >> 8);
    out[4 * g + 3] = (uint8_t)v;
  }
  memcpy(key, out, sizeof out);
  return 0;
}

void frl_curve_z85_encode(const uint8_t key[FRL_CURVE_KEY_BYTES], char out[FRL_CURVE_Z85_LEN + 1]) {
  for (size_t g = 0; g < FRL_CURVE_KEY_BYTES / 4; g++) {
    uint32_t v = (uint32_t)key[4 * g] << 24 | (uint32_t)key[4 * g + 1] << 16 |
                 (uint32_t)key[4 * g + 2] << 8 | (uint32_t)key[4 * g + 3];
    for (int i = 4; i >= 0; i--) {
      out[5 * g + (size_t)i] = k_z85[v % 85];
      v /= 85;
    }
  }
  out[FRL_CURVE_Z85_LEN] = '\0';
}

bool frl_curve_name_valid(const char *name) {
  if (!name || !*name || name[0] == '.') return false;
  size_t n = 0;
  for (const char *p = name; *p; p++, n++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == '@';
    if (!ok || n >= FRL_CURVE_NAME_MAX) return false;
  }
  return true;
}

/* Reads a whole small regular file into buf (not NUL-terminated). */
static int read_key_file(const char *path, char *buf, size_t cap, size_t *len, mode_t *mode,
                         char *err, size_t err_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    frl_errf(0, err, err_len, "cannot open %s: %s", path, strerror(e));
    return -e;
  }
  int rc = 0;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = -errno;
    frl_errf(0, err, err_len, "cannot stat %s: %s", path, strerror(-rc));
    goto fail;
  }
  if (!S_ISREG(st.st_mode)) {
    frl_errf(0, err, err_len, "%s is not a regular file", path);
    rc = FRL_EUSAGE;
    goto fail;
  }
  if ((uint64_t)st.st_size > cap) {
    frl_errf(0, err, err_len, "%s is %lld bytes; a key file is at most %zu", path,
             (long long)st.st_size, cap);
    rc = FRL_EUSAGE;
    goto fail;
  }
  size_t n = 0;
  while (n < cap) {
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      rc = -errno;
      frl_errf(0, err, err_len, "cannot read %s: %s", path, strerror(-rc));
      goto fail;
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  *len = n;
  if (mode) *mode = st.st_mode;
fail:
  close(fd);
  return rc;
}

/* Length of the key text in buf[0..len) once one trailing "\n" or "\r\n" is removed. */
static size_t strip_newline(const char *buf, size_t len) {
  if (len > 0 && buf[len - 1] == '\n') len--;
  if (len > 0 && buf[len - 1] == '\r') len--;
  return len;
}

int frl_curve_load_public(const char *path, uint8_t key[FRL_CURVE_KEY_BYTES], char *err,
                          size_t err_len) {
  char buf[KEY_FILE_MAX];
  size_t len = 0;
  int rc = read_key_file(path, buf, sizeof buf, &len, NULL, err, err_len);
  if (rc) return rc;
  const size_t hl = strlen(FRL_CURVE_SECRET_HEADER);
  if (len >= hl && memcmp(buf, FRL_CURVE_SECRET_HEADER, hl) == 0) {
    frl_errf(0, err, err_len, "%s is a secret key file; this needs a public key (NAME.pub)", path);
    rc = FRL_EUSAGE;
    goto done;
  }
  char why[160];
  rc = frl_curve_z85_decode(buf, strip_newline(buf, len), key, why, sizeof why);
  if (rc)
    frl_errf(0, err, err_len, "%s: not a public key file (40 Z85 characters and a newline): %s",
             path, why);
done:
  explicit_bzero(buf, sizeof buf);
  return rc;
}

int frl_curve_load_secret(const char *path, uint8_t secret[FRL_CURVE_KEY_BYTES],
                          uint8_t public_key[FRL_CURVE_KEY_BYTES], char *err, size_t err_len) {
  char buf[KEY_FILE_MAX], why[160];
  char secret_z85[FRL_CURVE_Z85_LEN + 1], public_z85[FRL_CURVE_Z85_LEN + 1];
  uint8_t sk[FRL_CURVE_KEY_BYTES], pk[FRL_CURVE_KEY_BYTES];
  size_t len = 0;
  mode_t mode = 0;
  int rc = read_key_file(path, buf, sizeof buf, &len, &mode, err, err_len);
  if (rc) return rc;
  const size_t hl = strlen(FRL_CURVE_SECRET_HEADER);
  if (len < hl + 1 || memcmp(buf, FRL_CURVE_SECRET_HEADER, hl) != 0 || buf[hl] != '\n') {
    if (strip_newline(buf, len) == FRL_CURVE_Z85_LEN)
      frl_errf(0, err, err_len,
               "%s looks like a public key file; this needs the secret key file "
               "(NAME.key, written by `fleetrl keygen`)",
               path);
    else
      frl_errf(0, err, err_len, "%s is not a secret key file: its first line must be '%s'", path,
               FRL_CURVE_SECRET_HEADER);
    rc = FRL_EUSAGE;
    goto done;
  }
  rc = frl_curve_z85_decode(buf + hl + 1, strip_newline(buf + hl + 1, len - hl - 1), sk, why,
                            sizeof why);
  if (rc) {
    frl_errf(0, err, err_len, "%s: the secret key (line 2) is not 40 Z85 characters: %s", path,
             why);
    goto done;
  }
  frl_curve_z85_encode(sk, secret_z85);
  if (zmq_curve_public(public_z85, secret_z85) != 0) {
    frl_errf(0, err, err_len, "%s: cannot derive the public key: %s (libzmq without CURVE?)", path,
             zmq_strerror(zmq_errno()));
    rc = FRL_EUSAGE;
    goto done;
  }
  rc = frl_curve_z85_decode(public_z85, strlen(public_z85), pk, why, sizeof why);
  if (rc) {
    frl_errf(0, err, err_len, "%s: libzmq returned a malformed public key: %s", path, why);
    goto done;
  }
  if (mode & 077)
    frl_warn("%s is readable by group or others (mode %04o); it holds a secret key: chmod 600 %s",
             path, (unsigned)(mode & 07777), path);
  memcpy(secret, sk, sizeof sk);
  memcpy(public_key, pk, sizeof pk);
done:
  explicit_bzero(buf, sizeof buf);
  explicit_bzero(sk, sizeof sk);
  explicit_bzero(secret_z85, sizeof secret_z85);
  return rc;
}

/* Creates path exclusively with `mode` and writes text; -errno on failure (file removed). */
static int write_new_file(const char *path, mode_t mode, const char *text) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return -errno;
  int rc = 0;
  /* The umask may only have narrowed the mode; make it exactly what was asked. */
  if (fchmod(fd, mode) != 0) rc = -errno;
  size_t len = strlen(text), off = 0;
  while (rc == 0 && off < len) {
    ssize_t w = write(fd, text + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) rc = -errno;
    else off += (size_t)w;
  }
  if (rc == 0 && fsync(fd) != 0) rc = -errno;
  if (close(fd) != 0 && rc == 0) rc = -errno;
  if (rc) unlink(path);
  return rc;
}

int frl_curve_keygen(const char *dir, const char *name, char pub_z85[FRL_CURVE_Z85_LEN + 1],
                     char *err, size_t err_len) {
  char key_path[1024], pub_path[1024], text[128];
  char public_z85[FRL_CURVE_Z85_LEN + 1], secret_z85[FRL_CURVE_Z85_LEN + 1];
  int rc = 0;
  if (!frl_curve_name_valid(name)) {
    frl_errf(0, err, err_len,
             "key name '%.80s' must be 1-%d characters of A-Z a-z 0-9 . _ @ - "
             "(not starting with '.')",
             name ? name : "", FRL_CURVE_NAME_MAX);
    return FRL_EUSAGE;
  }
  if (!dir || !*dir) dir = ".";
  if ((size_t)snprintf(key_path, sizeof key_path, "%s/%s.key", dir, name) >= sizeof key_path ||
      (size_t)snprintf(pub_path, sizeof pub_path, "%s/%s.pub", dir, name) >= sizeof pub_path) {
    frl_errf(0, err, err_len, "--out: the folder name is too long");
    return FRL_EUSAGE;
  }
  rc = frl_mkdir_p(dir);
  if (rc) {
    frl_errf(0, err, err_len, "--out: cannot create %s: %s", dir, frl_strerror(rc));
    return rc;
  }
  struct stat st;
  if (lstat(pub_path, &st) == 0 || lstat(key_path, &st) == 0) {
    frl_errf(0, err, err_len,
             "%s exists; refusing to overwrite a key (remove %s and %s first, or "
             "choose another name)",
             lstat(key_path, &st) == 0 ? key_path : pub_path, key_path, pub_path);
    return -EEXIST;
  }
  if (zmq_curve_keypair(public_z85, secret_z85) != 0) {
    frl_errf(0, err, err_len, "cannot generate a key pair: %s (libzmq built without CURVE?)",
             zmq_strerror(zmq_errno()));
    return FRL_EUSAGE;
  }
  snprintf(text, sizeof text, "%s\n%s\n", FRL_CURVE_SECRET_HEADER, secret_z85);
  rc = write_new_file(key_path, 0600, text);
  if (rc) {
    frl_errf(0, err, err_len, "cannot write %s: %s", key_path, frl_strerror(rc));
    goto done;
  }
  snprintf(text, sizeof text, "%s\n", public_z85);
  rc = write_new_file(pub_path, 0644, text);
  if (rc) {
    unlink(key_path);
    frl_errf(0, err, err_len, "cannot write %s: %s", pub_path, frl_strerror(rc));
    goto done;
  }
  memcpy(pub_z85, public_z85, sizeof public_z85);
done:
  explicit_bzero(text, sizeof text);
  explicit_bzero(secret_z85, sizeof secret_z85);
  return rc;
}

int frl_curve_setup(const frl_config_t *cfg, bool server, FILE *err) {
  char msg[700];
  frl_security_t sec = {.curve = true};
  int rc = 0;
  if (!cfg->curve_secret[0]) {
    if (cfg->broker_key[0] || cfg->allow[0]) {
      fprintf(err, "fleetrl: %s needs --curve-secret (this process's secret key file, from "
              "`fleetrl keygen`)\n", cfg->allow[0] ? "--allow" : "--broker-key");
      return FRL_EUSAGE;
    }
    frl_transport_set_security(NULL);
    return 0;
  }
  rc = frl_curve_load_secret(cfg->curve_secret, sec.secret_key, sec.public_key, msg, sizeof msg);
  if (rc) {
    fprintf(err, "fleetrl: --curve-secret: %s\n", msg);
    rc = FRL_EUSAGE;
    goto done;
  }
  if (server && !cfg->allow[0]) {
    fprintf(err, "fleetrl: --curve-secret on the broker needs --allow FILE (the peers it "
            "admits: one 'NAME Z85PUBKEY' line each)\n");
    rc = FRL_EUSAGE;
    goto done;
  }
  if (!server) {
    if (!cfg->broker_key[0]) {
      fprintf(err, "fleetrl: --curve-secret needs --broker-key FILE (the broker's public key, "
              "NAME.pub)\n");
      rc = FRL_EUSAGE;
      goto done;
    }
    rc = frl_curve_load_public(cfg->broker_key, sec.server_key, msg, sizeof msg);
    if (rc) {
      fprintf(err, "fleetrl: --broker-key: %s\n", msg);
      rc = FRL_EUSAGE;
      goto done;
    }
  }
  frl_transport_set_security(&sec);
  char z85[FRL_CURVE_Z85_LEN + 1];
  frl_curve_z85_encode(sec.public_key, z85);
  frl_info("CURVE on: this process's public key is %s", z85);
done:
  explicit_bzero(&sec, sizeof sec);
  return rc;
}
