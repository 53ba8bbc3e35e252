/* keygen.c: `fleetrl keygen NAME [--out DIR]`, the CURVE key pair of one peer: NAME.key (the
 * secret, mode 0600, stays on that host) and NAME.pub (goes into the broker's allowlist, or to
 * every peer when NAME is the broker). */
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "curve.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: fleetrl keygen NAME [--out DIR]\n\n"
          "Writes DIR/NAME.key (CURVE secret key, mode 0600) and DIR/NAME.pub (public key, Z85)\n"
          "and prints the allowlist line for the broker's --allow file on stdout (messages go to\n"
          "stderr, so `for n in a b; do fleetrl keygen $n; done > allow.txt` collects the lines).\n"
          "Existing files are never\n"
          "overwritten. NAME: 1-%d characters of A-Z a-z 0-9 . _ @ -; DIR defaults to '.'.\n",
          FRL_CURVE_NAME_MAX);
}

int frl_keygen_main(int argc, char **argv, FILE *out, FILE *err) {
  const char *name = NULL, *dir = ".";
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(out);
      return 0;
    }
    if (!strcmp(a, "--out")) {
      if (i + 1 == argc) {
        fprintf(err, "fleetrl keygen: --out needs a folder\n");
        return 2;
      }
      dir = argv[++i];
    } else if (!strncmp(a, "--out=", 6)) {
      dir = a + 6;
    } else if (a[0] == '-') {
      fprintf(err, "fleetrl keygen: unknown flag '%s' (see --help)\n", a);
      return 2;
    } else if (name) {
      fprintf(err, "fleetrl keygen: one NAME only ('%s' and '%s')\n", name, a);
      return 2;
    } else {
      name = a;
    }
  }
  if (!name) {
    usage(err);
    return 2;
  }
  if (!*dir) {
    fprintf(err, "fleetrl keygen: --out must name a folder\n");
    return 2;
  }
  char pub[FRL_CURVE_Z85_LEN + 1], msg[900];
  int rc = frl_curve_keygen(dir, name, pub, msg, sizeof msg);
  if (rc) {
    fprintf(err, "fleetrl keygen: %s\n", msg);
    return rc == FRL_EUSAGE ? 2 : 1;
  }
  /* Only the allowlist line goes to stdout, so that a loop over names can collect the lines
   * straight into an --allow file; the rest is for the person at the terminal. */
  fprintf(err,
          "wrote %s/%s.key (secret key, mode 0600: keep it on this host)\n"
          "wrote %s/%s.pub (public key)\n"
          "allowlist line for the broker's --allow file (on stdout):\n",
          dir, name, dir, name);
  fprintf(out, "%s %s\n", name, pub);
  return 0;
}
