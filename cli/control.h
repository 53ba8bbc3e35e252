/* control.h: operator commands sent through the broker to every actor and the learner:
 * `fleetrl estop`, `fleetrl resume`, `fleetrl set-spi`. */
#ifndef FRL_CONTROL_H
#define FRL_CONTROL_H

#include "config.h"
#include "msg.h"

/* Connects to the broker's actor endpoint as an operator, sends one Control and waits for the
 * broker's confirmation, all within --connect-timeout. Returns a process exit code: 0 sent and
 * confirmed, 2 refused, 3 no broker. */
int frl_control_main(const frl_config_t *cfg, frl_control_cmd_t command, const char *reason,
                     double value);

#endif
