#!/bin/sh
# bench_soak.sh: the load soak (bench/soak.py): a broker, a learner and 64 CartPole actors
# on loopback, printing the memory curve of broker and learner, a boundedness verdict and the
# registry's correctness. Usage: bench/bench_soak.sh [MINUTES] (default 10, or $SOAK_MINUTES).
# FLEETRL_BIN names the binary (default build/fleetrl). Prints figures; never fails on timing.
set -u
minutes=${1:-${SOAK_MINUTES:-10}}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
exec nice -n 10 "$py" "$(dirname "$0")/soak.py" --minutes "$minutes"
