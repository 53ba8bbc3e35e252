/* fuzz_broker.h: the input format of tests/fuzz/fuzz_broker.c, shared with the program that
 * writes its seed corpus (tests/fuzz/broker_seeds.c). An input is a sequence of records, each
 * one message as a peer sends it to the broker, so that inputs reach the paths that depend on
 * earlier messages (a registered actor, a learner with credit, an e-stop in force):
 *
 *   byte 0 (who)  bit 0: the endpoint (0: actors and operators, 1: the learner's);
 *                 bits 1-3: which of 8 connections (routing ids) sends it;
 *                 bits 4-5: the CURVE user id of that connection ("" or one of three keys);
 *                 bits 6-7: how far the clock moves before it (0, 0.01, 0.6 or 4 s; the
 *                 harness's peer timeout is 3 s and its batch rate 4 per second)
 *   byte 1 (how)  bits 0-1: what each send the broker makes while handling it returns (0,
 *                 FRL_EBUSY, -EHOSTUNREACH, 0), so the paths of a full or vanished peer run;
 *                 bit 2: the periodic expiry runs after it, as once per heartbeat in the broker
 *   bytes 2-3     the message's length, little-endian; then that many bytes (fewer when the
 *                 input ends first), handed to the broker as frl_recv would
 *
 * Whether a peer is an actor, an operator or a learner is up to its Hello, as on the wire. */
#ifndef FRL_FUZZ_BROKER_H
#define FRL_FUZZ_BROKER_H

#define FB_LEARNER 0x01u
#define FB_CONN(i) ((unsigned)(i) << 1)
#define FB_USER(i) ((unsigned)(i) << 4)
#define FB_CLOCK(i) ((unsigned)(i) << 6)

#define FB_SEND_BUSY 0x01u
#define FB_SEND_UNREACHABLE 0x02u
#define FB_EXPIRE 0x04u

#define FB_HEADER 4
#define FB_CONNS 8
#define FB_MAX_RECORDS 64 /* records past this are ignored: one input stays one short exchange */

#endif
