/* fb.h: a minimal FlatBuffers binary-format builder and verifier primitives.
 * Knows the wire format (little-endian, back-to-front building, vtables, uoffsets, unions,
 * file identifiers, alignment) but no particular schema; schema/msg.c uses it for ours.
 *
 * Format summary (the FlatBuffers "internals" document): a buffer starts with a uoffset (u32)
 * to the root table, optionally followed by a 4-byte file identifier. A table starts with an
 * soffset (i32) such that vtable = table - soffset; the vtable is u16 [vtable bytes, table
 * bytes, field offsets...], a zero field offset meaning "absent, use the default". Offsets to
 * strings, vectors and sub-tables are u32 relative to where they are stored and point forward.
 * Strings and vectors are a u32 length followed by the elements (strings add a NUL). Every
 * scalar is aligned to its size relative to the buffer start. */
#ifndef FRL_FB_H
#define FRL_FB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The format's own ceiling: offsets are 32-bit and must also fit a signed soffset. */
#define FRL_FB_MAX_SIZE 0x7fffffffu
/* Highest field id a table may use with this builder (ids are 0-based slot numbers). */
#define FRL_FB_MAX_FIELDS 64u

/* ---- builder -------------------------------------------------------------------------------- */

/* A reusable builder: frl_fb_builder_reset() keeps its memory so steady-state encoding does
 * not allocate. Internals are the implementer's; callers use the functions below. */
typedef struct frl_fb_builder frl_fb_builder_t;

/* A reference to an object already in the builder (a string, vector or table), to be stored
 * later as an offset. 0 never names a valid object. */
typedef uint32_t frl_fb_ref_t;

/* Creates a builder with room for initial_capacity bytes (grown as needed). Never NULL. */
frl_fb_builder_t *frl_fb_builder_new(size_t initial_capacity);
/* Frees the builder and sets *self_p to NULL; accepts NULL and *self_p == NULL. */
void frl_fb_builder_destroy(frl_fb_builder_t **self_p);
/* Empties the builder for a new buffer, keeping its memory, its size limit and dedup switch. */
void frl_fb_builder_reset(frl_fb_builder_t *b);
/* The finished buffer (valid until the next reset/build); its start is 8-byte aligned.
 * Returns NULL and *len = 0 when no buffer has been finished since the last reset. */
const void *frl_fb_builder_data(const frl_fb_builder_t *b, size_t *len);

/* Caps the buffer size (default and maximum FRL_FB_MAX_SIZE). A build that would grow past it
 * fails with -EMSGSIZE before allocating; the cap survives resets. */
void frl_fb_builder_set_max_size(frl_fb_builder_t *b, size_t max_size);
/* Vtable deduplication (default on): a table whose vtable equals one already written refers
 * to that one instead of writing a copy, as the reference builders do. */
void frl_fb_builder_set_dedup(frl_fb_builder_t *b, bool on);

/* Errors are sticky: after the first failure (-EMSGSIZE) every later call is a no-op and the
 * error is returned again by every int-returning call, finally by frl_fb_finish(). */
int frl_fb_builder_error(const frl_fb_builder_t *b);

/* Strings and vectors must be created while no table is open (the format forbids nesting).
 * Each returns 0 and the object's reference in *out, or the builder's sticky error. */

/* A string of len bytes (need not be NUL-terminated in s; a terminator is written). */
int frl_fb_create_string(frl_fb_builder_t *b, const char *s, size_t len, frl_fb_ref_t *out);
/* A vector of count scalars of elem_size (1, 2, 4 or 8) bytes each, copied from elems as
 * little-endian values; the elements are aligned to elem_size (and the length to 4). */
int frl_fb_create_vector(frl_fb_builder_t *b, const void *elems, size_t count, size_t elem_size,
                         frl_fb_ref_t *out);
/* A vector of offsets to already-built objects (tables or strings), refs[0] first. */
int frl_fb_create_ref_vector(frl_fb_builder_t *b, const frl_fb_ref_t *refs, size_t count,
                             frl_fb_ref_t *out);

/* Tables: start, add fields (any order; adding larger scalars first packs tightest), end.
 * A scalar equal to its default is not written, as in the reference builders; readers then
 * see the default. field is the slot id: the declaration index in the schema, a union field
 * taking two ids (its _type byte, then the offset). Adding the same field twice is a bug. */
void frl_fb_table_start(frl_fb_builder_t *b);
void frl_fb_add_u8(frl_fb_builder_t *b, unsigned field, uint8_t v, uint8_t def);
void frl_fb_add_bool(frl_fb_builder_t *b, unsigned field, bool v, bool def);
void frl_fb_add_u16(frl_fb_builder_t *b, unsigned field, uint16_t v, uint16_t def);
void frl_fb_add_i32(frl_fb_builder_t *b, unsigned field, int32_t v, int32_t def);
void frl_fb_add_u32(frl_fb_builder_t *b, unsigned field, uint32_t v, uint32_t def);
void frl_fb_add_u64(frl_fb_builder_t *b, unsigned field, uint64_t v, uint64_t def);
/* Floats compare bitwise with the default, so -0.0 and NaN payloads survive. */
void frl_fb_add_f32(frl_fb_builder_t *b, unsigned field, float v, float def);
void frl_fb_add_f64(frl_fb_builder_t *b, unsigned field, double v, double def);
/* An offset field to ref (a string, vector or table built earlier); ref 0 adds nothing. */
void frl_fb_add_ref(frl_fb_builder_t *b, unsigned field, frl_fb_ref_t ref);
/* Closes the open table: writes its vtable (or reuses an equal one). */
int frl_fb_table_end(frl_fb_builder_t *b, frl_fb_ref_t *out);

/* Completes the buffer: root offset to root, then the 4-byte file identifier when ident is
 * not NULL, the whole padded so the start is 8-byte aligned. Returns 0 or the sticky error;
 * on success frl_fb_builder_data() returns the buffer. */
int frl_fb_finish(frl_fb_builder_t *b, frl_fb_ref_t root, const char *ident);

/* ---- verifier ------------------------------------------------------------------------------- */

/* State for verifying one untrusted buffer. Fill with frl_fb_verifier_init. A failing call
 * writes "name: reason" into err (when err is not NULL) and returns FRL_EPROTO; the reasons
 * name the bound that was broken. */
typedef struct {
  const uint8_t *buf;
  size_t len;
  uint32_t max_depth;  /* deepest table nesting accepted (the root is depth 1) */
  uint32_t max_tables; /* tables visited in total, against offset sharing amplification */
  uint32_t tables;
  char *err;
  size_t errlen;
} frl_fb_verifier_t;

/* A verified table: where it and its vtable are, their sizes, its offset in the buffer. */
typedef struct {
  const uint8_t *table, *vtable;
  uint32_t pos;
  uint16_t vt_size, size;
  uint32_t depth;
} frl_fb_table_t;

/* Prepares v for buf/len. It does not read the buffer. */
void frl_fb_verifier_init(frl_fb_verifier_t *v, const void *buf, size_t len, uint32_t max_depth,
                          uint32_t max_tables, char *err, size_t errlen);
/* Writes a formatted reason into v->err and returns FRL_EPROTO (for schema-level checks). */
int frl_fb_fail(frl_fb_verifier_t *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Checks the buffer's start is 8-byte aligned, its size fits the format, the file identifier
 * (when ident is not NULL) matches, then verifies the root table into *root. name labels
 * errors ("Message"). */
int frl_fb_verify_root(frl_fb_verifier_t *v, const char *ident, const char *name,
                       frl_fb_table_t *root);

/* Scalar fields: verifies that the field, when present, lies inside its table and is aligned,
 * then copies its size bytes into out; an absent field leaves out untouched (preset it to the
 * default). name labels errors ("Hello.obs_dim"). */
int frl_fb_get_scalar(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field, size_t size,
                      const char *name, void *out);

/* String field: on success *s and *len point into the buffer (ptr[len] == '\0' verified), or are
 * NULL/0 when the field is absent. Refuses strings longer than max_len bytes and, when
 * no_nul is set, strings with an embedded NUL (so callers may treat them as C strings). */
int frl_fb_get_string(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                      uint32_t max_len, bool no_nul, const char *name, const char **s,
                      uint32_t *len);

/* Scalar vector field of elem_size-byte elements: verifies the length word, the bound
 * (count <= max_count), that the elements lie in the buffer and are aligned to elem_size.
 * *data and *count point into the buffer, or are NULL/0 when absent or empty. */
int frl_fb_get_vector(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                      size_t elem_size, uint32_t max_count, const char *name, const void **data,
                      uint32_t *count);

/* Sub-table field: *present says whether the field exists; if so *sub is the verified table. */
int frl_fb_get_table(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                     const char *name, frl_fb_table_t *sub, bool *present);

/* Vector of tables: verifies the vector and every element table (each counted against
 * max_tables). *elems and *count as for frl_fb_get_vector (elems are the stored offsets). Element
 * tables are then read with frl_fb_vector_table(); each_ok, when not NULL, is called with
 * every verified element table to check its fields and may fail the whole vector. */
int frl_fb_get_table_vector(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                            uint32_t max_count, const char *name,
                            int (*each_ok)(frl_fb_verifier_t *v, const frl_fb_table_t *elem,
                                           void *arg),
                            void *arg, const void **elems, uint32_t *count);

/* ---- readers for tables already verified ---------------------------------------------------- */

/* Element i of a table vector verified by frl_fb_get_table_vector (elems as it returned). */
frl_fb_table_t frl_fb_vector_table(const void *elems, uint32_t i);
/* Offset of field in the table (0 when absent). */
uint16_t frl_fb_field_offset(const frl_fb_table_t *t, unsigned field);
/* Copies a scalar field whose bounds frl_fb_get_scalar verified; returns false when absent
 * (out untouched). */
bool frl_fb_read_scalar(const frl_fb_table_t *t, unsigned field, size_t size, void *out);
/* A string field that frl_fb_get_string verified (NUL-terminated in the buffer); NULL when
 * absent. */
const char *frl_fb_read_string(const frl_fb_table_t *t, unsigned field);

#endif
