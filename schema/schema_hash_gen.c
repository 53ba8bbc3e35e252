/* schema_hash_gen.c: build-time tool that prints the schema hash of a .fbs file as a C header.
 * Standalone on purpose (no project includes): it runs before the library is built.
 * Usage: schema_hash_gen schema/fleetrl.fbs > build/gen/schema_hash.h
 * The hash is FNV-1a 64 over the text with `//` comments (to end of line) and all whitespace
 * (space, tab, CR, LF) removed, so reformatting or re-commenting the schema keeps the hash and
 * any change a peer could notice on the wire changes it. frl_schema_hash_text() in msg.c is the
 * same function at run time; the codec tests check the two agree. */
#include <inttypes.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SCHEMA.fbs\n", argv[0]);
    return 2;
  }
  FILE *f = fopen(argv[1], "rb");
  if (!f) {
    perror(argv[1]);
    return 1;
  }
  uint64_t h = 0xcbf29ce484222325ULL;
  int c, prev = EOF, in_comment = 0;
  /* prev holds a '/' not yet hashed: it is hashed only once we know it does not open a comment. */
  while ((c = fgetc(f)) != EOF) {
    if (in_comment) {
      if (c == '\n') in_comment = 0;
      continue;
    }
    if (prev == '/') {
      prev = EOF;
      if (c == '/') {
        in_comment = 1;
        continue;
      }
      h = (h ^ (uint64_t)'/') * 0x100000001b3ULL;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
    if (c == '/') {
      prev = c;
      continue;
    }
    h = (h ^ (uint64_t)(unsigned char)c) * 0x100000001b3ULL;
  }
  if (prev == '/') h = (h ^ (uint64_t)'/') * 0x100000001b3ULL;
  if (ferror(f)) {
    perror(argv[1]);
    fclose(f);
    return 1;
  }
  fclose(f);
  printf("/* Generated from %s by schema_hash_gen; do not edit. */\n", argv[1]);
  printf("#define FRL_SCHEMA_HASH 0x%016" PRIx64 "ULL\n", h);
  return 0;
}
