/* test_config.c: flag parsing, environment twins, presets, precedence and range errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "config.h"

/* Parses argv for a group, capturing what was printed on the error stream. */
static int parse(frl_config_t *cfg, int groups, int argc, char **argv, char *err, size_t n) {
  FILE *e = fmemopen(err, n, "w");
  FILE *o = fopen("/dev/null", "w");
  int rc = frl_config_parse(cfg, groups, argc, argv, o, e);
  fclose(e);
  fclose(o);
  return rc;
}

static void clear_env(void) {
  unsetenv("FLEETRL_TASK");
  unsetenv("FLEETRL_LR");
  unsetenv("FLEETRL_BATCH");
  unsetenv("FLEETRL_ENV");
}

static void test_defaults_and_preset(void **state) {
  clear_env();
  frl_config_t c;
  char err[256] = "";
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 0, NULL, err, sizeof err), 0);
  assert_string_equal(c.task, "cartpole-dqn");
  assert_string_equal(c.env, "cartpole");
  assert_int_equal(c.batch, 64);
  assert_true(c.dueling);
  assert_float_equal(c.solve_return, 475, 1e-9);
  char *argv[] = {"--task", "gridworld-dqn"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 2, argv, err, sizeof err), 0);
  assert_string_equal(c.env, "gridworld");
  assert_int_equal(c.hidden1, 64);
}

static void test_precedence_flag_over_env_over_preset(void **state) {
  clear_env();
  frl_config_t c;
  char err[256] = "";
  setenv("FLEETRL_TASK", "gridworld-dqn", 1);
  setenv("FLEETRL_LR", "0.002", 1);
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 0, NULL, err, sizeof err), 0);
  assert_string_equal(c.env, "gridworld");
  assert_float_equal(c.lr, 0.002, 1e-12);
  char *argv[] = {"--lr=0.003", "--hidden1", "32", "--no-dueling"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 4, argv, err, sizeof err), 0);
  assert_float_equal(c.lr, 0.003, 1e-12);
  assert_int_equal(c.hidden1, 32);
  assert_false(c.dueling);
  clear_env();
}

static void test_errors_name_flag_and_range(void **state) {
  clear_env();
  frl_config_t c;
  char err[256] = "";
  char *a1[] = {"--learning-rate", "1"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 2, a1, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "unknown flag '--learning-rate'"));
  char *a2[] = {"--lr", "5"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 2, a2, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "--lr: 5 is outside the allowed range [1e-07, 1]"));
  char *a3[] = {"--batch", "12.5"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 2, a3, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "must be an integer"));
  char *a4[] = {"--batch"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 1, a4, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "--batch needs a value"));
  char *a5[] = {"--task", "walker"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 2, a5, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "unknown task 'walker'"));
  /* A flag of another command is unknown here. */
  char *a6[] = {"--actors", "3"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 2, a6, err, sizeof err), FRL_EUSAGE);
  setenv("FLEETRL_BATCH", "0", 1);
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 0, NULL, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "FLEETRL_BATCH: 0 is outside the allowed range [1, 65536]"));
  clear_env();
  char *a7[] = {"--dueling=maybe"};
  assert_int_equal(parse(&c, FRL_CFG_LEARNER, 1, a7, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "not a boolean"));
}

static void test_actor_name_and_index(void **state) {
  clear_env();
  frl_config_t c;
  char err[256] = "";
  char *a1[] = {"--num-actors", "8"};
  assert_int_equal(parse(&c, FRL_CFG_ACTOR, 2, a1, err, sizeof err), 0);
  assert_true(strlen(c.name) > 0);
  assert_true(c.actor_index >= 0 && c.actor_index < 8);
  char *a2[] = {"--num-actors", "2", "--actor-index", "2"};
  assert_int_equal(parse(&c, FRL_CFG_ACTOR, 4, a2, err, sizeof err), FRL_EUSAGE);
  assert_non_null(strstr(err, "must be below --num-actors 2"));
}

static void test_export_round_trip(void **state) {
  clear_env();
  frl_config_t a, b;
  char err[256] = "";
  char *argv[] = {"--lr", "0.00123", "--spi", "33", "--no-double-q", "--capacity", "777"};
  assert_int_equal(parse(&a, FRL_CFG_RUN, 7, argv, err, sizeof err), 0);
  frl_config_export(&a);
  assert_int_equal(parse(&b, FRL_CFG_LEARNER, 0, NULL, err, sizeof err), 0);
  assert_float_equal(b.lr, 0.00123, 1e-15);
  assert_float_equal(b.spi, 33, 1e-12);
  assert_false(b.double_q);
  assert_int_equal(b.capacity, 777);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_preset),
      cmocka_unit_test(test_precedence_flag_over_env_over_preset),
      cmocka_unit_test(test_errors_name_flag_and_range),
      cmocka_unit_test(test_actor_name_and_index),
      cmocka_unit_test(test_export_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
