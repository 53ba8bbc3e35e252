/* fb.h: a minimal FlatBuffers binary-format builder and verifier primitives.
 * Knows the wire format (little-endian, back-to-front building, vtables, uoffsets, unions,
 * file identifiers, alignment) but no particular schema; schema/msg.c uses it for ours. */
#ifndef FRL_FB_H
#define FRL_FB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A reusable builder: frl_fb_builder_reset() keeps its memory so steady-state encoding does
 * not allocate. Internals are the implementer's; callers use the functions below. */
typedef struct frl_fb_builder frl_fb_builder_t;

frl_fb_builder_t *frl_fb_builder_new(size_t initial_capacity);
void frl_fb_builder_destroy(frl_fb_builder_t **self_p);
void frl_fb_builder_reset(frl_fb_builder_t *b);
/* The finished buffer (valid until the next reset/build); its start is 8-byte aligned. */
const void *frl_fb_builder_data(const frl_fb_builder_t *b, size_t *len);

#endif
