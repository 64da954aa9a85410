/*
 * The transform both C test programs apply to a kitchen request (test/types/kitchen.wit): the
 * reply is the request with id + 1, every value doubled, ASCII letters of the name upper-cased,
 * everything else copied. Sized first, then built in place with exactly that many bytes.
 */
#ifndef KITCHEN_ECHO_H
#define KITCHEN_ECHO_H
#include "ringwire.h"
#include "kitchen.h"

/* Bytes of the reply to `q` (a validated request). */
static inline uint32_t echo_size(const rw_msg_t *m, const rw_request_t *q) {
  uint32_t n = sizeof(rw_request_t);
  const rw_str_t *tags = NULL;
  const rw_item_t *items = NULL;

  uint32_t k = 0;
  n = rw_size_add(n, q->name.len, 1);
  rw_list_string_get(m, &q->tags, &tags, &k);
  n = rw_size_add(n, k * 8, 4);
  for (uint32_t i = 0; i < k; i++) n = rw_size_add(n, tags[i].len, 1);
  n = rw_size_add(n, q->values.len * 4, 4);
  rw_list_item_get(m, &q->items, &items, &k);
  n = rw_size_add(n, k * sizeof(rw_item_t), 4);
  for (uint32_t i = 0; i < k; i++) n = rw_size_add(n, items[i].key.len, 1);
  if (q->nick.tag == 1) n = rw_size_add(n, q->nick.val.some.len, 1);
  if (q->status.tag == 1) n = rw_size_add(n, q->status.val.err.len, 1);

  n = rw_size_add(n, q->raw.len, 1);
  return n;
}

static inline void copy_str(rw_builder_t *b, const rw_msg_t *m, rw_str_t *to, const rw_str_t *from) {
  const char *s = NULL;
  uint32_t n = 0;
  if (rw_str_view(m, from, &s, &n) == 0) rw_b_str(b, to, s, n);
}

/* Writes the reply to `q` into `out` (cap bytes from echo_size); returns the bytes used. */
static inline uint32_t echo_build(const rw_msg_t *m, const rw_request_t *q, void *out, uint32_t cap) {
  rw_builder_t b;
  rw_request_t *r = (rw_request_t *)rw_b_init(&b, out, cap, sizeof(rw_request_t));
  /* Fixed fields first; pointer slots are filled as the out-of-line data is placed, in field order. */
  r->id = q->id + 1;
  r->shape = q->shape;
  r->color = q->color;
  r->perms = q->perms;
  r->nick.tag = q->nick.tag;
  r->ok = q->ok;
  r->ch = q->ch;
  r->small = q->small;
  r->ratio = q->ratio;
  r->status.tag = q->status.tag;
  if (q->status.tag == 0) r->status.val.ok = q->status.val.ok;
  r->pair = q->pair;
  const char *s = NULL;
  uint32_t n = 0;
  rw_str_view(m, &q->name, &s, &n);
  rw_b_str(&b, &r->name, s, n);
  char *name = (char *)b.base + r->name.ptr;
  for (uint32_t i = 0; i < n; i++) if (name[i] >= 'a' && name[i] <= 'z') name[i] = (char)(name[i] - 32);
  const rw_str_t *tags = NULL;
  uint32_t k = 0;
  rw_list_string_get(m, &q->tags, &tags, &k);
  rw_str_t *ot = (rw_str_t *)rw_b_list(&b, &r->tags, k, sizeof(rw_str_t), 4);
  for (uint32_t i = 0; i < k; i++) copy_str(&b, m, &ot[i], &tags[i]);
  const int32_t *values = NULL;
  rw_list_s32_get(m, &q->values, &values, &k);
  int32_t *ov = (int32_t *)rw_b_list(&b, &r->values, k, 4, 4);
  for (uint32_t i = 0; i < k; i++) ov[i] = (int32_t)((uint32_t)values[i] * 2u);
  const rw_item_t *items = NULL;
  rw_list_item_get(m, &q->items, &items, &k);
  rw_item_t *oi = (rw_item_t *)rw_b_list(&b, &r->items, k, sizeof(rw_item_t), 4);
  for (uint32_t i = 0; i < k; i++) {
    oi[i].weight = items[i].weight;
    copy_str(&b, m, &oi[i].key, &items[i].key);
  }
  if (q->nick.tag == 1) copy_str(&b, m, &r->nick.val.some, &q->nick.val.some);
  if (q->status.tag == 1) copy_str(&b, m, &r->status.val.err, &q->status.val.err);
  const uint8_t *raw = NULL;
  rw_list_u8_get(m, &q->raw, &raw, &k);
  uint8_t *orw = (uint8_t *)rw_b_list(&b, &r->raw, k, 1, 1);
  if (k) memcpy(orw, raw, k);
  return b.used;
}
#endif
