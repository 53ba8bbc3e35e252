/* test_outbox.c: the actor's resend outbox: bounds by count and bytes, ack, seq order, resend
 * timing with explicit clock values, defer and mark_all_unsent, and a randomized comparison with
 * a brute-force model. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "common.h"
#include "outbox.h"
#include "rng.h"

/* Pops the next due batch and checks its seq and that its bytes are the pattern for that seq. */
static void expect_due(frl_outbox_t *o, double now, double timeout, uint64_t want_seq) {
  uint64_t seq = 0;
  const void *buf = NULL;
  size_t len = 0;
  assert_int_equal(frl_outbox_next_due(o, now, timeout, &seq, &buf, &len), 0);
  assert_int_equal(seq, want_seq);
  assert_int_equal(len, 8);
  uint64_t v;
  memcpy(&v, buf, 8);
  assert_int_equal(v, want_seq * 1000003u);
}

static void expect_none_due(frl_outbox_t *o, double now, double timeout) {
  uint64_t seq = 77;
  const void *buf = (const void *)0x1;
  size_t len = 99;
  assert_int_equal(frl_outbox_next_due(o, now, timeout, &seq, &buf, &len), FRL_ENOTFOUND);
  assert_int_equal(seq, 77); /* outputs untouched */
  assert_int_equal(len, 99);
}

static int push8(frl_outbox_t *o, uint64_t seq) {
  uint64_t v = seq * 1000003u;
  return frl_outbox_push(o, seq, &v, sizeof v);
}

static void test_new_and_bounds_by_count(void **unused) {
  assert_null(frl_outbox_new(0, 100));
  assert_null(frl_outbox_new(FRL_OUTBOX_MAX_BATCHES + 1, 100));
  assert_null(frl_outbox_new(4, 0));

  frl_outbox_t *o = frl_outbox_new(4, 1000);
  assert_non_null(o);
  assert_int_equal(frl_outbox_capacity(o), 4);
  assert_int_equal(frl_outbox_depth(o), 0);
  assert_int_equal(frl_outbox_bytes(o), 0);
  expect_none_due(o, 0, 1);
  for (uint64_t s = 1; s <= 4; s++) assert_int_equal(push8(o, s), 0);
  assert_int_equal(frl_outbox_depth(o), 4);
  assert_int_equal(frl_outbox_bytes(o), 32);
  assert_int_equal(push8(o, 5), FRL_EFULL);
  assert_int_equal(frl_outbox_depth(o), 4);
  assert_int_equal(frl_outbox_bytes(o), 32);
  assert_int_equal(frl_outbox_ack(o, 2), 0);
  assert_int_equal(push8(o, 5), 0);
  assert_int_equal(push8(o, 6), FRL_EFULL);
  /* Everything held comes out in seq order; the refused 6 is not among them. */
  const uint64_t held[] = {1, 3, 4, 5};
  for (size_t i = 0; i < FRL_ARRAY_LEN(held); i++) expect_due(o, 0, 1, held[i]);
  expect_none_due(o, 0, 1);
  assert_int_equal(frl_outbox_ack(o, 6), FRL_ENOTFOUND);
  frl_outbox_destroy(&o);
  assert_null(o);
  frl_outbox_destroy(&o);
  frl_outbox_destroy(NULL);
}

static void test_bounds_by_bytes(void **unused) {
  static unsigned char big[200];
  memset(big, 0xab, sizeof big);
  frl_outbox_t *o = frl_outbox_new(10, 100);
  assert_int_equal(frl_outbox_push(o, 1, big, 101), FRL_EFULL); /* never fits */
  assert_int_equal(frl_outbox_depth(o), 0);
  assert_int_equal(frl_outbox_push(o, 1, big, 60), 0);
  assert_int_equal(frl_outbox_push(o, 2, big, 50), FRL_EFULL);
  assert_int_equal(frl_outbox_depth(o), 1);
  assert_int_equal(frl_outbox_bytes(o), 60);
  assert_int_equal(frl_outbox_push(o, 2, big, 40), 0); /* exactly at the bound */
  assert_int_equal(frl_outbox_bytes(o), 100);
  assert_int_equal(frl_outbox_push(o, 3, big, 1), FRL_EFULL);
  assert_int_equal(frl_outbox_push(o, 3, NULL, 0), 0); /* an empty batch costs only a slot */
  assert_int_equal(frl_outbox_depth(o), 3);
  assert_int_equal(frl_outbox_ack(o, 1), 0);
  assert_int_equal(frl_outbox_bytes(o), 40);
  assert_int_equal(frl_outbox_push(o, 4, big, 60), 0);
  assert_int_equal(frl_outbox_bytes(o), 100);
  assert_int_equal(frl_outbox_depth(o), 3);
  frl_outbox_destroy(&o);
}

static void test_copy_duplicate_and_order(void **unused) {
  frl_outbox_t *o = frl_outbox_new(16, 1 << 20);
  /* The payload is copied: changing the caller's buffer afterwards changes nothing. */
  char msg[16] = "hello, learner";
  assert_int_equal(frl_outbox_push(o, 100, msg, sizeof msg), 0);
  memset(msg, 'x', sizeof msg);
  uint64_t seq;
  const void *buf;
  size_t len;
  assert_int_equal(frl_outbox_next_due(o, 0, 1, &seq, &buf, &len), 0);
  assert_int_equal(seq, 100);
  assert_int_equal(len, 16);
  assert_string_equal((const char *)buf, "hello, learner");
  assert_int_equal(frl_outbox_ack(o, 100), 0);

  /* Out-of-order pushes still come out oldest (lowest seq) first; duplicates are refused. */
  const uint64_t pushed[] = {5, 3, 9, 1, 7};
  for (size_t i = 0; i < FRL_ARRAY_LEN(pushed); i++) assert_int_equal(push8(o, pushed[i]), 0);
  assert_int_equal(push8(o, 3), FRL_EUSAGE);
  assert_int_equal(push8(o, 9), FRL_EUSAGE);
  assert_int_equal(frl_outbox_depth(o), 5);
  assert_int_equal(frl_outbox_bytes(o), 40);

  /* Ack in the middle, at the ends, unknown and twice. */
  assert_int_equal(frl_outbox_ack(o, 5), 0);
  assert_int_equal(frl_outbox_ack(o, 5), FRL_ENOTFOUND);
  assert_int_equal(frl_outbox_ack(o, 42), FRL_ENOTFOUND);
  assert_int_equal(frl_outbox_ack(o, 0), FRL_ENOTFOUND);
  assert_int_equal(frl_outbox_ack(o, 1), 0);
  assert_int_equal(frl_outbox_depth(o), 3);
  assert_int_equal(frl_outbox_bytes(o), 24);
  expect_due(o, 0, 1, 3);
  expect_due(o, 0, 1, 7);
  expect_due(o, 0, 1, 9);
  expect_none_due(o, 0, 1);
  assert_int_equal(frl_outbox_ack(o, 9), 0);
  assert_int_equal(push8(o, 8), 0); /* below the newest held */
  expect_due(o, 0, 1, 8);
  frl_outbox_destroy(&o); /* frees what is still held */
}

static void test_resend_timing(void **unused) {
  frl_outbox_t *o = frl_outbox_new(16, 1 << 20);
  const double timeout = 1.0;
  for (uint64_t s = 1; s <= 3; s++) assert_int_equal(push8(o, s), 0);
  /* First sends at t = 10. */
  expect_due(o, 10.0, timeout, 1);
  expect_due(o, 10.0, timeout, 2);
  expect_due(o, 10.0, timeout, 3);
  expect_none_due(o, 10.0, timeout);
  expect_none_due(o, 10.5, timeout);
  expect_none_due(o, 10.999, timeout);
  /* Deferring 2 at 10.8 pushes its resend to 11.8. */
  frl_outbox_defer(o, 2, 10.8);
  frl_outbox_defer(o, 99, 10.8); /* unknown: no effect */
  /* Due exactly at sent_at + timeout, oldest first. */
  expect_due(o, 11.0, timeout, 1);
  expect_due(o, 11.0, timeout, 3);
  expect_none_due(o, 11.0, timeout);
  /* A new batch is due at once, ahead of nothing older that is due. */
  assert_int_equal(push8(o, 4), 0);
  expect_due(o, 11.2, timeout, 4);
  expect_none_due(o, 11.2, timeout);
  expect_none_due(o, 11.7, timeout);
  expect_due(o, 11.8, timeout, 2);
  expect_none_due(o, 11.8, timeout);
  /* 1 and 3 were resent at 11.0, so at 12.05 both are due again, in seq order. */
  expect_due(o, 12.05, timeout, 1);
  expect_due(o, 12.05, timeout, 3);
  expect_none_due(o, 12.05, timeout);
  /* Acked batches are never resent. */
  assert_int_equal(frl_outbox_ack(o, 1), 0);
  expect_due(o, 12.3, timeout, 4);
  expect_none_due(o, 12.3, timeout);
  /* After a reconnect everything is due at once, whatever its last send time. */
  frl_outbox_mark_all_unsent(o);
  expect_due(o, 12.31, timeout, 2);
  expect_due(o, 12.31, timeout, 3);
  expect_due(o, 12.31, timeout, 4);
  expect_none_due(o, 12.31, timeout);
  /* Deferring a never-sent batch counts as a send. */
  assert_int_equal(push8(o, 5), 0);
  frl_outbox_defer(o, 5, 12.4);
  expect_none_due(o, 12.5, timeout);
  expect_due(o, 13.4, timeout, 2);
  expect_due(o, 13.4, timeout, 3);
  expect_due(o, 13.4, timeout, 4);
  expect_due(o, 13.4, timeout, 5);
  /* Timeout 0: everything is due at every call. */
  expect_due(o, 13.4, 0.0, 2);
  frl_outbox_destroy(&o);
}

/* Brute-force model: an unsorted list scanned in full for every question. */
typedef struct {
  uint64_t seq;
  size_t len;
  bool sent;
  double sent_at;
} model_item_t;

static void test_against_model(void **unused) {
  enum { CAP = 32, MAX_BYTES = 2000, OPS = 20000 };
  frl_outbox_t *o = frl_outbox_new(CAP, MAX_BYTES);
  model_item_t m[CAP];
  int mn = 0;
  size_t mbytes = 0;
  frl_rng_t rng;
  frl_rng_seed(&rng, 99);
  unsigned char payload[300];
  double now = 0;
  const double timeout = 0.5;
  uint64_t next_seq = 1;
  for (int op = 0; op < OPS; op++) {
    now += 0.05 * frl_rng_uniform(&rng);
    uint32_t kind = frl_rng_below(&rng, 100);
    if (kind < 35) {
      /* push, mostly new increasing seqs, sometimes an old or a duplicate one */
      uint64_t seq = frl_rng_below(&rng, 10) == 0 ? 1 + frl_rng_below(&rng, (uint32_t)next_seq)
                                                  : next_seq++;
      size_t len = frl_rng_below(&rng, 300);
      memset(payload, (int)(seq & 0xff), len);
      bool dup = false;
      for (int i = 0; i < mn; i++) dup |= m[i].seq == seq;
      int want = mn >= CAP || mbytes + len > MAX_BYTES ? FRL_EFULL : dup ? FRL_EUSAGE : 0;
      assert_int_equal(frl_outbox_push(o, seq, payload, len), want);
      if (want == 0) {
        m[mn++] = (model_item_t){seq, len, false, 0};
        mbytes += len;
      }
    } else if (kind < 60) {
      /* ack, sometimes unknown */
      uint64_t seq = mn > 0 && frl_rng_below(&rng, 4) != 0 ? m[frl_rng_below(&rng, (uint32_t)mn)].seq
                                                           : 1 + frl_rng_below(&rng, (uint32_t)next_seq);
      int at = -1;
      for (int i = 0; i < mn; i++)
        if (m[i].seq == seq) at = i;
      assert_int_equal(frl_outbox_ack(o, seq), at >= 0 ? 0 : FRL_ENOTFOUND);
      if (at >= 0) {
        mbytes -= m[at].len;
        m[at] = m[--mn];
      }
    } else if (kind < 93) {
      int best = -1;
      for (int i = 0; i < mn; i++)
        if ((!m[i].sent || m[i].sent_at <= now - timeout) && (best < 0 || m[i].seq < m[best].seq))
          best = i;
      uint64_t seq;
      const void *buf;
      size_t len;
      int rc = frl_outbox_next_due(o, now, timeout, &seq, &buf, &len);
      if (best < 0) {
        assert_int_equal(rc, FRL_ENOTFOUND);
      } else {
        assert_int_equal(rc, 0);
        assert_int_equal(seq, m[best].seq);
        assert_int_equal(len, m[best].len);
        for (size_t i = 0; i < len; i++)
          assert_int_equal(((const unsigned char *)buf)[i], seq & 0xff);
        m[best].sent = true;
        m[best].sent_at = now;
      }
    } else if (kind < 98) {
      if (mn > 0) {
        int i = (int)frl_rng_below(&rng, (uint32_t)mn);
        frl_outbox_defer(o, m[i].seq, now);
        m[i].sent = true;
        m[i].sent_at = now;
      }
    } else {
      frl_outbox_mark_all_unsent(o);
      for (int i = 0; i < mn; i++) m[i].sent = false;
    }
    assert_int_equal(frl_outbox_depth(o), mn);
    assert_int_equal(frl_outbox_bytes(o), mbytes);
  }
  frl_outbox_destroy(&o);
}

/* A Busy ack retries after FRL_OUTBOX_BUSY_RETRY_S, not after the lost-message timeout; with a
 * timeout shorter than that, after the timeout. */
static void test_busy_retry(void **state) {
  (void)state;
  frl_outbox_t *o = frl_outbox_new(16, 1 << 20);
  assert_int_equal(push8(o, 1), 0);
  expect_due(o, 10.0, 2.0, 1);
  frl_outbox_busy(o, 1, 10.1, 2.0);
  expect_none_due(o, 10.1 + FRL_OUTBOX_BUSY_RETRY_S - 0.01, 2.0);
  expect_due(o, 10.1 + FRL_OUTBOX_BUSY_RETRY_S, 2.0, 1);
  frl_outbox_busy(o, 1, 20.0, 0.1);
  expect_none_due(o, 20.09, 0.1);
  expect_due(o, 20.1, 0.1, 1);
  frl_outbox_busy(o, 42, 20.0, 2.0); /* unknown: no effect */
  frl_outbox_destroy(&o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_busy_retry),
      cmocka_unit_test(test_new_and_bounds_by_count),
      cmocka_unit_test(test_bounds_by_bytes),
      cmocka_unit_test(test_copy_duplicate_and_order),
      cmocka_unit_test(test_resend_timing),
      cmocka_unit_test(test_against_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
