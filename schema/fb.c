/* fb.c: FlatBuffers binary format: a back-to-front builder with vtable deduplication and a
 * bounds-checking verifier, byte-compatible with the reference implementation (flatc). */
#include "fb.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The format is little-endian and this code stores host scalars with memcpy. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "fb.c assumes a little-endian host");

/* ---- builder -------------------------------------------------------------------------------- */

typedef struct {
  uint16_t id;
  uint32_t off; /* where the field's value ends, as an offset from the buffer's end */
} fb_field_t;

/* Data grows downwards from the end of mem: the buffer built so far is mem[cap-size, cap).
 * Everything (objects, alignment) is measured as offsets from that end, because the start is
 * not known until the buffer is finished; cap stays a multiple of 8 and mem is malloc-aligned,
 * so an 8-aligned end offset is also an 8-aligned address. */
struct frl_fb_builder {
  uint8_t *mem;
  size_t cap;
  size_t size;
  size_t max_size;
  size_t minalign; /* largest alignment used: the finished size is padded to a multiple */
  int err;
  bool dedup;
  bool finished;
  bool in_table;
  uint32_t table_start; /* size when the open table started */
  uint32_t n_fields;
  fb_field_t fields[FRL_FB_MAX_FIELDS];
  uint32_t *vtables; /* end offsets of vtables written in this buffer, for deduplication */
  uint32_t n_vtables, cap_vtables;
};

frl_fb_builder_t *frl_fb_builder_new(size_t initial_capacity) {
  frl_fb_builder_t *b = frl_xcalloc(1, sizeof *b);
  b->cap = (FRL_MAX(initial_capacity, (size_t)64) + 7) & ~(size_t)7;
  b->mem = frl_xmalloc(b->cap);
  b->max_size = FRL_FB_MAX_SIZE;
  b->dedup = true;
  frl_fb_builder_reset(b);
  return b;
}

void frl_fb_builder_destroy(frl_fb_builder_t **self_p) {
  if (!self_p || !*self_p) return;
  frl_fb_builder_t *b = *self_p;
  free(b->vtables);
  free(b->mem);
  free(b);
  *self_p = NULL;
}

void frl_fb_builder_reset(frl_fb_builder_t *b) {
  b->size = 0;
  b->minalign = 1;
  b->err = 0;
  b->finished = false;
  b->in_table = false;
  b->n_fields = 0;
  b->n_vtables = 0;
}

const void *frl_fb_builder_data(const frl_fb_builder_t *b, size_t *len) {
  if (!b->finished) {
    *len = 0;
    return NULL;
  }
  *len = b->size;
  return b->mem + b->cap - b->size;
}

void frl_fb_builder_set_max_size(frl_fb_builder_t *b, size_t max_size) {
  b->max_size = FRL_MIN(max_size, (size_t)FRL_FB_MAX_SIZE);
}

void frl_fb_builder_set_dedup(frl_fb_builder_t *b, bool on) { b->dedup = on; }

int frl_fb_builder_error(const frl_fb_builder_t *b) { return b->err; }

/* Grows the memory so n more bytes fit, keeping the data at the end of the moved memory. */
static int grow(frl_fb_builder_t *b, size_t n) {
  if (b->err) return b->err;
  if (n > b->max_size - b->size) return b->err = -EMSGSIZE;
  if (b->cap - b->size >= n) return 0;
  size_t cap = b->cap;
  while (cap - b->size < n) cap *= 2;
  uint8_t *mem = frl_xmalloc(cap);
  memcpy(mem + cap - b->size, b->mem + b->cap - b->size, b->size);
  free(b->mem);
  b->mem = mem;
  b->cap = cap;
  return 0;
}

/* Makes room for n more bytes. The test is inline because it runs for every field. */
static inline int reserve(frl_fb_builder_t *b, size_t n) {
  if (!b->err && b->cap - b->size >= n && n <= b->max_size - b->size) return 0;
  return grow(b, n);
}

/* Pointer to the byte at end offset off (the first byte of an object whose offset is off). */
static inline uint8_t *at(frl_fb_builder_t *b, size_t off) { return b->mem + b->cap - off; }

/* Pads with zeros so that after writing `then` more bytes the end offset is a multiple of
 * align (a power of two), and reserves room for the padding and those bytes. */
static inline int prep(frl_fb_builder_t *b, size_t align, size_t then) {
  if (align > b->minalign) b->minalign = align;
  size_t pad = (0 - (b->size + then)) & (align - 1);
  int rc = reserve(b, pad + then);
  if (rc) return rc;
  for (size_t i = 0; i < pad; i++) *at(b, ++b->size) = 0; /* at most 7 bytes */
  return 0;
}

/* Writes n bytes below the current data (room must have been reserved). */
static inline void push(frl_fb_builder_t *b, const void *p, size_t n) {
  b->size += n;
  memcpy(at(b, b->size), p, n);
}

static inline void push_u32(frl_fb_builder_t *b, uint32_t v) { push(b, &v, 4); }

int frl_fb_create_string(frl_fb_builder_t *b, const char *s, size_t len, frl_fb_ref_t *out) {
  assert(!b->in_table);
  if (len > FRL_FB_MAX_SIZE) return b->err ? b->err : (b->err = -EMSGSIZE);
  int rc = prep(b, 4, len + 1);
  if (!rc) rc = reserve(b, len + 1 + 4);
  if (rc) return rc;
  b->size += 1;
  *at(b, b->size) = 0;
  push(b, s, len);
  push_u32(b, (uint32_t)len);
  *out = (frl_fb_ref_t)b->size;
  return 0;
}

/* Aligns for a vector of count elements of elem_size bytes aligned to align, and reserves its
 * bytes and length word. */
static int start_vector(frl_fb_builder_t *b, size_t count, size_t elem_size, size_t align) {
  assert(!b->in_table);
  if (count > FRL_FB_MAX_SIZE / elem_size) return b->err ? b->err : (b->err = -EMSGSIZE);
  size_t bytes = count * elem_size;
  int rc = prep(b, 4, bytes);
  if (!rc) rc = prep(b, align, bytes);
  if (!rc) rc = reserve(b, bytes + 4);
  return rc;
}

int frl_fb_create_vector(frl_fb_builder_t *b, const void *elems, size_t count, size_t elem_size,
                         frl_fb_ref_t *out) {
  assert(elem_size == 1 || elem_size == 2 || elem_size == 4 || elem_size == 8);
  int rc = start_vector(b, count, elem_size, elem_size);
  if (rc) return rc;
  if (count) push(b, elems, count * elem_size);
  push_u32(b, (uint32_t)count);
  *out = (frl_fb_ref_t)b->size;
  return 0;
}

int frl_fb_create_ref_vector(frl_fb_builder_t *b, const frl_fb_ref_t *refs, size_t count,
                             frl_fb_ref_t *out) {
  int rc = start_vector(b, count, 4, 4);
  if (rc) return rc;
  /* Back to front: the last element is written first; each stores the distance from its own
   * position forward to its target. */
  for (size_t i = count; i-- > 0;) {
    assert(refs[i] != 0 && refs[i] <= b->size);
    b->size += 4;
    uint32_t rel = (uint32_t)(b->size - refs[i]);
    memcpy(at(b, b->size), &rel, 4);
  }
  push_u32(b, (uint32_t)count);
  *out = (frl_fb_ref_t)b->size;
  return 0;
}

void frl_fb_table_start(frl_fb_builder_t *b) {
  assert(!b->in_table);
  b->in_table = true;
  b->n_fields = 0;
  b->table_start = (uint32_t)b->size;
}

static void add_field(frl_fb_builder_t *b, unsigned field, const void *v, size_t size) {
  assert(b->in_table && field < FRL_FB_MAX_FIELDS);
  if (prep(b, size, size)) return;
  push(b, v, size);
  assert(b->n_fields < FRL_FB_MAX_FIELDS);
  b->fields[b->n_fields].id = (uint16_t)field;
  b->fields[b->n_fields].off = (uint32_t)b->size;
  b->n_fields++;
}

void frl_fb_add_u8(frl_fb_builder_t *b, unsigned field, uint8_t v, uint8_t def) {
  if (v != def) add_field(b, field, &v, 1);
}

void frl_fb_add_bool(frl_fb_builder_t *b, unsigned field, bool v, bool def) {
  frl_fb_add_u8(b, field, v ? 1 : 0, def ? 1 : 0);
}

void frl_fb_add_u16(frl_fb_builder_t *b, unsigned field, uint16_t v, uint16_t def) {
  if (v != def) add_field(b, field, &v, 2);
}

void frl_fb_add_i32(frl_fb_builder_t *b, unsigned field, int32_t v, int32_t def) {
  if (v != def) add_field(b, field, &v, 4);
}

void frl_fb_add_u32(frl_fb_builder_t *b, unsigned field, uint32_t v, uint32_t def) {
  if (v != def) add_field(b, field, &v, 4);
}

void frl_fb_add_u64(frl_fb_builder_t *b, unsigned field, uint64_t v, uint64_t def) {
  if (v != def) add_field(b, field, &v, 8);
}

void frl_fb_add_f32(frl_fb_builder_t *b, unsigned field, float v, float def) {
  if (memcmp(&v, &def, 4) != 0) add_field(b, field, &v, 4);
}

void frl_fb_add_f64(frl_fb_builder_t *b, unsigned field, double v, double def) {
  if (memcmp(&v, &def, 8) != 0) add_field(b, field, &v, 8);
}

void frl_fb_add_ref(frl_fb_builder_t *b, unsigned field, frl_fb_ref_t ref) {
  assert(b->in_table && field < FRL_FB_MAX_FIELDS);
  if (!ref || prep(b, 4, 4)) return;
  assert(ref <= b->size);
  uint32_t rel = (uint32_t)(b->size + 4 - ref);
  add_field(b, field, &rel, 4);
}

int frl_fb_table_end(frl_fb_builder_t *b, frl_fb_ref_t *out) {
  assert(b->in_table);
  b->in_table = false;
  /* The table's soffset, patched once the vtable's position is known. */
  int32_t zero = 0;
  if (prep(b, 4, 4)) return b->err;
  push(b, &zero, 4);
  uint32_t table = (uint32_t)b->size;

  uint16_t vt[2 + FRL_FB_MAX_FIELDS];
  unsigned n_slots = 0;
  for (uint32_t i = 0; i < b->n_fields; i++)
    if (b->fields[i].id + 1u > n_slots) n_slots = b->fields[i].id + 1u;
  size_t table_bytes = table - b->table_start;
  if (table_bytes > 0xffff) return b->err = -EMSGSIZE; /* the vtable stores it in a u16 */
  vt[0] = (uint16_t)(4 + 2 * n_slots);
  vt[1] = (uint16_t)table_bytes;
  memset(vt + 2, 0, 2 * n_slots);
  for (uint32_t i = 0; i < b->n_fields; i++) {
    assert(vt[2 + b->fields[i].id] == 0 && "field added twice");
    vt[2 + b->fields[i].id] = (uint16_t)(table - b->fields[i].off);
  }

  uint32_t vt_off = 0;
  if (b->dedup) {
    for (uint32_t i = 0; i < b->n_vtables && !vt_off; i++) {
      const uint8_t *old = at(b, b->vtables[i]);
      /* Sizes first: an older, shorter vtable may end at the end of the buffer. */
      if (memcmp(old, vt, 2) == 0 && memcmp(old, vt, vt[0]) == 0) vt_off = b->vtables[i];
    }
  }
  if (!vt_off) {
    /* Straight below the table, so its soffset is positive; the soffset is 4-aligned and the
     * vtable a whole number of u16, so no padding is needed. */
    if (reserve(b, vt[0])) return b->err;
    push(b, vt, vt[0]);
    vt_off = (uint32_t)b->size;
    if (b->dedup) {
      if (b->n_vtables == b->cap_vtables) {
        b->cap_vtables = b->cap_vtables ? 2 * b->cap_vtables : 16;
        b->vtables = frl_xrealloc(b->vtables, b->cap_vtables * sizeof *b->vtables);
      }
      b->vtables[b->n_vtables++] = vt_off;
    }
  }
  /* vtable address = table address - soffset; addresses run opposite to end offsets. */
  int32_t soff = (int32_t)((int64_t)vt_off - (int64_t)table);
  memcpy(at(b, table), &soff, 4);
  *out = table;
  return 0;
}

int frl_fb_finish(frl_fb_builder_t *b, frl_fb_ref_t root, const char *ident) {
  assert(!b->in_table);
  if (b->err) return b->err;
  size_t extra = 4 + (ident ? 4 : 0);
  /* At least 8 so the start of the buffer is 8-aligned for 64-bit scalars and vectors. */
  if (prep(b, FRL_MAX(b->minalign, (size_t)8), extra)) return b->err;
  if (ident) push(b, ident, 4);
  assert(root != 0 && root <= b->size);
  push_u32(b, (uint32_t)(b->size + 4 - root));
  b->finished = true;
  return 0;
}

/* ---- verifier ------------------------------------------------------------------------------- */

static inline uint16_t rd_u16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}

static inline uint32_t rd_u32(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

static inline int32_t rd_i32(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

void frl_fb_verifier_init(frl_fb_verifier_t *v, const void *buf, size_t len, uint32_t max_depth,
                          uint32_t max_tables, char *err, size_t errlen) {
  v->buf = buf;
  v->len = len;
  v->max_depth = max_depth;
  v->max_tables = max_tables;
  v->tables = 0;
  v->err = err;
  v->errlen = errlen;
  if (err && errlen) err[0] = '\0';
}

int frl_fb_fail(frl_fb_verifier_t *v, const char *fmt, ...) {
  if (v->err && v->errlen) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err, v->errlen, fmt, ap);
    va_end(ap);
  }
  return FRL_EPROTO;
}

/* Verifies the table at pos: its soffset, vtable and inline size lie in the buffer, aligned. */
static int verify_table(frl_fb_verifier_t *v, size_t pos, uint32_t depth, const char *name,
                        frl_fb_table_t *t) {
  if (depth > v->max_depth)
    return frl_fb_fail(v, "%s: tables nested %u deep, max %u", name, depth, v->max_depth);
  if (++v->tables > v->max_tables)
    return frl_fb_fail(v, "%s: more than %u tables in the message", name, v->max_tables);
  if (pos % 4 != 0) return frl_fb_fail(v, "%s: table at %zu not 4-byte aligned", name, pos);
  if (pos > v->len || v->len - pos < 4)
    return frl_fb_fail(v, "%s: table at %zu past end of %zu-byte buffer", name, pos, v->len);
  int64_t vt = (int64_t)pos - (int64_t)rd_i32(v->buf + pos);
  if (vt < 0 || vt > (int64_t)v->len - 4)
    return frl_fb_fail(v, "%s: vtable at %lld outside %zu-byte buffer", name, (long long)vt,
                       v->len);
  if (vt % 2 != 0)
    return frl_fb_fail(v, "%s: vtable at %lld not 2-byte aligned", name, (long long)vt);
  uint16_t vt_size = rd_u16(v->buf + vt), size = rd_u16(v->buf + vt + 2);
  if (vt_size < 4 || vt_size % 2 != 0 || (uint64_t)vt + vt_size > v->len)
    return frl_fb_fail(v, "%s: vtable of %u bytes at %lld invalid for %zu-byte buffer", name,
                       vt_size, (long long)vt, v->len);
  if (size < 4 || pos + size > v->len)
    return frl_fb_fail(v, "%s: table of %u bytes at %zu invalid for %zu-byte buffer", name, size,
                       pos, v->len);
  t->table = v->buf + pos;
  t->vtable = v->buf + vt;
  t->pos = (uint32_t)pos;
  t->vt_size = vt_size;
  t->size = size;
  t->depth = depth;
  return 0;
}

int frl_fb_verify_root(frl_fb_verifier_t *v, const char *ident, const char *name,
                       frl_fb_table_t *root) {
  if ((uintptr_t)v->buf % 8 != 0)
    return frl_fb_fail(v, "%s: buffer not 8-byte aligned", name);
  if (v->len > FRL_FB_MAX_SIZE)
    return frl_fb_fail(v, "%s: %zu bytes, max %u", name, v->len, FRL_FB_MAX_SIZE);
  size_t head = ident ? 8 : 4;
  if (v->len < head)
    return frl_fb_fail(v, "%s: %zu bytes, too short for a header of %zu", name, v->len, head);
  if (ident && memcmp(v->buf + 4, ident, 4) != 0) {
    char got[20];
    const uint8_t *p = v->buf + 4;
    bool printable = true;
    for (int i = 0; i < 4; i++) printable = printable && p[i] >= 0x20 && p[i] < 0x7f;
    if (printable)
      snprintf(got, sizeof got, "\"%c%c%c%c\"", p[0], p[1], p[2], p[3]);
    else
      snprintf(got, sizeof got, "%02x %02x %02x %02x", p[0], p[1], p[2], p[3]);
    return frl_fb_fail(v, "%s: file identifier %s, expected \"%.4s\"", name, got, ident);
  }
  uint32_t off = rd_u32(v->buf);
  if (off < head || off >= v->len)
    return frl_fb_fail(v, "%s: root offset %u outside %zu-byte buffer", name, off, v->len);
  return verify_table(v, off, 1, name, root);
}

uint16_t frl_fb_field_offset(const frl_fb_table_t *t, unsigned field) {
  size_t slot = 4 + 2 * (size_t)field;
  if (slot + 2 > t->vt_size) return 0;
  return rd_u16(t->vtable + slot);
}

/* Finds field and checks that size bytes at it lie inside the table, aligned to align. *pos is
 * its buffer position, 0 when absent. */
static int locate(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field, size_t size,
                  size_t align, const char *name, size_t *pos) {
  uint16_t o = frl_fb_field_offset(t, field);
  *pos = 0;
  if (!o) return 0;
  if (o < 4 || (size_t)o + size > t->size)
    return frl_fb_fail(v, "%s: field at +%u does not fit its %u-byte table", name, o, t->size);
  if ((t->pos + o) % align != 0)
    return frl_fb_fail(v, "%s: field at %u not %zu-byte aligned", name, t->pos + o, align);
  *pos = t->pos + (size_t)o;
  return 0;
}

int frl_fb_get_scalar(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field, size_t size,
                      const char *name, void *out) {
  size_t pos;
  int rc = locate(v, t, field, size, size, name, &pos);
  if (rc) return rc;
  if (pos) memcpy(out, v->buf + pos, size);
  return 0;
}

bool frl_fb_read_scalar(const frl_fb_table_t *t, unsigned field, size_t size, void *out) {
  uint16_t o = frl_fb_field_offset(t, field);
  if (!o) return false;
  memcpy(out, t->table + o, size);
  return true;
}

const char *frl_fb_read_string(const frl_fb_table_t *t, unsigned field) {
  uint16_t o = frl_fb_field_offset(t, field);
  if (!o) return NULL;
  const uint8_t *at = t->table + o;
  return (const char *)(at + rd_u32(at) + 4); /* skip the length prefix */
}

/* Follows the uoffset stored in field (when present) to its target; *target 0 when absent. */
static int follow(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                  const char *name, size_t *target) {
  size_t pos;
  int rc = locate(v, t, field, 4, 4, name, &pos);
  *target = 0;
  if (rc || !pos) return rc;
  uint32_t off = rd_u32(v->buf + pos);
  if (off == 0 || off > FRL_FB_MAX_SIZE || off >= v->len - pos)
    return frl_fb_fail(v, "%s: offset %u at %zu outside %zu-byte buffer", name, off, pos, v->len);
  *target = pos + off;
  return 0;
}

/* Checks the vector header at pos and that count elements of elem_size follow in the buffer,
 * aligned to align. */
static int verify_vector_at(frl_fb_verifier_t *v, size_t pos, size_t elem_size, size_t align,
                            uint32_t max_count, const char *name, uint32_t *count) {
  if (pos % 4 != 0) return frl_fb_fail(v, "%s: length at %zu not 4-byte aligned", name, pos);
  if (v->len - pos < 4)
    return frl_fb_fail(v, "%s: length at %zu past end of %zu-byte buffer", name, pos, v->len);
  if ((pos + 4) % align != 0)
    return frl_fb_fail(v, "%s: elements at %zu not %zu-byte aligned", name, pos + 4, align);
  uint32_t n = rd_u32(v->buf + pos);
  if (n > max_count) return frl_fb_fail(v, "%s: %u elements, max %u", name, n, max_count);
  if ((uint64_t)n * elem_size > v->len - pos - 4)
    return frl_fb_fail(v, "%s: %u elements of %zu bytes at %zu overrun %zu-byte buffer", name,
                       n, elem_size, pos + 4, v->len);
  *count = n;
  return 0;
}

int frl_fb_get_string(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                      uint32_t max_len, bool no_nul, const char *name, const char **s,
                      uint32_t *len) {
  size_t pos;
  uint32_t n;
  int rc = follow(v, t, field, name, &pos);
  if (rc) return rc;
  if (!pos) {
    *s = NULL;
    *len = 0;
    return 0;
  }
  if (pos % 4 != 0) return frl_fb_fail(v, "%s: string at %zu not 4-byte aligned", name, pos);
  if (v->len - pos < 4)
    return frl_fb_fail(v, "%s: string at %zu past end of %zu-byte buffer", name, pos, v->len);
  n = rd_u32(v->buf + pos);
  if (n > max_len) return frl_fb_fail(v, "%s: string of %u bytes, max %u", name, n, max_len);
  if ((uint64_t)n + 1 > v->len - pos - 4)
    return frl_fb_fail(v, "%s: string of %u bytes at %zu overruns %zu-byte buffer", name, n,
                       pos, v->len);
  const char *p = (const char *)v->buf + pos + 4;
  if (p[n] != '\0') return frl_fb_fail(v, "%s: string not NUL-terminated", name);
  if (no_nul && memchr(p, '\0', n))
    return frl_fb_fail(v, "%s: string has a NUL byte inside", name);
  *s = p;
  *len = n;
  return 0;
}

int frl_fb_get_vector(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                      size_t elem_size, uint32_t max_count, const char *name, const void **data,
                      uint32_t *count) {
  size_t pos;
  uint32_t n = 0;
  int rc = follow(v, t, field, name, &pos);
  if (!rc && pos) rc = verify_vector_at(v, pos, elem_size, elem_size, max_count, name, &n);
  if (rc) return rc;
  *data = n ? v->buf + pos + 4 : NULL;
  *count = n;
  return 0;
}

int frl_fb_get_table(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                     const char *name, frl_fb_table_t *sub, bool *present) {
  size_t pos;
  int rc = follow(v, t, field, name, &pos);
  if (!rc && pos) rc = verify_table(v, pos, t->depth + 1, name, sub);
  if (rc) return rc;
  *present = pos != 0;
  return 0;
}

int frl_fb_get_table_vector(frl_fb_verifier_t *v, const frl_fb_table_t *t, unsigned field,
                            uint32_t max_count, const char *name,
                            int (*each_ok)(frl_fb_verifier_t *v, const frl_fb_table_t *elem,
                                           void *arg),
                            void *arg, const void **elems, uint32_t *count) {
  size_t pos;
  uint32_t n = 0;
  int rc = follow(v, t, field, name, &pos);
  if (!rc && pos) rc = verify_vector_at(v, pos, 4, 4, max_count, name, &n);
  if (rc) return rc;
  for (uint32_t i = 0; i < n; i++) {
    size_t at_i = pos + 4 + 4 * (size_t)i;
    uint32_t off = rd_u32(v->buf + at_i);
    if (off == 0 || off > FRL_FB_MAX_SIZE || off >= v->len - at_i)
      return frl_fb_fail(v, "%s[%u]: offset %u at %zu outside %zu-byte buffer", name, i, off,
                         at_i, v->len);
    frl_fb_table_t elem;
    rc = verify_table(v, at_i + off, t->depth + 1, name, &elem);
    if (!rc && each_ok) rc = each_ok(v, &elem, arg);
    if (rc) return rc;
  }
  *elems = n ? v->buf + pos + 4 : NULL;
  *count = n;
  return 0;
}

frl_fb_table_t frl_fb_vector_table(const void *elems, uint32_t i) {
  const uint8_t *slot = (const uint8_t *)elems + 4 * (size_t)i;
  frl_fb_table_t t;
  t.table = slot + rd_u32(slot);
  t.vtable = t.table - rd_i32(t.table);
  t.pos = 0; /* unknown here and not needed for reading */
  t.vt_size = rd_u16(t.vtable);
  t.size = rd_u16(t.vtable + 2);
  t.depth = 0;
  return t;
}
