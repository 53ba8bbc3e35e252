/* test_curve.c: CURVE keys and the broker's gatekeeper. Z85 against libzmq's own codec and the
 * RFC 32 test vector; key files as untrusted input; `keygen` files used for a real encrypted
 * handshake over TCP loopback; the ZAP handler's RFC 27 replies to hand-built requests; the
 * allowlist parser and its reload; plaintext and unknown-key peers refused; the flag checks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "common.h"
#include "config.h"
#include "curve.h"
#include "fb.h"
#include "rng.h"
#include "transport.h"
#include "zap.h"

static char g_dir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "/tmp/fleetrl-curve-XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  frl_transport_set_security(NULL);
  return nftw(g_dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", g_dir, name); }

static void write_file(const char *name, const void *data, size_t len, mode_t mode) {
  char p[256];
  path_of(p, sizeof p, name);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, len, f), len);
  fclose(f);
  chmod(p, mode);
}

static void random_key(frl_rng_t *rng, uint8_t key[32]) {
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)frl_rng_next(rng);
}

/* ---- Z85 ---------------------------------------------------------------------------------- */

static void test_z85_matches_libzmq_and_rfc32(void **state) {
  (void)state;
  /* RFC 32's vector: 86 4F D2 6F B5 59 F7 5B is "HelloWorld". */
  static const uint8_t hello[8] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
  uint8_t key[32], back[32];
  for (int i = 0; i < 4; i++) memcpy(key + 8 * i, hello, 8);
  char text[41];
  frl_curve_z85_encode(key, text);
  assert_string_equal(text, "HelloWorldHelloWorldHelloWorldHelloWorld");
  frl_rng_t rng;
  frl_rng_seed(&rng, 7);
  for (int t = 0; t < 2000; t++) {
    random_key(&rng, key);
    char ref[41];
    assert_non_null(zmq_z85_encode(ref, key, 32));
    frl_curve_z85_encode(key, text);
    assert_string_equal(text, ref);
    assert_int_equal(frl_curve_z85_decode(text, 40, back, NULL, 0), 0);
    assert_memory_equal(back, key, 32);
  }
  memset(key, 0xff, 32);
  frl_curve_z85_encode(key, text);
  assert_memory_equal(text, "%nSc0", 5);
}

static void test_z85_refuses_bad_text(void **state) {
  (void)state;
  uint8_t key[32], untouched[32];
  memset(key, 0xab, 32);
  memcpy(untouched, key, 32);
  char err[200];
  const char *good = "HelloWorldHelloWorldHelloWorldHelloWorld";
  assert_int_equal(frl_curve_z85_decode(good, 39, key, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "40 Z85 characters, found 39"));
  char bad[41];
  const char not_z85[] = {' ', '"', '\'', ',', ';', '\\', '_', '`', '|', '~', '\x7f', '\x80'};
  for (size_t i = 0; i < sizeof not_z85; i++) {
    memcpy(bad, good, 41);
    bad[17] = not_z85[i];
    assert_int_equal(frl_curve_z85_decode(bad, 40, key, err, sizeof err), FRL_EUSAGE);
    assert_non_null(strstr(err, "position 18"));
  }
  memcpy(bad, good, 41);
  bad[3] = '\0';
  assert_int_equal(frl_curve_z85_decode(bad, 40, key, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "byte 0x00 at position 4"));
  /* "%nSc0" is 2^32 - 1; one more does not fit 4 bytes. */
  memcpy(bad, good, 41);
  memcpy(bad + 10, "%nSc1", 5);
  assert_int_equal(frl_curve_z85_decode(bad, 40, key, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "characters 11-15"));
  memcpy(bad + 10, "#####", 5);
  assert_int_equal(frl_curve_z85_decode(bad, 40, key, err, sizeof err), FRL_EUSAGE);
  assert_memory_equal(key, untouched, 32);
}

/* ---- key files ---------------------------------------------------------------------------- */

static void test_key_files_are_untrusted_input(void **state) {
  (void)state;
  char p[256], err[400];
  uint8_t key[32], sk[32], pk[32];
  const char *z = "HelloWorldHelloWorldHelloWorldHelloWorld";
  struct {
    const char *content;
    int ok;
    const char *why;
  } pubs[] = {
      {"HelloWorldHelloWorldHelloWorldHelloWorld\n", 1, NULL},
      {"HelloWorldHelloWorldHelloWorldHelloWorld", 1, NULL},
      {"HelloWorldHelloWorldHelloWorldHelloWorld\r\n", 1, NULL},
      {"HelloWorldHelloWorldHelloWorldHelloWorl\n", 0, "found 39"},
      {"HelloWorldHelloWorldHelloWorldHelloWorld\n\n", 0, "found 41"},
      {"HelloWorldHelloWorldHelloWorldHelloWorld \n", 0, "found 41"},
      {"", 0, "found 0"},
      {"HelloWorldHello_orldHelloWorldHelloWorld\n", 0, "character '_' at position 16"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(pubs); i++) {
    write_file("t.pub", pubs[i].content, strlen(pubs[i].content), 0644);
    path_of(p, sizeof p, "t.pub");
    int rc = frl_curve_load_public(p, key, err, sizeof err);
    if (pubs[i].ok) {
      assert_int_equal(rc, 0);
      uint8_t want[32];
      frl_curve_z85_decode(z, 40, want, NULL, 0);
      assert_memory_equal(key, want, 32);
    } else {
      assert_int_equal(rc, FRL_EUSAGE);
      assert_non_null(strstr(err, p));
      assert_non_null(strstr(err, pubs[i].why));
    }
  }
  char big[300];
  memset(big, 'a', sizeof big);
  write_file("big.pub", big, sizeof big, 0644);
  path_of(p, sizeof p, "big.pub");
  assert_int_equal(frl_curve_load_public(p, key, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "300 bytes"));
  path_of(p, sizeof p, "missing.pub");
  assert_int_equal(frl_curve_load_public(p, key, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "missing.pub"));
  assert_int_equal(frl_curve_load_public(g_dir, key, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "not a regular file"));

  /* A secret file where a public key is expected, and the other way round. */
  char secret[128];
  snprintf(secret, sizeof secret, "%s\n%s\n", FRL_CURVE_SECRET_HEADER, z);
  write_file("s.key", secret, strlen(secret), 0600);
  path_of(p, sizeof p, "s.key");
  assert_int_equal(frl_curve_load_public(p, key, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "is a secret key file"));
  assert_int_equal(frl_curve_load_secret(p, sk, pk, err, sizeof err), 0);
  write_file("t.pub", z, 40, 0644);
  path_of(p, sizeof p, "t.pub");
  assert_int_equal(frl_curve_load_secret(p, sk, pk, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "looks like a public key file"));
  snprintf(secret, sizeof secret, "# some other header\n%s\n", z);
  write_file("h.key", secret, strlen(secret), 0600);
  path_of(p, sizeof p, "h.key");
  assert_int_equal(frl_curve_load_secret(p, sk, pk, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "first line must be"));
  snprintf(secret, sizeof secret, "%s\n%.39s\n", FRL_CURVE_SECRET_HEADER, z);
  write_file("short.key", secret, strlen(secret), 0600);
  path_of(p, sizeof p, "short.key");
  assert_int_equal(frl_curve_load_secret(p, sk, pk, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "line 2"));
}

static void read_all(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
}

static void test_keygen_writes_and_never_overwrites(void **state) {
  (void)state;
  char pub[41], err[600], key_path[256], pub_path[256], dir[128];
  snprintf(dir, sizeof dir, "%s/keys/sub", g_dir);
  assert_int_equal(frl_curve_keygen(dir, "robot-7", pub, err, sizeof err), 0);
  snprintf(key_path, sizeof key_path, "%s/robot-7.key", dir);
  snprintf(pub_path, sizeof pub_path, "%s/robot-7.pub", dir);
  struct stat st;
  assert_int_equal(stat(key_path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char pub_text[128], key_text[256];
  read_all(pub_path, pub_text, sizeof pub_text);
  assert_int_equal(strlen(pub_text), 41);
  assert_memory_equal(pub_text, pub, 40);
  read_all(key_path, key_text, sizeof key_text);
  /* The secret's public key, derived by libzmq, is the one in NAME.pub. */
  uint8_t sk[32], pk[32], pk_file[32];
  assert_int_equal(frl_curve_load_secret(key_path, sk, pk, err, sizeof err), 0);
  assert_int_equal(frl_curve_load_public(pub_path, pk_file, err, sizeof err), 0);
  assert_memory_equal(pk, pk_file, 32);
  /* A second run refuses and leaves both files as they were. */
  char pub2[41];
  assert_int_equal(frl_curve_keygen(dir, "robot-7", pub2, err, sizeof err), -EEXIST);
  assert_non_null(strstr(err, "refusing to overwrite"));
  char again[256];
  read_all(key_path, again, sizeof again);
  assert_string_equal(again, key_text);
  read_all(pub_path, again, sizeof again);
  assert_string_equal(again, pub_text);
  /* A lone NAME.pub also blocks, and no NAME.key is left behind. */
  write_file("lone.pub", "x", 1, 0644);
  assert_int_equal(frl_curve_keygen(g_dir, "lone", pub2, err, sizeof err), -EEXIST);
  char lone_key[256];
  path_of(lone_key, sizeof lone_key, "lone.key");
  assert_int_equal(access(lone_key, F_OK), -1);
  const char *bad_names[] = {"", ".hidden", "a/b", "sp ace", "semi;colon",
                             "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"};
  for (size_t i = 0; i < FRL_ARRAY_LEN(bad_names); i++)
    assert_int_equal(frl_curve_keygen(g_dir, bad_names[i], pub2, err, sizeof err), FRL_EUSAGE);
  assert_true(frl_curve_name_valid("nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"));
  assert_true(frl_curve_name_valid("lab-3.robot_2@site"));

  /* The command's own argument checks. */
  FILE *out = fopen("/dev/null", "w"), *errf = out;
  char *a1[] = {"x", "--out"};
  assert_int_equal(frl_keygen_main(2, a1, out, errf), 2);
  char *a2[] = {"x", "y"};
  assert_int_equal(frl_keygen_main(2, a2, out, errf), 2);
  char *a3[] = {"--bogus"};
  assert_int_equal(frl_keygen_main(1, a3, out, errf), 2);
  assert_int_equal(frl_keygen_main(0, NULL, out, errf), 2);
  fclose(out);
}

/* ---- allowlist ---------------------------------------------------------------------------- */

static void test_allowlist_parsing(void **state) {
  (void)state;
  frl_rng_t rng;
  frl_rng_seed(&rng, 9);
  uint8_t k1[32], k2[32], k3[32];
  random_key(&rng, k1);
  random_key(&rng, k2);
  random_key(&rng, k3);
  char z1[41], z2[41], text[1024], err[400];
  frl_curve_z85_encode(k1, z1);
  frl_curve_z85_encode(k2, z2);
  snprintf(text, sizeof text,
           "# lab fleet\n\n  learner   %s  \r\n\t# indented comment\nrobot-1\t%s", z1, z2);
  frl_allowlist_t *list = NULL;
  assert_int_equal(frl_allowlist_parse(text, strlen(text), "allow.txt", &list, err, sizeof err), 0);
  assert_int_equal(frl_allowlist_count(list), 2);
  assert_string_equal(frl_allowlist_lookup(list, k1), "learner");
  assert_string_equal(frl_allowlist_lookup(list, k2), "robot-1");
  assert_null(frl_allowlist_lookup(list, k3));
  frl_allowlist_destroy(&list);
  assert_null(list);

  struct {
    const char *fmt;
    const char *why;
  } bad[] = {
      {"a %s\nb\n", "allow.txt:2: expected 'NAME Z85PUBKEY', found 1 field"},
      {"a %s extra\n", "allow.txt:1: expected 'NAME Z85PUBKEY', found 3 fields"},
      {"\n\nbad/name %s\n", "allow.txt:3: name 'bad/name'"},
      {"a %.39s\n", "allow.txt:1: public key of 'a': a key is 40 Z85 characters, found 39"},
      {"a %s\nb %s\n", "allow.txt:2: the key of 'b' is already listed at line 1 (for 'a')"},
      {"a %s\x01\n", "allow.txt:1: byte 0x01 at column 43"},
  };
  for (size_t i = 0; i < FRL_ARRAY_LEN(bad); i++) {
    snprintf(text, sizeof text, bad[i].fmt, z1, z1);
    assert_int_equal(frl_allowlist_parse(text, strlen(text), "allow.txt", &list, err, sizeof err),
                     FRL_EUSAGE);
    assert_null(list);
    assert_non_null(strstr(err, bad[i].why));
  }
  assert_int_equal(frl_allowlist_parse(text, FRL_ALLOWLIST_MAX_BYTES + 1, "allow.txt", &list, err,
                                       sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "the limit is"));
  /* An empty list is valid: it admits nobody. */
  assert_int_equal(frl_allowlist_parse("# nobody\n", 9, "allow.txt", &list, err, sizeof err), 0);
  assert_int_equal(frl_allowlist_count(list), 0);
  assert_null(frl_allowlist_lookup(list, k1));
  frl_allowlist_destroy(&list);
}

/* ---- ZAP handler ------------------------------------------------------------------------- */

typedef struct {
  char z85[41];
  uint8_t pk[32], sk[32];
} keypair_t;

static void make_keys(const char *name, keypair_t *k) {
  char err[400], p[256];
  assert_int_equal(frl_curve_keygen(g_dir, name, k->z85, err, sizeof err), 0);
  path_of(p, sizeof p, name);
  strcat(p, ".key");
  assert_int_equal(frl_curve_load_secret(p, k->sk, k->pk, err, sizeof err), 0);
}

static void write_allowlist(const char *text) {
  /* Replace atomically, as an operator's editor or a deploy script would. */
  write_file("allow.tmp", text, strlen(text), 0644);
  char a[256], b[256];
  path_of(a, sizeof a, "allow.tmp");
  path_of(b, sizeof b, "allow.txt");
  assert_int_equal(rename(a, b), 0);
}

/* Sends a hand-built ZAP request and returns the reply's status code and user id. */
static void zap_ask_in(void *req, const char *domain, const char *version, const char *mechanism,
                       const uint8_t *key, int frames, char *status, char *user) {
  const char *parts[6] = {version, "req-42", domain, "192.0.2.7", "", mechanism};
  for (int i = 0; i < frames && i < 6; i++)
    zmq_send(req, parts[i], strlen(parts[i]), i + 1 < frames ? ZMQ_SNDMORE : 0);
  if (frames > 6) zmq_send(req, key, 32, 0);
  char buf[6][128];
  int n = 0, more = 1;
  size_t sz = sizeof more;
  while (more && n < 6) {
    int len = zmq_recv(req, buf[n], sizeof buf[n] - 1, 0);
    assert_true(len >= 0);
    buf[n][len] = '\0';
    n++;
    zmq_getsockopt(req, ZMQ_RCVMORE, &more, &sz);
  }
  assert_int_equal(n, 6);
  assert_false(more);
  assert_string_equal(buf[0], "1.0");
  assert_string_equal(buf[1], "req-42");
  assert_string_equal(buf[5], ""); /* metadata */
  strcpy(status, buf[2]);
  strcpy(user, buf[4]);
}

static void zap_ask(void *req, const char *version, const char *mechanism, const uint8_t *key,
                    int frames, char *status, char *user) {
  zap_ask_in(req, FRL_ZAP_DOMAIN_ACTORS, version, mechanism, key, frames, status, user);
}

static void test_zap_replies_and_reload(void **state) {
  (void)state;
  keypair_t alice, mallory, learner;
  make_keys("alice", &alice);
  make_keys("mallory", &mallory);
  make_keys("learner", &learner);
  char text[256], p[256], err[400];
  snprintf(text, sizeof text, "# test\nalice %s\nlearner %s\n", alice.z85, learner.z85);
  write_allowlist(text);
  path_of(p, sizeof p, "allow.txt");
  void *ctx = zmq_ctx_new();
  frl_zap_t *zap = NULL;
  assert_int_equal(frl_zap_new(ctx, p, &zap, err, sizeof err), 0);
  /* One handler per context. */
  frl_zap_t *second = NULL;
  assert_true(frl_zap_new(ctx, p, &second, err, sizeof err) < 0);
  assert_non_null(strstr(err, "another ZAP handler"));
  assert_int_equal(frl_zap_start(zap, NULL, NULL, 0), 0);
  void *req = zmq_socket(ctx, ZMQ_REQ);
  int timeout = 5000;
  zmq_setsockopt(req, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
  assert_int_equal(zmq_connect(req, FRL_ZAP_ENDPOINT), 0);
  char status[128], user[128];
  zap_ask(req, "1.0", "CURVE", alice.pk, 7, status, user);
  assert_string_equal(status, "200");
  assert_string_equal(user, "alice");
  zap_ask(req, "1.0", "CURVE", mallory.pk, 7, status, user);
  assert_string_equal(status, "400");
  assert_string_equal(user, "");
  zap_ask(req, "1.0", "NULL", NULL, 6, status, user);
  assert_string_equal(status, "400");
  zap_ask(req, "2.0", "CURVE", alice.pk, 7, status, user);
  assert_string_equal(status, "500");
  zap_ask(req, "1.0", "CURVE", NULL, 3, status, user);
  assert_string_equal(status, "500");
  /* The learner endpoint admits the learner's key only. */
  zap_ask_in(req, FRL_ZAP_DOMAIN_LEARNER, "1.0", "CURVE", alice.pk, 7, status, user);
  assert_string_equal(status, "400");
  zap_ask_in(req, FRL_ZAP_DOMAIN_LEARNER, "1.0", "CURVE", learner.pk, 7, status, user);
  assert_string_equal(status, "200");
  assert_string_equal(user, "learner");
  zap_ask(req, "1.0", "CURVE", learner.pk, 7, status, user);
  assert_string_equal(status, "200");
  frl_zap_stats_t st;
  frl_zap_stats(zap, &st);
  assert_int_equal(st.admitted, 3);
  assert_int_equal(st.refused_key, 1);
  assert_int_equal(st.refused_role, 1);
  assert_int_equal(st.refused_mechanism, 1);
  assert_int_equal(st.refused_malformed, 2);

  /* A broken file on reload keeps the old list; a good one replaces it. */
  write_allowlist("alice not-a-key\n");
  frl_zap_reload(zap);
  double deadline = frl_now() + 5;
  do frl_zap_stats(zap, &st);
  while (st.reloads < 1 && frl_now() < deadline && zmq_poll(NULL, 0, 10) == 0);
  assert_int_equal(st.reloads, 1);
  zap_ask(req, "1.0", "CURVE", alice.pk, 7, status, user);
  assert_string_equal(status, "200");
  snprintf(text, sizeof text, "mallory %s\n", mallory.z85);
  write_allowlist(text);
  frl_zap_reload(zap);
  do frl_zap_stats(zap, &st);
  while (st.reloads < 2 && frl_now() < deadline && zmq_poll(NULL, 0, 10) == 0);
  assert_int_equal(st.reloads, 2);
  zap_ask(req, "1.0", "CURVE", mallory.pk, 7, status, user);
  assert_string_equal(status, "200");
  assert_string_equal(user, "mallory");
  zap_ask(req, "1.0", "CURVE", alice.pk, 7, status, user);
  assert_string_equal(status, "400");
  zmq_close(req);
  frl_zap_destroy(&zap);
  assert_null(zap);
  zmq_ctx_term(ctx);
}

/* ---- real handshakes ---------------------------------------------------------------------- */

static void use_server(const keypair_t *k) {
  frl_security_t s = {.curve = true};
  memcpy(s.public_key, k->pk, 32);
  memcpy(s.secret_key, k->sk, 32);
  frl_transport_set_security(&s);
}

static void use_client(const keypair_t *k, const uint8_t server[32]) {
  frl_security_t s = {.curve = true};
  memcpy(s.public_key, k->pk, 32);
  memcpy(s.secret_key, k->sk, 32);
  memcpy(s.server_key, server, 32);
  frl_transport_set_security(&s);
}

/* Sends Hello from `dealer` until the router receives a message or the deadline passes.
 * Returns true with the message in `in`. */
static bool hello_through(void *dealer, void *router, const char *name, frl_inbox_t *in,
                          double seconds) {
  frl_fb_builder_t *fb = frl_fb_builder_new(1024);
  double deadline = frl_now() + seconds, next = 0;
  bool got = false;
  while (!got && frl_now() < deadline) {
    if (frl_now() >= next) {
      frl_send_hello(dealer, fb, FRL_ROLE_ACTOR, name, "cartpole-dqn", 0, 1, 4, 1);
      next = frl_now() + 0.05;
    }
    zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, 20);
    got = frl_recv(router, true, in) == 1;
  }
  frl_fb_builder_destroy(&fb);
  return got;
}

/* Waits until the counter at `offset` in frl_zap_stats_t is non-zero. */
static void wait_refused(frl_zap_t *zap, size_t offset) {
  double deadline = frl_now() + 5;
  frl_zap_stats_t st;
  uint64_t v = 0;
  while (frl_now() < deadline) {
    frl_zap_stats(zap, &st);
    memcpy(&v, (const char *)&st + offset, sizeof v);
    if (v > 0) break;
    zmq_poll(NULL, 0, 10);
  }
  assert_true(v > 0);
}

static void test_handshakes_over_tcp(void **state) {
  (void)state;
  keypair_t broker, alice, mallory, impostor_broker;
  make_keys("broker", &broker);
  make_keys("alice2", &alice);
  make_keys("mallory2", &mallory);
  make_keys("other-broker", &impostor_broker);
  char text[256], p[256], err[400], ep[256];
  snprintf(text, sizeof text, "alice %s\n", alice.z85);
  write_allowlist(text);
  path_of(p, sizeof p, "allow.txt");
  void *ctx = zmq_ctx_new();

  /* A CURVE server without a ZAP handler in its context would admit anyone: refused. */
  use_server(&broker);
  assert_null(frl_socket_router(ctx, "tcp://127.0.0.1:*", ep, sizeof ep));
  assert_int_equal(errno, EACCES);

  frl_zap_t *zap = NULL;
  assert_int_equal(frl_zap_new(ctx, p, &zap, err, sizeof err), 0);
  void *router = frl_socket_router(ctx, "tcp://127.0.0.1:*", ep, sizeof ep);
  assert_non_null(router);
  void *watch[1] = {router};
  const char *labels[1] = {"actor"};
  assert_int_equal(frl_zap_start(zap, watch, labels, 1), 0);

  frl_inbox_t in;
  frl_inbox_init(&in);
  use_client(&alice, broker.pk);
  void *d_alice = frl_socket_dealer(ctx, ep, "alice-robot");
  assert_non_null(d_alice);
  assert_true(hello_through(d_alice, router, "alice-robot", &in, 5));
  assert_int_equal(in.msg.type, FRL_MSG_HELLO);
  assert_string_equal(in.user_id, "alice"); /* named by the allowlist, not by itself */
  assert_memory_equal(in.routing_id, "alice-robot", 11);

  /* Not on the list, plaintext, and a client that trusts another broker's key: each is
   * refused at the handshake, counted, and nothing it sends arrives. */
  use_client(&mallory, broker.pk);
  void *d_mallory = frl_socket_dealer(ctx, ep, "mallory");
  wait_refused(zap, offsetof(frl_zap_stats_t, refused_key));
  frl_transport_set_security(NULL);
  void *d_plain = frl_socket_dealer(ctx, ep, "plain");
  wait_refused(zap, offsetof(frl_zap_stats_t, refused_plaintext));
  use_client(&alice, impostor_broker.pk);
  void *d_confused = frl_socket_dealer(ctx, ep, "confused");
  wait_refused(zap, offsetof(frl_zap_stats_t, refused_protocol));
  frl_fb_builder_t *fb = frl_fb_builder_new(1024);
  for (int i = 0; i < 3; i++) {
    void *d = i == 0 ? d_mallory : i == 1 ? d_plain : d_confused;
    /* IMMEDIATE: with no completed connection there is nowhere to queue. */
    assert_int_equal(frl_send_hello(d, fb, FRL_ROLE_ACTOR, "x", "t", 0, 1, 4, 1), FRL_EBUSY);
  }
  frl_fb_builder_destroy(&fb);
  /* The admitted peer still gets through, and it is the only one heard. */
  assert_true(hello_through(d_alice, router, "alice-robot", &in, 5));
  assert_string_equal(in.user_id, "alice");
  while (frl_recv(router, true, &in) == 1) assert_string_equal(in.user_id, "alice");
  frl_zap_stats_t st;
  frl_zap_stats(zap, &st);
  assert_int_equal(st.admitted, 1);
  assert_int_equal(st.refused_mechanism + st.refused_malformed, 0);

  frl_inbox_free(&in);
  zmq_close(d_alice);
  zmq_close(d_mallory);
  zmq_close(d_plain);
  zmq_close(d_confused);
  zmq_close(router);
  frl_zap_destroy(&zap); /* returns once the router's monitor has stopped */
  zmq_ctx_term(ctx);
  frl_transport_set_security(NULL);
}

/* ---- flags -------------------------------------------------------------------------------- */

static int setup_with(const char *secret, const char *broker_key, const char *allow, bool server,
                      char *msg, size_t n) {
  frl_config_t cfg;
  memset(&cfg, 0, sizeof cfg);
  snprintf(cfg.curve_secret, sizeof cfg.curve_secret, "%s", secret);
  snprintf(cfg.broker_key, sizeof cfg.broker_key, "%s", broker_key);
  snprintf(cfg.allow, sizeof cfg.allow, "%s", allow);
  FILE *f = fmemopen(msg, n, "w");
  int rc = frl_curve_setup(&cfg, server, f);
  fclose(f);
  return rc;
}

static void test_setup_checks_flags(void **state) {
  (void)state;
  keypair_t k;
  make_keys("node", &k);
  char sk[256], pk[256], msg[600];
  path_of(sk, sizeof sk, "node.key");
  path_of(pk, sizeof pk, "node.pub");
  assert_int_equal(setup_with("", "", "", false, msg, sizeof msg), 0);
  assert_false(frl_transport_curve());
  assert_int_equal(setup_with("", pk, "", false, msg, sizeof msg), FRL_EUSAGE);
  assert_non_null(strstr(msg, "--broker-key needs --curve-secret"));
  assert_int_equal(setup_with("", "", pk, true, msg, sizeof msg), FRL_EUSAGE);
  assert_non_null(strstr(msg, "--allow needs --curve-secret"));
  assert_int_equal(setup_with(sk, "", "", false, msg, sizeof msg), FRL_EUSAGE);
  assert_non_null(strstr(msg, "needs --broker-key"));
  assert_int_equal(setup_with(sk, "", "", true, msg, sizeof msg), FRL_EUSAGE);
  assert_non_null(strstr(msg, "needs --allow"));
  assert_int_equal(setup_with(pk, pk, "", false, msg, sizeof msg), FRL_EUSAGE);
  assert_non_null(strstr(msg, "--curve-secret: "));
  assert_non_null(strstr(msg, "looks like a public key file"));
  assert_int_equal(setup_with(sk, sk, "", false, msg, sizeof msg), FRL_EUSAGE);
  assert_non_null(strstr(msg, "--broker-key: "));
  assert_false(frl_transport_curve());
  assert_int_equal(setup_with(sk, pk, "", false, msg, sizeof msg), 0);
  assert_true(frl_transport_curve());
  assert_int_equal(setup_with(sk, "", "allow.txt", true, msg, sizeof msg), 0);
  assert_true(frl_transport_curve());
  frl_transport_set_security(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_z85_matches_libzmq_and_rfc32),
      cmocka_unit_test(test_z85_refuses_bad_text),
      cmocka_unit_test(test_key_files_are_untrusted_input),
      cmocka_unit_test(test_keygen_writes_and_never_overwrites),
      cmocka_unit_test(test_allowlist_parsing),
      cmocka_unit_test(test_zap_replies_and_reload),
      cmocka_unit_test(test_handshakes_over_tcp),
      cmocka_unit_test(test_setup_checks_flags),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
