/* test_client.c: the robot client library against a scripted broker in the test (a real
 * ZeroMQ ROUTER on loopback speaking the wire protocol through the codec): Hello, n-step batches
 * with hand-computed returns and normalized actions, demonstration batches, parameter updates
 * acting exactly like a reference policy with the same weights, e-stop and resume, broker
 * silence and non-finite observations entering and leaving safe mode, shield interventions
 * shipped as safety events, resends of unacknowledged batches, and refused connections. And
 * the policy-file mode: a file written by frl_policy_save acts exactly like frl_policy with the
 * same weights (greedy / mean, the file's normalizer and action scale), offline with no broker
 * at all or connected without ever taking broadcast parameters; files of another task or
 * damaged ones are refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "client.h"
#include "common.h"
#include "config.h"
#include "env.h"
#include "history.h"
#include "msg.h"
#include "policy.h"
#include "policy_file.h"
#include "rng.h"
#include "transport.h"
#include "watchdog.h"

/* ---- a scripted broker ------------------------------------------------------------------- */

typedef struct {
  void *ctx, *sock;
  char endpoint[128];
  frl_inbox_t in;
  frl_fb_builder_t *fb;
  uint8_t rid[FRL_ROUTING_ID_MAX];
  size_t rid_len;
  bool silent;           /* answer nothing (a broker that went away) */
  const char *refuse;    /* answer Hello with this refusal */
  bool ack;              /* acknowledge batches */
  int hellos, batches;
} fake_t;

static fake_t *fake_new(void) {
  fake_t *f = calloc(1, sizeof *f);
  f->ctx = zmq_ctx_new();
  f->sock = frl_socket_router(f->ctx, "tcp://127.0.0.1:*", f->endpoint, sizeof f->endpoint);
  assert_non_null(f->sock);
  f->fb = frl_fb_builder_new(1 << 16);
  frl_inbox_init(&f->in);
  f->ack = true;
  return f;
}

static void fake_destroy(fake_t **fp) {
  fake_t *f = *fp;
  frl_inbox_free(&f->in);
  frl_fb_builder_destroy(&f->fb);
  zmq_close(f->sock);
  zmq_ctx_term(f->ctx);
  free(f);
  *fp = NULL;
}

static void fake_send(fake_t *f) { assert_int_equal(frl_send(f->sock, f->rid, f->rid_len, f->fb), 0); }

static void fake_control(fake_t *f, frl_control_cmd_t cmd, const char *reason) {
  frl_control_t c = {.command = cmd, .reason = reason};
  assert_int_equal(frl_msg_encode_control(f->fb, &c), 0);
  fake_send(f);
}

/* Receives for up to timeout_s, answering Hello and Heartbeat like the broker does (unless
 * silent or refusing), acknowledging batches when f->ack; returns true when a message of type
 * `want` is in f->in.msg. */
static bool fake_expect(fake_t *f, frl_msg_type_t want, double timeout_s) {
  double deadline = frl_now() + timeout_s;
  do { /* at least one pass, also with timeout 0 */
    zmq_pollitem_t it = {f->sock, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, timeout_s > 0 ? 10 : 0);
    int rc;
    while ((rc = frl_recv(f->sock, true, &f->in)) != 0) {
      if (rc < 0) fail_msg("the client sent an invalid message: %s", f->in.err);
      memcpy(f->rid, f->in.routing_id, f->in.routing_id_len);
      f->rid_len = f->in.routing_id_len;
      const frl_msg_t *m = &f->in.msg;
      if (m->type == FRL_MSG_HELLO) {
        f->hellos++;
        if (!f->silent) {
          frl_welcome_t w = {.ok = f->refuse == NULL, .error = f->refuse, .schema_hash = frl_schema_hash(),
                             .params_version = 0, .heartbeat_ms = 50};
          assert_int_equal(frl_msg_encode_welcome(f->fb, &w), 0);
          fake_send(f);
        }
      } else if (m->type == FRL_MSG_HEARTBEAT && !f->silent) {
        /* copy what we need before the builder overwrites nothing of the inbox */
        frl_heartbeat_t h = {.name = "broker", .role = FRL_ROLE_OPERATOR, .params_version = 0};
        assert_int_equal(frl_msg_encode_heartbeat(f->fb, &h), 0);
        fake_send(f);
      } else if (m->type == FRL_MSG_EXPERIENCE) {
        f->batches++;
        if (f->ack && !f->silent) {
          /* The inbox view stays valid: the builder does not share its memory. */
          frl_ack_t a = {.actor = m->u.experience.actor, .seq = m->u.experience.seq, .status = FRL_ACK_OK};
          assert_int_equal(frl_msg_encode_ack(f->fb, &a), 0);
          fake_send(f);
        }
      }
      if (m->type == want) return true;
    }
  } while (frl_now() < deadline);
  return false;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static frl_config_t make_cfg(const fake_t *f, const char *name, const char *extra1, const char *extra2) {
  frl_config_t cfg;
  char ep[200], nm[100];
  snprintf(ep, sizeof ep, "--actor-endpoint=%s", f ? f->endpoint : "tcp://127.0.0.1:1");
  snprintf(nm, sizeof nm, "--name=%s", name);
  char *argv[] = {"--task=pendulum-sac", ep, nm, "--hidden1=8", "--hidden2=8", "--n-step=3",
                  "--gamma=0.5", "--batch-transitions=4", "--heartbeat=0.05", "--peer-timeout=0.5",
                  "--max-broker-silence=1", "--resend=0.2", "--log-level=warn",
                  (char *)extra1, (char *)extra2};
  int argc = 13 + (extra1 != NULL) + (extra2 != NULL);
  assert_int_equal(frl_config_parse(&cfg, FRL_CFG_ACTOR | FRL_CFG_ROBOT, argc, argv, stdout, stderr), 0);
  return cfg;
}

static frl_client_t *connect_cfg(const frl_config_t *cfg) {
  frl_client_t *c = NULL;
  char err[512] = "";
  frl_client_options_t o = {.cfg = cfg};
  int rc = frl_client_connect(&c, NULL, NULL, NULL, NULL, &o, err, sizeof err);
  if (rc) fail_msg("connect: %s", err);
  return c;
}

static void wait_connected(fake_t *f, frl_client_t *c) {
  double deadline = frl_now() + 5;
  frl_client_status_t st;
  do {
    fake_expect(f, FRL_MSG_NONE, 0.02);
    frl_client_status(c, &st);
  } while (!st.connected && frl_now() < deadline);
  assert_true(st.connected);
}

static char *write_tmp(const char *text) {
  static char path[64];
  snprintf(path, sizeof path, "/tmp/fleetrl-test-client-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_connect_errors(void **unused) {
  frl_client_t *c = NULL;
  char err[512];
  char *lim = write_tmp("action_dim 1\naction_max x\n");
  frl_config_t cfg = make_cfg(NULL, "robot-a", NULL, NULL);
  frl_client_options_t o = {.cfg = &cfg};
  assert_int_equal(frl_client_connect(&c, NULL, NULL, lim, NULL, &o, err, sizeof err), FRL_EUSAGE);
  char want[128];
  snprintf(want, sizeof want, "%s:2: key 'action_max': 'x' is not a number", lim);
  if (!strstr(err, want)) fail_msg("'%s' lacks '%s'", err, want);
  unlink(lim);
  lim = write_tmp("action_dim 3\n"); /* pendulum has 1 action dimension */
  assert_int_equal(frl_client_connect(&c, NULL, NULL, lim, NULL, &o, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "action_dim 3, the task has 1"));
  unlink(lim);
  assert_int_equal(frl_client_connect(&c, NULL, NULL, "/nonexistent/x.limits", NULL, &o, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "cannot open"));
  assert_int_equal(frl_client_connect(&c, NULL, "two words", NULL, NULL, &o, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "name 'two words'"));
  /* Without a config: the task preset decides; an unknown one is named. */
  assert_int_equal(frl_client_connect(&c, "tcp://127.0.0.1:1", "r", NULL, "no-such-task", NULL, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "unknown task 'no-such-task'"));
  assert_null(c);
  frl_client_close(&c);
}

/* Steps of one episode come back as n-step transitions: R_t = sum_{i<k} 0.5^i r_{t+i}, discount
 * 0.5^3 while bootstrapping and 0 once the window reaches the terminal state; actions on the wire
 * are normalized by the task's bounds [-2, 2]; the episode is reported with its return. */
static void test_batches_nstep_and_demonstration(void **unused) {
  fake_t *f = fake_new();
  frl_config_t cfg = make_cfg(f, "robot-b", NULL, NULL);
  frl_client_t *c = connect_cfg(&cfg);
  wait_connected(f, c);
  assert_int_equal(frl_client_obs_dim(c), 3);
  assert_int_equal(frl_client_act_dim(c), 1);
  float obs[3] = {0, 0, 0};
  frl_client_reset(c, obs);
  for (int t = 0; t < 5; t++) {
    float next[3] = {(float)(t + 1), 0, 0}, a[1] = {1.0f}; /* 1.0 of [-2, 2] is 0.5 normalized */
    assert_int_equal(frl_client_record(c, next, a, (float)(t + 1), t == 4, false, NULL), 0);
  }
  float R[5], D[5], A[5], O[5], N[5];
  int got = 0, episodes = 0;
  float ep_return = 0;
  double deadline = frl_now() + 5;
  while ((got < 5 || episodes < 1) && frl_now() < deadline) {
    if (!fake_expect(f, FRL_MSG_EXPERIENCE, 0.1)) continue;
    const frl_experience_t *x = &f->in.msg.u.experience;
    assert_string_equal(x->actor, "robot-b");
    assert_false(x->demonstration);
    assert_int_equal(x->obs_dim, 3);
    assert_int_equal(x->n_policy_version, x->count);
    for (uint32_t i = 0; i < x->count && got < 5; i++, got++) {
      R[got] = x->reward[i];
      D[got] = x->discount[i];
      A[got] = x->action[i];
      O[got] = x->obs[3 * i];
      N[got] = x->next_obs[3 * i];
      assert_int_equal(x->policy_version[i], 0);
    }
    for (uint32_t i = 0; i < x->n_episodes; i++) {
      frl_episode_stat_t e;
      frl_msg_episode(x, i, &e);
      ep_return = e.episode_return;
      assert_int_equal(e.length, 5);
      episodes++;
    }
  }
  assert_int_equal(got, 5);
  assert_int_equal(episodes, 1);
  assert_float_equal(ep_return, 15.0f, 1e-6);
  const float want_R[5] = {1 + 0.5f * 2 + 0.25f * 3, 2 + 0.5f * 3 + 0.25f * 4, 3 + 0.5f * 4 + 0.25f * 5,
                           4 + 0.5f * 5, 5};
  const float want_D[5] = {0.125f, 0.125f, 0, 0, 0};
  const float want_N[5] = {3, 4, 5, 5, 5};
  for (int t = 0; t < 5; t++) {
    assert_float_equal(R[t], want_R[t], 1e-6);
    assert_float_equal(D[t], want_D[t], 1e-7);
    assert_float_equal(A[t], 0.5f, 1e-7);
    assert_float_equal(O[t], (float)t, 0);
    assert_float_equal(N[t], want_N[t], 0);
  }
  /* A demonstration episode ships in batches marked as such, never mixed with agent ones. */
  frl_client_set_demonstration(c, true);
  frl_client_reset(c, obs);
  for (int t = 0; t < 3; t++) {
    float next[3] = {0, 0, 0}, a[1] = {-2.0f};
    frl_client_record(c, next, a, 1.0f, false, t == 2, NULL);
  }
  /* ... and a per-record override back to agent experience. */
  frl_client_reset(c, obs);
  frl_client_info_t no = {.demonstration = FRL_DEMO_NO};
  float a0[1] = {0};
  frl_client_record(c, obs, a0, 0.0f, true, false, &no);
  int demo = 0, agent = 0;
  deadline = frl_now() + 5;
  while ((demo < 3 || agent < 1) && frl_now() < deadline) {
    if (!fake_expect(f, FRL_MSG_EXPERIENCE, 0.1)) continue;
    const frl_experience_t *x = &f->in.msg.u.experience;
    for (uint32_t i = 0; i < x->count; i++) {
      if (x->demonstration) {
        assert_float_equal(x->action[i], -1.0f, 0);
        demo++;
      } else {
        assert_float_equal(x->action[i], 0.0f, 0);
        agent++;
      }
    }
  }
  assert_int_equal(demo, 3);
  assert_int_equal(agent, 1);
  frl_client_status_t st;
  frl_client_status(c, &st);
  assert_int_equal(st.steps, 9);
  assert_int_equal(st.dropped_steps, 0);
  frl_client_close(&c);
  fake_destroy(&f);
}

/* With parameters received, act() equals a reference policy holding the same weights (mean
 * action, --explore false), scaled to the task's bounds. Bad parameters are ignored. */
static void test_params_swap_and_act(void **unused) {
  fake_t *f = fake_new();
  frl_config_t cfg = make_cfg(f, "robot-c", "--explore=false", NULL);
  frl_client_t *c = connect_cfg(&cfg);
  wait_connected(f, c);
  frl_env_t *env;
  assert_int_equal(frl_env_new(&env, "pendulum", 1, NULL, 0), 0);
  frl_policy_shape_t shape;
  char err[256];
  assert_int_equal(frl_policy_shape_from_config(&cfg, frl_env_spec(env), &shape, err, sizeof err), 0);
  frl_rng_t rng;
  frl_rng_seed(&rng, 99);
  frl_policy_t *ref = frl_policy_new(&shape, 1, &rng);
  size_t n = frl_policy_n_params(ref);
  float *w = frl_policy_params(ref);
  for (size_t i = 0; i < n; i++) w[i] = (float)(frl_rng_normal(&rng) * 0.5);
  /* A corrupted checksum first: ignored. */
  frl_params_t p = {.version = 7, .checksum = 1, .task = "pendulum-sac", .data = w, .n_data = (uint32_t)n};
  assert_int_equal(frl_msg_encode_params(f->fb, &p), 0);
  fake_send(f);
  p.checksum = frl_fnv1a64(w, n * sizeof(float), FRL_FNV_SEED);
  p.version = 9;
  p.n_data = (uint32_t)n - 1; /* wrong size: ignored */
  assert_int_equal(frl_msg_encode_params(f->fb, &p), 0);
  fake_send(f);
  p.n_data = (uint32_t)n;
  p.version = 8;
  assert_int_equal(frl_msg_encode_params(f->fb, &p), 0);
  fake_send(f);
  frl_client_status_t st;
  double deadline = frl_now() + 5;
  do {
    fake_expect(f, FRL_MSG_NONE, 0.02);
    frl_client_status(c, &st);
  } while (st.params_version != 8 && frl_now() < deadline);
  assert_int_equal(st.params_version, 8);
  assert_true(st.params_age_s >= 0);
  for (int k = 0; k < 20; k++) {
    float obs[3] = {(float)cos(k), (float)sin(k), (float)(k - 10) * 0.3f}, a[1], ra[1], scaled[1];
    fake_expect(f, FRL_MSG_NONE, 0); /* keep answering heartbeats (slow under valgrind) */
    assert_int_equal(frl_client_act(c, obs, a), 0);
    frl_policy_act(ref, obs, 0.0, &rng, ra);
    const frl_env_spec_t *sp = frl_env_spec(env);
    frl_policy_scale(scaled, ra, sp->act_low, sp->act_high, 1.0f, 1);
    assert_float_equal(a[0], scaled[0], 1e-6);
  }
  /* An older version than the one acting is not applied. */
  p.version = 5;
  assert_int_equal(frl_msg_encode_params(f->fb, &p), 0);
  fake_send(f);
  fake_expect(f, FRL_MSG_NONE, 0.2);
  frl_client_status(c, &st);
  assert_int_equal(st.params_version, 8);
  frl_policy_destroy(&ref);
  frl_env_destroy(&env);
  frl_client_close(&c);
  fake_destroy(&f);
}

/* Collects the safety events of batches arriving within timeout_s until `kind` was seen. */
static bool expect_event(fake_t *f, frl_safety_kind_t kind, double timeout_s, uint32_t *count, char *detail) {
  double deadline = frl_now() + timeout_s;
  while (frl_now() < deadline) {
    if (!fake_expect(f, FRL_MSG_EXPERIENCE, 0.05)) continue;
    const frl_experience_t *x = &f->in.msg.u.experience;
    for (uint32_t i = 0; i < x->n_safety; i++) {
      frl_safety_event_t e;
      frl_msg_safety(x, i, &e);
      assert_true(e.time_ns > 1600000000ULL * 1000000000ULL); /* a wall-clock time */
      if (e.kind == kind) {
        if (count) *count = e.count;
        if (detail) snprintf(detail, 200, "%s", e.detail ? e.detail : "");
        return true;
      }
    }
  }
  return false;
}

static void test_estop_and_resume(void **unused) {
  fake_t *f = fake_new();
  frl_config_t cfg = make_cfg(f, "robot-d", NULL, NULL);
  frl_client_t *c = connect_cfg(&cfg);
  wait_connected(f, c);
  float obs[3] = {1, 0, 0}, a[1], held[1];
  assert_int_equal(frl_client_act(c, obs, held), 0);
  fake_control(f, FRL_CONTROL_ESTOP, "operator test");
  double deadline = frl_now() + 5;
  int r = 0;
  while (r != 1 && frl_now() < deadline) {
    fake_expect(f, FRL_MSG_NONE, 0.01);
    r = frl_client_act(c, obs, a);
    if (r == 0) memcpy(held, a, sizeof held);
  }
  assert_int_equal(r, 1);
  assert_float_equal(a[0], held[0], 0); /* safe action: hold the last command */
  frl_client_status_t st;
  frl_client_status(c, &st);
  assert_true(st.safe_mode);
  assert_int_equal(st.safe_causes, FRL_WD_ESTOP);
  assert_string_equal(st.reason, "e-stop");
  char detail[200];
  assert_true(expect_event(f, FRL_SAFETY_ESTOP, 5, NULL, detail));
  assert_string_equal(detail, "operator test");
  /* The broker's heartbeats keep coming, but the e-stop holds until Resume. */
  fake_expect(f, FRL_MSG_NONE, 0.4);
  assert_int_equal(frl_client_act(c, obs, a), 1);
  fake_control(f, FRL_CONTROL_RESUME, "all clear");
  deadline = frl_now() + 5;
  while (r != 0 && frl_now() < deadline) {
    fake_expect(f, FRL_MSG_NONE, 0.01);
    r = frl_client_act(c, obs, a);
  }
  assert_int_equal(r, 0);
  assert_true(expect_event(f, FRL_SAFETY_SAFE_MODE_EXIT, 5, NULL, detail));
  assert_string_equal(detail, "was: e-stop");
  frl_client_close(&c);
  fake_destroy(&f);
}

static void test_silence_and_bad_observation(void **unused) {
  fake_t *f = fake_new();
  frl_config_t cfg = make_cfg(f, "robot-e", "--max-broker-silence=0.3", NULL);
  frl_client_t *c = connect_cfg(&cfg);
  wait_connected(f, c);
  float obs[3] = {1, 0, 0}, a[1];
  assert_int_equal(frl_client_act(c, obs, a), 0);
  f->silent = true;
  double deadline = frl_now() + 5;
  int r = 0;
  while (r != 1 && frl_now() < deadline) {
    fake_expect(f, FRL_MSG_NONE, 0.01);
    r = frl_client_act(c, obs, a);
  }
  assert_int_equal(r, 1);
  frl_client_status_t st;
  frl_client_status(c, &st);
  assert_int_equal(st.safe_causes, FRL_WD_BROKER);
  assert_false(st.connected);
  assert_true(st.broker_silence_s > 0.3);
  f->silent = false; /* the broker answers again: the client says Hello, safe mode lifts */
  deadline = frl_now() + 5;
  while (r != 0 && frl_now() < deadline) {
    fake_expect(f, FRL_MSG_NONE, 0.01);
    r = frl_client_act(c, obs, a);
  }
  assert_int_equal(r, 0);
  assert_true(expect_event(f, FRL_SAFETY_SAFE_MODE_ENTER, 5, NULL, NULL) ||
              expect_event(f, FRL_SAFETY_SAFE_MODE_EXIT, 5, NULL, NULL));
  /* A NaN observation: safe action at once, the step is not recorded, the next good one acts. */
  float bad[3] = {1, NAN, 0};
  assert_int_equal(frl_client_act(c, bad, a), 1);
  assert_true(isfinite(a[0]));
  frl_client_status(c, &st);
  assert_int_equal(st.safe_causes, FRL_WD_OBS);
  assert_int_equal(frl_client_record(c, bad, a, 0.0f, false, false, NULL), 1);
  assert_int_equal(frl_client_act(c, obs, a), 0);
  assert_int_equal(frl_client_record(c, obs, a, NAN, false, false, NULL), 1);
  frl_client_status(c, &st);
  assert_int_equal(st.dropped_steps, 2);
  frl_client_close(&c);
  fake_destroy(&f);
}

/* Limits narrower than the task: every policy action is inside them and the clips reach the
 * learner as one aggregated Clip event per batch with their count. */
static void test_shield_events(void **unused) {
  fake_t *f = fake_new();
  char *lim = write_tmp("action_min -0.5\naction_max 0.5\n");
  char flag[100];
  snprintf(flag, sizeof flag, "--limits=%s", lim);
  frl_config_t cfg = make_cfg(f, "robot-f", flag, NULL);
  frl_client_t *c = connect_cfg(&cfg);
  unlink(lim);
  wait_connected(f, c);
  float obs[3] = {1, 0, 0}, a[1];
  for (int k = 0; k < 200; k++) {
    fake_expect(f, FRL_MSG_NONE, 0);
    assert_int_equal(frl_client_act(c, obs, a), 0);
    assert_true(a[0] >= -0.5f && a[0] <= 0.5f);
  }
  frl_client_status_t st;
  frl_client_status(c, &st);
  /* Warm-up actions are uniform on [-2, 2]: three quarters fall outside [-0.5, 0.5]. */
  assert_true(st.clipped > 100 && st.clipped < 200);
  uint32_t total = 0, count;
  double deadline = frl_now() + 5;
  while (total < st.clipped && frl_now() < deadline)
    if (expect_event(f, FRL_SAFETY_CLIP, 0.2, &count, NULL)) total += count;
  assert_int_equal(total, st.clipped);
  frl_client_close(&c);
  fake_destroy(&f);
}

/* An unacknowledged batch is resent after --resend; acknowledged ones leave the outbox. */
static void test_resend_until_acked(void **unused) {
  fake_t *f = fake_new();
  f->ack = false;
  frl_config_t cfg = make_cfg(f, "robot-g", NULL, NULL);
  frl_client_t *c = connect_cfg(&cfg);
  wait_connected(f, c);
  float obs[3] = {0}, a[1] = {0};
  frl_client_reset(c, obs);
  for (int t = 0; t < 4; t++) frl_client_record(c, obs, a, 1.0f, false, false, NULL);
  assert_true(fake_expect(f, FRL_MSG_EXPERIENCE, 5));
  uint64_t seq = f->in.msg.u.experience.seq;
  assert_true(fake_expect(f, FRL_MSG_EXPERIENCE, 5));
  assert_int_equal(f->in.msg.u.experience.seq, seq); /* the same batch again */
  f->ack = true;
  frl_client_status_t st;
  double deadline = frl_now() + 5;
  do {
    fake_expect(f, FRL_MSG_NONE, 0.05);
    frl_client_status(c, &st);
  } while ((st.outbox > 0 || st.acked_batches == 0) && frl_now() < deadline);
  assert_int_equal(st.outbox, 0);
  assert_int_equal(st.acked_batches, 1);
  frl_client_close(&c);
  fake_destroy(&f);
}

static void test_refused(void **unused) {
  fake_t *f = fake_new();
  f->refuse = "schema mismatch: test";
  frl_config_t cfg = make_cfg(f, "robot-h", NULL, NULL);
  frl_client_t *c = connect_cfg(&cfg);
  frl_client_status_t st;
  double deadline = frl_now() + 5;
  do {
    fake_expect(f, FRL_MSG_NONE, 0.02);
    frl_client_status(c, &st);
  } while (!st.refused && frl_now() < deadline);
  assert_true(st.refused);
  assert_false(st.connected);
  assert_non_null(strstr(st.reason, "refused by the broker: schema mismatch: test"));
  frl_client_close(&c);
  fake_destroy(&f);
}

/* ---- policy files ------------------------------------------------------------------------ */

/* A reference policy of `shape` with random weights (and, when normalize, a normalizer with
 * means and stds far from 0 and 1, so that forgetting it changes the actions), saved to a new
 * file; the caller destroys the policy and unlinks the file. */
static frl_policy_t *save_policy_history(const frl_policy_shape_t *shape, const char *task,
                                         const char *env, float action_scale, uint64_t version,
                                         bool normalize, int history, int obs_history,
                                         char *path) {
  frl_rng_t rng;
  frl_rng_seed(&rng, 1234 + version);
  frl_policy_t *p = frl_policy_new(shape, 1, &rng);
  assert_non_null(p);
  size_t n = frl_policy_n_params(p);
  float *w = frl_policy_params(p);
  for (size_t i = 0; i < n; i++) w[i] = (float)(frl_rng_normal(&rng) * 0.5);
  float mean[FRL_ENV_MAX_DIM], std[FRL_ENV_MAX_DIM];
  for (int i = 0; i < shape->obs_dim; i++) {
    mean[i] = 0.3f * (float)(i + 1);
    std[i] = 0.5f + 0.25f * (float)i;
  }
  if (normalize) assert_int_equal(frl_policy_set_normalizer(p, mean, std, (size_t)shape->obs_dim), 0);
  frl_policy_info_t info = {.shape = *shape, .params_version = version, .updates = 4321,
                            .action_scale = action_scale, .action_history = history,
                            .obs_history = obs_history};
  snprintf(info.task, sizeof info.task, "%s", task);
  snprintf(info.env, sizeof info.env, "%s", env);
  snprintf(path, 64, "/tmp/fleetrl-test-policy-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(frl_policy_save(path, &info, w, n, normalize ? mean : NULL, normalize ? std : NULL), 0);
  return p;
}

static frl_policy_t *save_policy(const frl_policy_shape_t *shape, const char *task, const char *env,
                                 float action_scale, uint64_t version, bool normalize, char *path) {
  return save_policy_history(shape, task, env, action_scale, version, normalize, 0, 0, path);
}

static frl_client_t *connect_policy(const frl_config_t *cfg, const char *endpoint, const char *path) {
  frl_client_t *c = NULL;
  char err[512] = "";
  frl_client_options_t o = {.cfg = cfg, .policy_path = path};
  int rc = frl_client_connect(&c, endpoint, NULL, NULL, NULL, &o, err, sizeof err);
  if (rc) fail_msg("connect with %s: %s", path, err);
  return c;
}

/* A policy trained with --action-history k and --obs-history m (history.h): the robot passes its
 * own 3 pendulum values and the client appends its m previous observations and last k commands,
 * exactly as the simulation's wrapper does. A twin pendulum inside the wrapper steps with the
 * client's actions; the reference policy acting on the wrapper's observation gives the client's
 * action at every step, over episodes that end midway (the history starts again at each reset:
 * commands neutral, past observations the episode's first). */
static void check_policy_file_history(int k, int m) {
  frl_config_t cfg = make_cfg(NULL, "robot-h", NULL, NULL);
  const int od = 3 * (m + 1) + k, cmd = 3 * (m + 1); /* where the commands start */
  frl_policy_shape_t shape = {.algo = FRL_ALGO_SAC, .obs_dim = od, .act_dim = 1, .hidden1 = 16,
                              .hidden2 = 12};
  char path[64], err[256];
  frl_policy_t *ref = save_policy_history(&shape, "pendulum-sac", "pendulum", 0.5f, 9, true, k, m,
                                          path);
  frl_client_t *c = connect_policy(&cfg, NULL, path);
  assert_int_equal(frl_client_obs_dim(c), 3); /* what the robot passes */
  frl_env_t *robot = NULL, *sim = NULL;
  assert_int_equal(frl_env_new(&robot, "pendulum", 77, err, sizeof err), 0);
  assert_int_equal(frl_env_new(&sim, "pendulum", 77, err, sizeof err), 0);
  assert_int_equal(frl_history_wrap(&sim, k, m, err, sizeof err), 0);
  assert_int_equal(frl_env_spec(sim)->obs_dim, od);
  frl_rng_t rng;
  frl_rng_seed(&rng, 3);
  const float low = -2.0f, high = 2.0f;
  int distinct_tail = 0, moved = 0;
  for (int ep = 0; ep < 3; ep++) {
    float obs[3], prev[3], seen[FRL_ENV_MAX_DIM], a[1], ra[1], want[1];
    frl_env_reset(robot, obs);
    frl_env_reset(sim, seen);
    frl_client_reset(c, obs);
    for (int j = 0; j < k; j++) /* neutral: zero command, the middle of [-2, 2] */
      assert_float_equal(seen[cmd + j], 0.0f, 0);
    for (int i = 3; i < cmd; i++) assert_float_equal(seen[i], obs[i % 3], 0);
    for (int t = 0; t < 25; t++) {
      assert_int_equal(frl_client_act(c, obs, a), 0);
      frl_policy_act(ref, seen, 0.0, &rng, ra);
      frl_policy_scale(want, ra, &low, &high, 0.5f, 1);
      assert_float_equal(a[0], want[0], 0);
      memcpy(prev, obs, sizeof prev);
      frl_step_t st, st2;
      frl_env_step(robot, a, obs, &st);
      frl_env_step(sim, a, seen, &st2);
      for (int i = 0; i < 3; i++) assert_float_equal(seen[i], obs[i], 0);
      if (m > 0) { /* the newest past observation is the one this step was taken from */
        for (int i = 0; i < 3; i++) assert_float_equal(seen[3 + i], prev[i], 0);
        moved += seen[3] != seen[0];
      }
      if (k > 0) {
        assert_float_equal(seen[cmd], a[0] / 2.0f, 1e-7); /* newest first, as a fraction of 2 */
        if (k > 1) distinct_tail += seen[cmd] != seen[cmd + 1];
      }
      assert_int_equal(frl_client_record(c, obs, a, st.reward, false, false, NULL), 0);
    }
  }
  if (k > 1) assert_true(distinct_tail > 30);
  if (m > 0) assert_true(moved > 30);
  /* A demonstrator's step (record without act) brings its own command into the history, and the
   * observation it was taken from into the past ones. */
  float o[3] = {1, 0, 0.5f}, o2[3] = {0.5f, 0.25f, -1}, demo[1] = {-1.5f}, a[1], ra[1], want[1];
  float seen[FRL_ENV_MAX_DIM] = {0};
  memcpy(seen, o2, sizeof o2);
  for (int j = 0; j < m; j++) memcpy(seen + 3 * (j + 1), o, sizeof o);
  if (k > 0) seen[cmd] = -0.75f;
  frl_client_reset(c, o);
  assert_int_equal(frl_client_record(c, o2, demo, 0.0f, false, false, NULL), 0);
  assert_int_equal(frl_client_act(c, o2, a), 0);
  frl_policy_act(ref, seen, 0.0, &rng, ra);
  frl_policy_scale(want, ra, &low, &high, 0.5f, 1);
  assert_float_equal(a[0], want[0], 0);
  frl_env_destroy(&robot);
  frl_env_destroy(&sim);
  frl_client_close(&c);
  frl_policy_destroy(&ref);
  unlink(path);
}

static void test_policy_file_history(void **unused) {
  (void)unused;
  check_policy_file_history(2, 0);
  check_policy_file_history(2, 2);
  check_policy_file_history(0, 1);
}

/* Offline, with nothing listening at the configured endpoint: a SAC file of another network
 * size than the settings' (16-12 against --hidden 8-8), with a normalizer and action scale 0.5,
 * acts exactly as frl_policy with its weights does for evaluation (mean action) scaled by the
 * file's 0.5 to pendulum's [-2, 2]; the same observation gives the same action; no
 * broker-silence safe mode ever; a NaN observation still gets the safe action; the library
 * counts the episodes it is told about. */
static void test_policy_file_offline(void **unused) {
  frl_config_t cfg = make_cfg(NULL, "robot-p", "--max-broker-silence=0.05", NULL);
  frl_policy_shape_t shape = {.algo = FRL_ALGO_SAC, .obs_dim = 3, .act_dim = 1, .hidden1 = 16, .hidden2 = 12};
  char path[64];
  frl_policy_t *ref = save_policy(&shape, "pendulum-sac", "pendulum", 0.5f, 42, true, path);
  frl_client_t *c = connect_policy(&cfg, NULL, path);
  frl_rng_t rng;
  frl_rng_seed(&rng, 7);
  const float low = -2.0f, high = 2.0f;
  double started = frl_now();
  int k = 0, distinct = 0;
  float prev = NAN;
  /* Acting for 0.2 s, four times the silence bound, with no broker: never safe mode. */
  while (k < 50 || frl_now() - started < 0.2) {
    float obs[3] = {(float)cos(k), (float)sin(k), (float)(k % 17 - 8) * 0.9f}, a[1], again[1], ra[1], want[1];
    assert_int_equal(frl_client_act(c, obs, a), 0);
    assert_int_equal(frl_client_act(c, obs, again), 0);
    frl_policy_act(ref, obs, 0.0, &rng, ra);
    frl_policy_scale(want, ra, &low, &high, 0.5f, 1);
    assert_float_equal(a[0], want[0], 0);
    assert_float_equal(again[0], a[0], 0);
    assert_true(fabsf(a[0]) <= 1.0f); /* the file's scale: half of [-2, 2] */
    distinct += a[0] != prev;
    prev = a[0];
    k++;
  }
  assert_true(distinct > 40); /* the weights matter: not a constant action */
  frl_client_status_t st;
  frl_client_status(c, &st);
  assert_true(st.offline);
  assert_false(st.connected);
  assert_false(st.safe_mode);
  assert_int_equal(st.safe_causes, 0);
  assert_int_equal(st.params_version, 42);
  /* A NaN observation: the safe action (hold the last command), then the policy again. */
  float bad[3] = {NAN, 0, 0}, a[1], ok_obs[3] = {1, 0, 0};
  assert_int_equal(frl_client_act(c, bad, a), 1);
  assert_float_equal(a[0], prev, 0);
  frl_client_status(c, &st);
  assert_int_equal(st.safe_causes, FRL_WD_OBS);
  assert_int_equal(frl_client_act(c, ok_obs, a), 0);
  /* Episodes: returns 6 and -2 (and one abandoned midway, not counted): mean 2, std 4. */
  float o[3] = {0, 0, 0};
  frl_client_info_t hit = {.success = true, .violations = 2};
  frl_client_reset(c, o);
  assert_int_equal(frl_client_record(c, o, a, 1.0f, false, false, NULL), 0);
  assert_int_equal(frl_client_record(c, o, a, 2.0f, false, false, &hit), 0);
  assert_int_equal(frl_client_record(c, o, a, 3.0f, true, false, NULL), 0);
  frl_client_reset(c, o);
  assert_int_equal(frl_client_record(c, o, a, 100.0f, false, false, NULL), 0);
  frl_client_reset(c, o);
  assert_int_equal(frl_client_record(c, o, a, -1.0f, false, false, NULL), 0);
  assert_int_equal(frl_client_record(c, o, a, -1.0f, false, true, NULL), 0);
  frl_client_status(c, &st);
  assert_int_equal(st.episodes, 2);
  assert_float_equal(st.mean_return, 2.0, 1e-12);
  assert_float_equal(st.std_return, 4.0, 1e-12);
  assert_float_equal(st.mean_length, 2.5, 1e-12);
  assert_int_equal(st.successes, 1);
  assert_int_equal(st.violations, 2);
  assert_int_equal(st.steps, 6);
  frl_client_close(&c);
  frl_policy_destroy(&ref);
  unlink(path);
}

/* A dueling DQN file on CartPole: the action index is frl_policy's greedy argmax for every
 * observation (no epsilon, even with --explore on). */
static void test_policy_file_dqn(void **unused) {
  frl_config_t cfg = make_cfg(NULL, "robot-q", "--task=cartpole-dqn", "--explore=true");
  frl_policy_shape_t shape = {.algo = FRL_ALGO_DQN, .obs_dim = 4, .act_dim = 1, .n_actions = 2,
                              .hidden1 = 10, .hidden2 = 6, .dueling = true};
  char path[64];
  frl_policy_t *ref = save_policy(&shape, "cartpole-dqn", "cartpole", 1.0f, 3, false, path);
  frl_client_t *c = connect_policy(&cfg, NULL, path);
  frl_rng_t rng;
  frl_rng_seed(&rng, 8);
  int counts[2] = {0, 0};
  for (int k = 0; k < 400; k++) {
    float obs[4], a[1], ra[1];
    for (int i = 0; i < 4; i++) obs[i] = (float)(frl_rng_normal(&rng) * 2.0);
    assert_int_equal(frl_client_act(c, obs, a), 0);
    frl_policy_act(ref, obs, 0.0, &rng, ra);
    assert_float_equal(a[0], ra[0], 0);
    counts[(int)a[0]]++;
  }
  assert_true(counts[0] > 0 && counts[1] > 0); /* both actions occur: the test can fail */
  frl_client_close(&c);
  frl_policy_destroy(&ref);
  unlink(path);
}

/* Files of another task, environment or shape are refused naming both sides; a damaged or
 * missing file is refused with the reason; nothing is returned. */
static void test_policy_file_refused(void **unused) {
  frl_config_t cfg = make_cfg(NULL, "robot-r", NULL, NULL);
  frl_client_t *c = NULL;
  char err[512], path[64];
  frl_client_options_t o = {.cfg = &cfg};
  frl_policy_shape_t dqn = {.algo = FRL_ALGO_DQN, .obs_dim = 4, .act_dim = 1, .n_actions = 2,
                            .hidden1 = 8, .hidden2 = 8, .dueling = true};
  frl_policy_t *ref = save_policy(&dqn, "cartpole-dqn", "cartpole", 1.0f, 1, false, path);
  o.policy_path = path;
  assert_int_equal(frl_client_connect(&c, NULL, NULL, NULL, NULL, &o, err, sizeof err), FRL_EDIM);
  if (!strstr(err, "a dqn policy for task cartpole-dqn (env cartpole: obs 4, 2 actions)") ||
      !strstr(err, "this robot's task is pendulum-sac (env pendulum: obs 3, 1 action dims)"))
    fail_msg("%s", err);
  assert_null(c);
  frl_policy_destroy(&ref);
  unlink(path);
  /* The right task name, the wrong observation size. */
  frl_policy_shape_t sac = {.algo = FRL_ALGO_SAC, .obs_dim = 4, .act_dim = 1, .hidden1 = 8, .hidden2 = 8};
  ref = save_policy(&sac, "pendulum-sac", "pendulum", 1.0f, 1, false, path);
  assert_int_equal(frl_client_connect(&c, NULL, NULL, NULL, NULL, &o, err, sizeof err), FRL_EDIM);
  assert_non_null(strstr(err, "(env pendulum: obs 4, 1 action dims)"));
  frl_policy_destroy(&ref);
  unlink(path);
  /* The right shape for another task (TD3 on the same pendulum). */
  sac.obs_dim = 3;
  ref = save_policy(&sac, "pendulum-td3", "pendulum", 1.0f, 1, false, path);
  assert_int_equal(frl_client_connect(&c, NULL, NULL, NULL, NULL, &o, err, sizeof err), FRL_EDIM);
  assert_non_null(strstr(err, "for task pendulum-td3"));
  frl_policy_destroy(&ref);
  unlink(path);
  /* Damaged: one parameter byte flipped. */
  ref = save_policy(&sac, "pendulum-sac", "pendulum", 1.0f, 1, false, path);
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  assert_int_equal(fseek(f, 16 + 160 + 5, SEEK_SET), 0);
  int byte = fgetc(f);
  assert_int_equal(fseek(f, 16 + 160 + 5, SEEK_SET), 0);
  fputc(byte ^ 0x40, f);
  fclose(f);
  assert_int_equal(frl_client_connect(&c, NULL, NULL, NULL, NULL, &o, err, sizeof err), FRL_ECORRUPT);
  assert_non_null(strstr(err, "checksum mismatch"));
  frl_policy_destroy(&ref);
  unlink(path);
  assert_int_equal(frl_client_connect(&c, NULL, NULL, NULL, NULL, &o, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, path));
  /* The setting (--policy) is used when the option is NULL. */
  o.policy_path = NULL;
  snprintf(cfg.policy_path, sizeof cfg.policy_path, "%s", path);
  assert_int_equal(frl_client_connect(&c, NULL, NULL, NULL, NULL, &o, err, sizeof err), -ENOENT);
  assert_null(c);
}

/* With an endpoint the file's policy also ships its experience (tagged with the file's
 * version), keeps acting with the file when the learner broadcasts other weights, and obeys
 * an e-stop. */
static void test_policy_file_connected(void **unused) {
  fake_t *f = fake_new();
  frl_config_t cfg = make_cfg(f, "robot-s", NULL, NULL);
  frl_policy_shape_t shape = {.algo = FRL_ALGO_SAC, .obs_dim = 3, .act_dim = 1, .hidden1 = 8, .hidden2 = 8};
  char path[64];
  frl_policy_t *ref = save_policy(&shape, "pendulum-sac", "pendulum", 1.0f, 77, false, path);
  frl_client_t *c = connect_policy(&cfg, f->endpoint, path);
  wait_connected(f, c);
  float obs[3] = {0.5f, -0.5f, 1.0f}, before[1], after[1];
  assert_int_equal(frl_client_act(c, obs, before), 0);
  /* Other weights, a newer version: announced, never applied. */
  size_t n = frl_policy_n_params(ref);
  float *w = calloc(n, sizeof(float));
  for (size_t i = 0; i < n; i++) w[i] = 0.01f * (float)(i % 7);
  frl_params_t p = {.version = 500, .checksum = frl_fnv1a64(w, n * sizeof(float), FRL_FNV_SEED),
                    .task = "pendulum-sac", .data = w, .n_data = (uint32_t)n};
  assert_int_equal(frl_msg_encode_params(f->fb, &p), 0);
  fake_send(f);
  frl_client_status_t st;
  double deadline = frl_now() + 5;
  do {
    fake_expect(f, FRL_MSG_NONE, 0.02);
    frl_client_status(c, &st);
  } while (st.policy_lag == 0 && frl_now() < deadline);
  assert_int_equal(st.policy_lag, 500 - 77); /* the broadcast arrived ... */
  assert_int_equal(st.params_version, 77);   /* ... and was not applied */
  assert_false(st.offline);
  assert_int_equal(frl_client_act(c, obs, after), 0);
  assert_float_equal(after[0], before[0], 0);
  /* Its steps ship, tagged with the file's version. */
  frl_client_reset(c, obs);
  for (int t = 0; t < 4; t++) frl_client_record(c, obs, after, -1.0f, false, t == 3, NULL);
  bool got = false;
  deadline = frl_now() + 5;
  while (!got && frl_now() < deadline) {
    if (!fake_expect(f, FRL_MSG_EXPERIENCE, 0.1)) continue;
    const frl_experience_t *x = &f->in.msg.u.experience;
    for (uint32_t i = 0; i < x->count; i++) assert_int_equal(x->policy_version[i], 77);
    got = x->count > 0;
  }
  assert_true(got);
  fake_control(f, FRL_CONTROL_ESTOP, "hold");
  int r = 0;
  deadline = frl_now() + 5;
  while (r != 1 && frl_now() < deadline) {
    fake_expect(f, FRL_MSG_NONE, 0.01);
    r = frl_client_act(c, obs, after);
  }
  assert_int_equal(r, 1);
  assert_float_equal(after[0], before[0], 0); /* hold the last command */
  frl_client_close(&c);
  free(w);
  frl_policy_destroy(&ref);
  unlink(path);
  fake_destroy(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_connect_errors),
      cmocka_unit_test(test_batches_nstep_and_demonstration),
      cmocka_unit_test(test_params_swap_and_act),
      cmocka_unit_test(test_estop_and_resume),
      cmocka_unit_test(test_silence_and_bad_observation),
      cmocka_unit_test(test_shield_events),
      cmocka_unit_test(test_resend_until_acked),
      cmocka_unit_test(test_refused),
      cmocka_unit_test(test_policy_file_offline),
      cmocka_unit_test(test_policy_file_dqn),
      cmocka_unit_test(test_policy_file_refused), cmocka_unit_test(test_policy_file_history),
      cmocka_unit_test(test_policy_file_connected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
