/* run.c: process supervision for `fleetrl run`. Children inherit the resolved configuration
 * through FLEETRL_* variables, log to <run>/logs/, and are stopped in order at the end. */
#include "run.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "curve.h"
#include "learner.h"
#include "log.h"

#define MAX_ACTOR_RESTARTS 20

typedef struct {
  char role[32];
  char log[700];
  pid_t pid;
  int restarts;
  char *argv[16];
  char argbuf[8][640];
} child_t;

static volatile sig_atomic_t g_signal;
static void on_signal(int sig) { g_signal = sig; }

static pid_t spawn(const char *exe, child_t *c, bool inherit_stdout) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDERR_FILENO);
      if (!inherit_stdout) dup2(fd, STDOUT_FILENO);
      close(fd);
    }
    if (!inherit_stdout) {
      int devnull = open("/dev/null", O_RDONLY);
      if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    execv(exe, c->argv);
    fprintf(stderr, "fleetrl run: cannot start %s: %s\n", exe, strerror(errno));
    _exit(127);
  }
  c->pid = pid;
  return pid;
}

static void set_args(child_t *c, const char *exe, const char *cmd, const char *const *kv) {
  int n = 0, b = 0;
  c->argv[n++] = (char *)exe;
  c->argv[n++] = (char *)cmd;
  for (int i = 0; kv[i]; i++) {
    snprintf(c->argbuf[b], sizeof c->argbuf[b], "%s", kv[i]);
    c->argv[n++] = c->argbuf[b++];
  }
  c->argv[n] = NULL;
}

/* Waits for the broker's endpoints file; returns 0 when both endpoints were read. */
static int read_endpoints(const char *path, pid_t broker, char *front, char *back, size_t n,
                          double deadline) {
  while (frl_now() < deadline) {
    FILE *f = fopen(path, "r");
    if (f) {
      char line[400];
      front[0] = back[0] = '\0';
      while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "actor_endpoint=", 15) == 0) snprintf(front, n, "%s", line + 15);
        if (strncmp(line, "learner_endpoint=", 17) == 0) snprintf(back, n, "%s", line + 17);
      }
      fclose(f);
      if (front[0] && back[0]) return 0;
    }
    int status;
    if (waitpid(broker, &status, WNOHANG) == broker) return -ECHILD;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return FRL_ETIMEDOUT;
}

static void tail_log(const char *path, int lines) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char buf[64][512];
  int n = 0;
  while (fgets(buf[n % 64], sizeof buf[0], f)) n++;
  fclose(f);
  int start = n > lines ? n - lines : 0;
  for (int i = start; i < n; i++) fprintf(stderr, "  | %s", buf[i % 64]);
}

/* The key pair DIR/NAME.key and NAME.pub, made when missing (a resumed run keeps its keys);
 * writes the public key's Z85 text. Returns 0, or an error with the reason in err. */
static int ensure_key(const char *dir, const char *name, char z85[FRL_CURVE_Z85_LEN + 1],
                      char *err, size_t errlen) {
  char path[700];
  snprintf(path, sizeof path, "%s/%s.key", dir, name);
  if (access(path, F_OK) != 0) return frl_curve_keygen(dir, name, z85, err, errlen);
  uint8_t secret[FRL_CURVE_KEY_BYTES], pub[FRL_CURVE_KEY_BYTES];
  int rc = frl_curve_load_secret(path, secret, pub, err, errlen);
  if (rc == 0) frl_curve_z85_encode(pub, z85);
  return rc;
}

/* --curve: a key pair per process in <run>/keys (broker, learner, actor-I, and ops for the
 * operator verbs) and the broker's allowlist of exactly those, written whole and renamed into
 * place. Returns 0, or 1 after logging why. */
static int make_keys(const frl_config_t *cfg, char *dir, size_t dirlen) {
  snprintf(dir, dirlen, "%s/keys", cfg->run_dir);
  char err[1000], z85[FRL_CURVE_Z85_LEN + 1], name[32], tmp[700], allow[700];
  snprintf(tmp, sizeof tmp, "%s/allow.txt.tmp", dir);
  snprintf(allow, sizeof allow, "%s/allow.txt", dir);
  if (ensure_key(dir, "broker", z85, err, sizeof err) != 0) goto fail;
  FILE *f = fopen(tmp, "w");
  if (!f) {
    snprintf(err, sizeof err, "%s: %s", tmp, strerror(errno));
    goto fail;
  }
  fprintf(f, "# the processes of run %s (fleetrl run --curve)\n", cfg->run_name);
  for (int i = -2; i < cfg->actors; i++) {
    if (i == -2) snprintf(name, sizeof name, "learner");
    else if (i == -1) snprintf(name, sizeof name, "ops");
    else snprintf(name, sizeof name, "actor-%d", i);
    if (ensure_key(dir, name, z85, err, sizeof err) != 0) {
      fclose(f);
      remove(tmp);
      goto fail;
    }
    fprintf(f, "%s %s\n", name, z85);
  }
  if (fclose(f) != 0 || rename(tmp, allow) != 0) {
    snprintf(err, sizeof err, "%s: %s", allow, strerror(errno));
    remove(tmp);
    goto fail;
  }
  return 0;
fail:
  frl_error("--curve: %s", err);
  return 1;
}

/* Sends sig to the running children, waits up to timeout_s, then SIGKILLs the rest. */
static void stop_children(child_t *cs, int n, int sig, double timeout_s) {
  for (int i = 0; i < n; i++)
    if (cs[i].pid > 0) kill(cs[i].pid, sig);
  double deadline = frl_now() + timeout_s;
  for (;;) {
    int alive = 0;
    for (int i = 0; i < n; i++) {
      if (cs[i].pid <= 0) continue;
      int status;
      if (waitpid(cs[i].pid, &status, WNOHANG) == cs[i].pid) cs[i].pid = 0;
      else alive++;
    }
    if (!alive) return;
    if (frl_now() > deadline) break;
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  for (int i = 0; i < n; i++)
    if (cs[i].pid > 0) {
      frl_warn("%s did not stop in %.0f s; killing it", cs[i].role, timeout_s);
      kill(cs[i].pid, SIGKILL);
      waitpid(cs[i].pid, NULL, 0);
      cs[i].pid = 0;
    }
}

int frl_run_main(frl_config_t *cfg, const char *exe) {
  if (cfg->run_name[0] == '\0') {
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    snprintf(cfg->run_name, sizeof cfg->run_name, "%s-%s", cfg->task, stamp);
  }
  snprintf(cfg->run_dir, sizeof cfg->run_dir, "%s/%s", cfg->runs_root, cfg->run_name);
  char logs[512];
  snprintf(logs, sizeof logs, "%s/logs", cfg->run_dir);
  int rc = frl_mkdir_p(logs);
  if (rc != 0) {
    frl_error("--runs: cannot create %s: %s", logs, frl_strerror(rc));
    return 1;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  frl_config_export(cfg);

  int n = 2 + cfg->actors;
  child_t *cs = frl_xcalloc((size_t)n, sizeof *cs);
  child_t *broker = &cs[0], *learner = &cs[1];
  char epfile[600], front[400], back[400];
  snprintf(epfile, sizeof epfile, "%s/endpoints", cfg->run_dir);
  unlink(epfile);

  /* The broker binds ephemeral loopback ports so that several runs can share a host. */
  snprintf(broker->role, sizeof broker->role, "broker");
  snprintf(broker->log, sizeof broker->log, "%s/broker.log", logs);
  char ep_flag[620];
  snprintf(ep_flag, sizeof ep_flag, "--endpoints-file=%s", epfile);
  char keys[540] = "", secret[620], allow[620], bkey[620];
  int code = 1;
  if (cfg->curve && make_keys(cfg, keys, sizeof keys) != 0) goto done;
  snprintf(secret, sizeof secret, "--curve-secret=%s/broker.key", keys);
  snprintf(allow, sizeof allow, "--allow=%s/allow.txt", keys);
  snprintf(bkey, sizeof bkey, "--broker-key=%s/broker.pub", keys);
  const char *bargs[] = {"--actor-endpoint=tcp://127.0.0.1:*", "--learner-endpoint=tcp://127.0.0.1:*",
                         ep_flag, cfg->curve ? secret : NULL, allow, NULL};
  set_args(broker, exe, "broker", bargs);
  if (spawn(exe, broker, false) < 0) {
    frl_error("cannot start the broker: %s", strerror(errno));
    goto done;
  }
  rc = read_endpoints(epfile, broker->pid, front, back, sizeof front, frl_now() + 10);
  if (rc != 0) {
    frl_error("the broker did not start (%s); its log %s ends with:",
              rc == -ECHILD ? "it exited" : "no endpoints after 10 s", broker->log);
    tail_log(broker->log, 10);
    if (rc == -ECHILD) broker->pid = 0;
    goto done;
  }

  snprintf(learner->role, sizeof learner->role, "learner");
  snprintf(learner->log, sizeof learner->log, "%s/learner.log", logs);
  char lep[440], rdir[340];
  snprintf(lep, sizeof lep, "--learner-endpoint=%s", back);
  snprintf(rdir, sizeof rdir, "--run-dir=%s", cfg->run_dir);
  char lsecret[620];
  snprintf(lsecret, sizeof lsecret, "--curve-secret=%s/learner.key", keys);
  const char *largs[] = {lep, rdir, cfg->curve ? lsecret : NULL, bkey, NULL};
  set_args(learner, exe, "learner", largs);
  if (spawn(exe, learner, true) < 0) {
    frl_error("cannot start the learner: %s", strerror(errno));
    goto done;
  }
  for (int i = 0; i < cfg->actors; i++) {
    child_t *c = &cs[2 + i];
    snprintf(c->role, sizeof c->role, "actor-%d", i);
    snprintf(c->log, sizeof c->log, "%s/actor-%d.log", logs, i);
    char aep[440], idx[32], num[32], name[64], asecret[620];
    snprintf(aep, sizeof aep, "--actor-endpoint=%s", front);
    snprintf(idx, sizeof idx, "--actor-index=%d", i);
    snprintf(num, sizeof num, "--num-actors=%d", cfg->actors);
    snprintf(name, sizeof name, "--name=actor-%d", i);
    snprintf(asecret, sizeof asecret, "--curve-secret=%s/actor-%d.key", keys, i);
    const char *aargs[] = {aep, idx, num, name, cfg->curve ? asecret : NULL, bkey, NULL};
    set_args(c, exe, "actor", aargs);
    if (spawn(exe, c, false) < 0) {
      frl_error("cannot start %s: %s", c->role, strerror(errno));
      goto done;
    }
  }
  frl_info("run %s: broker, learner and %d actors started; logs in %s", cfg->run_name,
           cfg->actors, logs);
  if (cfg->curve)
    frl_info("CURVE on: keys and allowlist in %s (operator verbs: --curve-secret %s/ops.key "
             "--broker-key %s/broker.pub)", keys, keys, keys);

  /* Supervise: the learner decides when the run is over. */
  for (;;) {
    if (g_signal) {
      frl_info("interrupted; stopping the run");
      stop_children(learner, 1, SIGTERM, 20);
      code = 130;
      break;
    }
    int status;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      struct timespec ts = {0, 50 * 1000000L};
      nanosleep(&ts, NULL);
      continue;
    }
    int i = 0;
    while (i < n && cs[i].pid != pid) i++;
    if (i == n) continue;
    cs[i].pid = 0;
    int ec = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (&cs[i] == learner) {
      code = ec;
      if (ec != FRL_LEARNER_SOLVED && ec != FRL_LEARNER_UNSOLVED) {
        frl_error("the learner exited with code %d; its log %s ends with:", ec, learner->log);
        tail_log(learner->log, 12);
      }
      break;
    }
    if (&cs[i] == broker) {
      frl_error("the broker exited with code %d; its log %s ends with:", ec, broker->log);
      tail_log(broker->log, 12);
      code = 1;
      break;
    }
    if (ec == 0) {
      /* A normal stop: the learner ended the run (Shutdown) and this actor obeyed. */
      continue;
    }
    if (ec == 2) {
      frl_error("%s was refused by the broker; its log %s ends with:", cs[i].role, cs[i].log);
      tail_log(cs[i].log, 6);
      code = 1;
      break;
    }
    if (cs[i].restarts >= MAX_ACTOR_RESTARTS) {
      frl_warn("%s exited with code %d and was restarted %d times; leaving it down", cs[i].role,
               ec, cs[i].restarts);
      continue;
    }
    /* Actors are stateless: replace a crashed one. */
    frl_warn("%s exited with code %d; starting a new one", cs[i].role, ec);
    cs[i].restarts++;
    spawn(exe, &cs[i], false);
  }
done:
  stop_children(cs + 2, n - 2, SIGTERM, 5);
  stop_children(learner, 1, SIGTERM, 20);
  stop_children(broker, 1, SIGTERM, 5);
  free(cs);
  char summary[600];
  snprintf(summary, sizeof summary, "%s/summary.json", cfg->run_dir);
  if (access(summary, R_OK) == 0) frl_info("run folder: %s (summary.json, replay.db, policy.bin)",
                                           cfg->run_dir);
  return code;
}
