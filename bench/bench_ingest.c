/* bench_ingest.c: experience ingest through the whole path — load-generating actors (ZeroMQ
 * DEALERs speaking the real protocol) -> real `fleetrl broker` -> real `fleetrl learner` ->
 * SQLite commit -> Ack — in transitions per second, next to the raw rate of a plain batched
 * SQLite insert loop into the same items table measured in the same run.
 * Usage: bench_ingest [seconds] [actors]   (FLEETRL_BIN names the binary; default
 * build/fleetrl). Prints figures; never fails on timing. */
#include <signal.h>
#include <stdbool.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "common.h"
#include "store.h"
#include "transport.h"

#define OBS 4
#define BATCH 64
#define WINDOW 16

static pid_t spawn(char *const argv[], const char *log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    f = freopen("/dev/null", "w", stdout);
    (void)f;
    execv(argv[0], argv);
    _exit(127);
  }
  return pid;
}

static void fill_batch(float *obs, float *next, int32_t *act, float *rew, float *disc, float *prio,
                       unsigned seed) {
  for (int i = 0; i < BATCH; i++) {
    for (int d = 0; d < OBS; d++) {
      obs[i * OBS + d] = (float)((seed + i * 7 + d) % 97) / 97.0f - 0.5f;
      next[i * OBS + d] = obs[i * OBS + d] + 0.01f;
    }
    act[i] = i & 1;
    rew[i] = 1.0f;
    disc[i] = 0.970299f;
    prio[i] = 0.5f + (float)(i % 5);
  }
}

/* The reference: a plain prepared-statement loop, one transaction per 64-row batch, into the
 * items table of a store created by frl_store_open (so the schema is identical). */
static double raw_sqlite_rate(const char *dir, double seconds) {
  char path[512];
  snprintf(path, sizeof path, "%s/raw.db", dir);
  frl_store_config_t sc = {.path = path, .obs_dim = OBS, .act_dim = 1, .discrete = true};
  frl_store_t *st = NULL;
  if (frl_store_open(&st, &sc) != 0) return 0;
  frl_store_close(&st);
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL, NULL);
  sqlite3_stmt *ins;
  sqlite3_prepare_v2(db,
                     "INSERT INTO items(item_id, actor_id, batch_seq, inserted_at, policy_version,"
                     " priority, times_sampled, action, reward, discount, obs, next_obs) "
                     "VALUES(?,?,?,?,?,?,0,?,?,?,?,?)",
                     -1, &ins, NULL);
  float obs[BATCH * OBS], next[BATCH * OBS], rew[BATCH], disc[BATCH], prio[BATCH];
  int32_t act[BATCH];
  fill_batch(obs, next, act, rew, disc, prio, 1);
  double t0 = frl_now();
  uint64_t rows = 0, id = 1;
  while (frl_now() - t0 < seconds) {
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int i = 0; i < BATCH; i++, id++) {
      sqlite3_bind_int64(ins, 1, (sqlite3_int64)id);
      sqlite3_bind_int64(ins, 2, 1);
      sqlite3_bind_int64(ins, 3, (sqlite3_int64)(id / BATCH));
      sqlite3_bind_double(ins, 4, 1.7e9);
      sqlite3_bind_int64(ins, 5, 1);
      sqlite3_bind_double(ins, 6, prio[i]);
      sqlite3_bind_int(ins, 7, act[i]);
      sqlite3_bind_double(ins, 8, rew[i]);
      sqlite3_bind_double(ins, 9, disc[i]);
      sqlite3_bind_blob(ins, 10, obs + i * OBS, OBS * 4, SQLITE_STATIC);
      sqlite3_bind_blob(ins, 11, next + i * OBS, OBS * 4, SQLITE_STATIC);
      sqlite3_step(ins);
      sqlite3_reset(ins);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    rows += BATCH;
  }
  double rate = (double)rows / (frl_now() - t0);
  sqlite3_finalize(ins);
  sqlite3_close(db);
  return rate;
}

typedef struct {
  void *sock;
  char name[32];
  uint64_t next_seq, inflight;
  bool welcomed;
} gen_t;

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 5.0;
  int n_actors = argc > 2 ? atoi(argv[2]) : 4;
  if (seconds <= 0 || n_actors < 1 || n_actors > 256) {
    fprintf(stderr, "usage: bench_ingest [seconds > 0] [actors 1..256]\n");
    return 2;
  }
  const char *bin = getenv("FLEETRL_BIN") ? getenv("FLEETRL_BIN") : "build/fleetrl";
  char dir[] = "/tmp/fleetrl-bench-ingest-XXXXXX";
  if (!mkdtemp(dir)) return 1;

  double raw = raw_sqlite_rate(dir, seconds);

  char epfile[600], epflag[700], rundir[700], blog[600], llog[600];
  snprintf(epfile, sizeof epfile, "%s/endpoints", dir);
  snprintf(epflag, sizeof epflag, "--endpoints-file=%s", epfile);
  snprintf(rundir, sizeof rundir, "--run-dir=%s/run", dir);
  snprintf(blog, sizeof blog, "%s/broker.log", dir);
  snprintf(llog, sizeof llog, "%s/learner.log", dir);
  char *bargv[] = {(char *)bin, "broker", "--actor-endpoint=tcp://127.0.0.1:*",
                   "--learner-endpoint=tcp://127.0.0.1:*", epflag, "--queue=1024",
                   /* the load actors are one sender each at full rate: no per-actor limits */
                   "--actor-rate-batches=0", "--actor-rate-bytes=0", NULL};
  pid_t broker = spawn(bargv, blog);
  char front[400] = "", back[400] = "";
  double deadline = frl_now() + 10;
  while ((!front[0] || !back[0]) && frl_now() < deadline) {
    FILE *f = fopen(epfile, "r");
    if (f) {
      char line[400];
      while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "actor_endpoint=", 15)) snprintf(front, sizeof front, "%s", line + 15);
        if (!strncmp(line, "learner_endpoint=", 17)) snprintf(back, sizeof back, "%s", line + 17);
      }
      fclose(f);
    }
    usleep(20000);
  }
  if (!front[0]) {
    fprintf(stderr, "bench_ingest: the broker did not start (see %s)\n", blog);
    kill(broker, SIGKILL);
    return 1;
  }
  char lep[440];
  snprintf(lep, sizeof lep, "--learner-endpoint=%s", back);
  /* Ingest only: training never starts (min replay above anything we send), no evaluation. */
  char *largv[] = {(char *)bin, "learner", lep, rundir, "--no-progress", "--min-replay=100000000",
                   "--capacity=4000000", "--max-env-steps=1000000000000", "--credit=64",
                   "--eval-period=1000000000000", "--batch-transitions=64", NULL};
  pid_t learner = spawn(largv, llog);

  void *ctx = zmq_ctx_new();
  frl_fb_builder_t *fb = frl_fb_builder_new(1 << 16);
  frl_inbox_t in;
  frl_inbox_init(&in);
  gen_t *g = frl_xcalloc((size_t)n_actors, sizeof *g);
  for (int i = 0; i < n_actors; i++) {
    snprintf(g[i].name, sizeof g[i].name, "bench-%d", i);
    g[i].sock = frl_socket_dealer(ctx, front, g[i].name);
    g[i].next_seq = 1;
    frl_send_hello(g[i].sock, fb, FRL_ROLE_ACTOR, g[i].name, "cartpole-dqn", i, n_actors, OBS, 1);
  }
  float obs[BATCH * OBS], next[BATCH * OBS], rew[BATCH], disc[BATCH], prio[BATCH];
  int32_t act[BATCH];
  uint64_t ver[BATCH] = {0};
  fill_batch(obs, next, act, rew, disc, prio, 2);
  frl_experience_t x = {.count = BATCH, .obs_dim = OBS, .act_dim = 1, .obs = obs,
                        .action_index = act, .n_action_index = BATCH, .reward = rew,
                        .discount = disc, .next_obs = next, .priority = prio,
                        .n_priority = BATCH, .policy_version = ver, .n_policy_version = BATCH,
                        .env_steps = BATCH};
  uint64_t acked = 0, busy = 0, warm_acked = 0;
  double t_start = frl_now(), t_measure = t_start + 1.0, t_end = t_measure + seconds;
  zmq_pollitem_t *items = frl_xcalloc((size_t)n_actors, sizeof *items);
  for (int i = 0; i < n_actors; i++) items[i] = (zmq_pollitem_t){g[i].sock, 0, ZMQ_POLLIN, 0};
  bool welcomed_all = false;
  int welcomed = 0;
  double connect_deadline = frl_now() + 20;
  double last_hello = frl_now();
  while (frl_now() < t_end) {
    if (!welcomed_all && frl_now() > connect_deadline) {
      fprintf(stderr, "bench_ingest: actors not welcomed (see %s)\n", blog);
      break;
    }
    /* Like an actor: a Hello sent before the connection exists is not queued, so repeat it. */
    if (!welcomed_all && frl_now() - last_hello > 0.2) {
      for (int i = 0; i < n_actors; i++)
        if (!g[i].welcomed)
          frl_send_hello(g[i].sock, fb, FRL_ROLE_ACTOR, g[i].name, "cartpole-dqn", i, n_actors,
                         OBS, 1);
      last_hello = frl_now();
    }
    for (int i = 0; i < n_actors && welcomed_all; i++) {
      while (g[i].inflight < WINDOW) {
        x.actor = g[i].name;
        x.seq = g[i].next_seq++;
        frl_msg_encode_experience(fb, &x);
        if (frl_send(g[i].sock, NULL, 0, fb) != 0) break;
        g[i].inflight++;
      }
    }
    zmq_poll(items, n_actors, 5);
    for (int i = 0; i < n_actors; i++) {
      while (frl_recv(g[i].sock, false, &in) == 1) {
        if (in.msg.type == FRL_MSG_WELCOME && in.msg.u.welcome.ok && !g[i].welcomed) {
          g[i].welcomed = true;
          if (++welcomed == n_actors) {
            welcomed_all = true;
            t_measure = frl_now() + 1.0;
            t_end = t_measure + seconds;
          }
        } else if (in.msg.type == FRL_MSG_ACK) {
          g[i].inflight--;
          if (in.msg.u.ack.status == FRL_ACK_OK) {
            acked += BATCH;
            if (frl_now() < t_measure) warm_acked = acked;
          } else {
            busy++;
          }
        }
      }
    }
  }
  double e2e = (double)(acked - warm_acked) / seconds;
  printf("ingest, CartPole-size transitions (obs %d, %d per batch), %d load actors, %.0f s:\n", OBS,
         BATCH, n_actors, seconds);
  printf("  raw batched SQLite insert (reference):   %10.0f transitions/s\n", raw);
  printf("  actors -> broker -> learner -> SQLite:   %10.0f transitions/s  (%.0f%% of raw; %llu "
         "busy refusals)\n",
         e2e, raw > 0 ? 100.0 * e2e / raw : 0.0, (unsigned long long)busy);
  printf("  goals: >= 200000 transitions/s and >= 45%% of raw\n");
  for (int i = 0; i < n_actors; i++) zmq_close(g[i].sock);
  free(items);
  free(g);
  frl_inbox_free(&in);
  frl_fb_builder_destroy(&fb);
  zmq_ctx_term(ctx);
  kill(learner, SIGTERM);
  waitpid(learner, NULL, 0);
  kill(broker, SIGTERM);
  waitpid(broker, NULL, 0);
  char cmd[700];
  if (getenv("BENCH_KEEP")) { fprintf(stderr, "kept %s\n", dir); return 0; }
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return 0;
}
