/*
 * Unit tests of include/ringwire.h and a generated typed-message header, in one process: SPSC and
 * MPSC rings in sealed memfds (wrap-around, padding, batches), corruption is RW_ECORRUPT and
 * poisons the ring, unsealed peer fds are refused, and the checked typed accessors. Prints
 * "ok N - name" / "not ok N - name" and exits non-zero on any failure (run by test/87).
 */
#include "ringwire.h"
#include "kitchen-echo.h"
#include <stdio.h>
#include <stdlib.h>

static int failures, count;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "  %s:%d: %s\n", __FILE__, __LINE__, #cond); return 0; } } while (0)
static void run(const char *name, int (*fn)(void)) {
  int ok = fn();
  count++;
  if (!ok) failures++;
  printf("%s %d - %s\n", ok ? "ok" : "not ok", count, name);
}

typedef struct blocks { void *p, *c; size_t plen, clen; int pfd, cfd; } blocks_t;
static int make_blocks(blocks_t *b, uint32_t kind, uint32_t cap) {
  b->pfd = rw_block_create(kind, cap, 1, "unit-p", kind == RW_KIND_MPSC, &b->p, &b->plen);
  b->cfd = rw_block_create(kind, cap, 0, "unit-c", 0, &b->c, &b->clen);
  return b->pfd >= 0 && b->cfd >= 0;
}

static int spsc_stream(void) {
  blocks_t b;
  CHECK(make_blocks(&b, RW_KIND_SPSC, 1024));
  rw_spsc_producer_t p;
  rw_spsc_consumer_t c;
  CHECK(rw_spsc_producer_attach(&p, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  CHECK(rw_spsc_consumer_attach(&c, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  uint32_t sent = 0, got = 0;
  while (got < 100000) {
    for (int k = 0; k < 3 && sent < 100000; k++) {
      uint32_t len = (sent * 7) % 300;
      int64_t off = rw_spsc_claim(&p, len, sent % 5);
      if (off == RW_EAGAIN) break;
      CHECK(off >= 0 && off % 8 == 0);
      memset(p.r.data + off, (int)(sent & 0xff), len);
      sent++;
    }
    rw_spsc_commit(&p);
    int64_t len;
    while ((len = rw_spsc_read(&c)) >= 0) {
      CHECK((uint32_t)len == (got * 7) % 300 && c.type == got % 5);
      for (uint32_t i = 0; i < (uint32_t)len; i++) CHECK(c.r.data[c.offset + i] == (got & 0xff));
      got++;
    }
    CHECK(len == RW_EAGAIN);
    rw_spsc_release(&c);
  }
  CHECK(rw_spsc_claim(&p, 1024 - 16 + 1, 0) == RW_EMSGSIZE);
  return 1;
}

static int mpsc_two_producers(void) {
  blocks_t b;
  CHECK(make_blocks(&b, RW_KIND_MPSC, 2048));
  rw_mpsc_producer_t a, z;
  rw_mpsc_consumer_t c;
  CHECK(rw_mpsc_producer_attach(&a, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  CHECK(rw_mpsc_producer_attach(&z, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  CHECK(rw_mpsc_consumer_attach(&c, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  uint32_t next[2] = { 0, 0 }, seen[2] = { 0, 0 };
  rw_mpsc_producer_t *ps[2] = { &a, &z };
  while (seen[0] < 30000 || seen[1] < 30000) {
    for (int w = 0; w < 2; w++) {
      if (next[w] >= 30000) continue;
      uint32_t len = 4 + (next[w] % 90);
      int64_t off = rw_mpsc_claim(ps[w], len, (uint32_t)w);
      if (off == RW_EAGAIN) continue;
      CHECK(off >= 0);
      memcpy(ps[w]->r.data + off, &next[w], 4);
      CHECK(rw_mpsc_commit(ps[w]) == 0);
      next[w]++;
    }
    int64_t len;
    while ((len = rw_mpsc_read(&c)) >= 0) {
      uint32_t v, w = c.type;
      CHECK(w < 2);
      memcpy(&v, c.r.data + c.offset, 4);
      CHECK(v == seen[w] && (uint32_t)len == 4 + (v % 90));
      seen[w]++;
    }
    CHECK(len == RW_EAGAIN);
    rw_mpsc_release(&c);
  }
  return 1;
}

static int mpsc_abandoned(void) {
  blocks_t b;
  CHECK(make_blocks(&b, RW_KIND_MPSC, 1024));
  rw_mpsc_producer_t dead, live, stalled;
  rw_mpsc_consumer_t c;
  CHECK(rw_mpsc_producer_attach(&dead, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  CHECK(rw_mpsc_producer_attach(&live, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  CHECK(rw_mpsc_producer_attach(&stalled, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  CHECK(rw_mpsc_consumer_attach(&c, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  c.abandon_ms = 0; /* skip on the second look at a blocked head */
  /* A marked reservation whose writer never commits, then a committed record behind it. */
  CHECK(rw_mpsc_claim(&dead, 40, 1) >= 0);
  CHECK(rw_mpsc_claim(&live, 8, 2) >= 0 && rw_mpsc_commit(&live) == 0);
  CHECK(rw_mpsc_read(&c) == RW_EAGAIN); /* starts the timer */
  CHECK(rw_mpsc_read(&c) == 8 && c.type == 2 && c.abandoned == 1);
  CHECK(rw_mpsc_commit(&dead) == RW_EREVOKED); /* its late commit loses */
  rw_mpsc_release(&c);
  /* A producer that won the tail CAS but stalled before marking: 16 unmarked bytes at the head. */
  uint32_t t = atomic_fetch_add(rw__word(b.p, RW_OFF_TAIL), 16);
  CHECK(rw_mpsc_claim(&live, 4, 3) >= 0 && rw_mpsc_commit(&live) == 0);
  CHECK(rw_mpsc_read(&c) == RW_EAGAIN);
  CHECK(rw_mpsc_read(&c) == 4 && c.type == 3 && c.abandoned == 2);
  /* Its late mark finds SKIPPED of its lap and must not land. */
  CHECK(rw__mpsc_mark(&stalled, t & c.r.mask, rw__lap_tag(t, c.r.shift) | 16) == 0);
  rw_mpsc_release(&c);
  CHECK((rw__load(c.r.data, t & c.r.mask) & RW_MPSC_SKIPPED) != 0); /* kept through release */
  /* The ring keeps working across laps afterwards. */
  for (uint32_t i = 0; i < 2000; i++) {
    int64_t off = rw_mpsc_claim(&live, 60, 1);
    CHECK(off >= 0);
    memcpy(live.r.data + off, &i, 4);
    CHECK(rw_mpsc_commit(&live) == 0);
    CHECK(rw_mpsc_read(&c) == 60);
    uint32_t v;
    memcpy(&v, c.r.data + c.offset, 4);
    CHECK(v == i);
    rw_mpsc_release(&c);
  }
  return 1;
}

static int spsc_corrupt_poisons(void) {
  blocks_t b;
  CHECK(make_blocks(&b, RW_KIND_SPSC, 256));
  rw_spsc_consumer_t c;
  CHECK(rw_spsc_consumer_attach(&c, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  uint8_t *data = (uint8_t *)b.p + RW_PRODUCER_DATA;
  rw__store(data, 0, RW_SPSC_PRESENT | 4000); /* runs past the data area */
  CHECK(rw_spsc_read(&c) == RW_ECORRUPT);
  rw__store(data, 0, 0);
  CHECK(rw_spsc_read(&c) == RW_ECORRUPT); /* poisoned */
  rw_spsc_consumer_t d;
  CHECK(rw_spsc_consumer_attach(&d, b.p, b.plen, b.c, b.clen, -1, -1) == 0);
  rw__store(data, 0, 16); /* no present bit */
  CHECK(rw_spsc_read(&d) == RW_ECORRUPT);
  rw__set((uint8_t *)b.p, RW_OFF_MAGIC, 0);
  CHECK(rw_spsc_consumer_attach(&d, b.p, b.plen, b.c, b.clen, -1, -1) == RW_ECORRUPT);
  return 1;
}

static int unsealed_fds_refused(void) {
  void *mem = NULL;
  size_t len = 0;
  int fd = memfd_create("unsealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CHECK(fd >= 0 && ftruncate(fd, 4096) == 0);
  CHECK(rw_block_map(fd, 0, &mem, &len) == RW_EINVAL);
  CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) == 0);
  CHECK(rw_block_map(fd, 0, &mem, &len) == RW_EINVAL); /* F_SEAL_SEAL missing */
  CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL) == 0);
  CHECK(rw_block_map(fd, 0, &mem, &len) == 0 && len == 4096);
  blocks_t b;
  CHECK(make_blocks(&b, RW_KIND_SPSC, 64));
  CHECK(rw_block_map(b.cfd, 1, &mem, &len) == -EPERM); /* F_SEAL_FUTURE_WRITE: no writable peer mapping */
  return 1;
}

static int utf8(void) {
  struct { const char *s; int ok; } cases[] = {
    { "", 1 }, { "plain", 1 }, { "h\xc3\xa9", 1 }, { "\xe2\x82\xac", 1 }, { "\xf0\x9f\x98\x80", 1 },
    { "\x80", 0 }, { "\xc0\x80", 0 }, { "\xc3", 0 }, { "\xed\xa0\x80", 0 }, { "\xf4\x90\x80\x80", 0 }, { "\xe2\x82", 0 }, { "\xff", 0 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) CHECK(rw_utf8_valid((const uint8_t *)cases[i].s, (uint32_t)strlen(cases[i].s)) == cases[i].ok);
  CHECK(rw_char_check(0x10ffff) == 0 && rw_char_check(0x110000) == RW_ECORRUPT && rw_char_check(0xd800) == RW_ECORRUPT);
  return 1;
}

/* Builds a request by hand with the builder, then corrupts copies of it. */
static _Alignas(8) uint8_t msg[1024];
static uint32_t build_sample(void) {
  rw_builder_t b;
  rw_request_t *r = (rw_request_t *)rw_b_init(&b, msg, sizeof msg, sizeof(rw_request_t));
  r->id = 7;
  rw_b_str(&b, &r->name, "h\xc3\xa9llo", 6);
  rw_str_t *tags = (rw_str_t *)rw_b_list(&b, &r->tags, 2, sizeof(rw_str_t), 4);
  rw_b_str(&b, &tags[0], "a", 1);
  rw_b_str(&b, &tags[1], "bb", 2);
  int32_t *v = (int32_t *)rw_b_list(&b, &r->values, 3, 4, 4);
  v[0] = 1, v[1] = -2, v[2] = 3;
  rw_item_t *items = (rw_item_t *)rw_b_list(&b, &r->items, 1, sizeof(rw_item_t), 4);
  items[0].weight = 9;
  rw_b_str(&b, &items[0].key, "k", 1);
  r->shape.tag = RW_SHAPE_RECT;
  r->shape.val.rect.x = 1.5;
  r->color = RW_COLOR_GREEN;
  r->perms = RW_PERMS_READ | RW_PERMS_EXEC;
  r->nick.tag = 1;
  rw_b_str(&b, &r->nick.val.some, "n", 1);
  r->ch = 0x1f600;
  r->status.tag = 1;
  rw_b_str(&b, &r->status.val.err, "e", 1);
  uint8_t *raw = (uint8_t *)rw_b_list(&b, &r->raw, 2, 1, 1);
  raw[0] = 1, raw[1] = 2;
  return b.used;
}

static int typed_accessors(void) {
  uint32_t n = build_sample();
  rw_msg_t m = { msg, n };
  const rw_request_t *q = rw_request_check(&m);
  CHECK(q != NULL && q->id == 7);
  const char *s;
  uint32_t len;
  CHECK(rw_str_view(&m, &q->name, &s, &len) == 0 && len == 6 && memcmp(s, "h\xc3\xa9llo", 6) == 0);
  const rw_str_t *tags;
  CHECK(rw_list_string_get(&m, &q->tags, &tags, &len) == 0 && len == 2);
  CHECK(rw_str_view(&m, &tags[1], &s, &len) == 0 && len == 2 && s[1] == 'b');
  CHECK(echo_size(&m, q) == n);
  rw_msg_t short_msg = { msg, sizeof(rw_request_t) - 1 };
  CHECK(rw_request_check(&short_msg) == NULL);
  return 1;
}

static int typed_corruption(void) {
  int n_cases = 0;
  for (int k = 0; k < 9; k++) {
    uint32_t n = build_sample();
    rw_request_t *r = (rw_request_t *)msg;
    switch (k) {
      case 0: r->name.ptr = n - 2; break;                 /* string leaves the message */
      case 1: r->name.len = 0xffffffffu; break;           /* huge length, no overflow */
      case 2: msg[r->name.ptr] = 0x80; break;             /* bad UTF-8 */
      case 3: r->values.ptr += 1; break;                  /* misaligned list */
      case 4: r->values.len = 0x40000000u; break;         /* list leaves the message */
      case 5: r->shape.tag = 3; break;                    /* bad variant discriminant */
      case 6: r->color = 3; break;                        /* bad enum */
      case 7: r->ch = 0xdfff; break;                      /* surrogate char */
      case 8: ((rw_item_t *)(msg + r->items.ptr))[0].key.len = 1u << 20; break; /* nested string */
    }
    rw_msg_t m = { msg, n };
    CHECK(rw_request_check(&m) == NULL);
    n_cases++;
  }
  CHECK(n_cases == 9);
  return 1;
}

int main(void) {
  run("spsc: 100000 messages with wrap-around and padding", spsc_stream);
  run("mpsc: two producers interleaved, order kept per producer", mpsc_two_producers);
  run("mpsc: abandoned reservations (marked and unmarked) are skipped; late writers lose", mpsc_abandoned);
  run("spsc: a corrupt header is RW_ECORRUPT and poisons the ring", spsc_corrupt_poisons);
  run("blocks: unsealed peer fds are refused, future-write is enforced", unsealed_fds_refused);
  run("utf8 and char validation", utf8);
  run("typed: builder, checked accessors, exact sizing", typed_accessors);
  run("typed: every corruption makes rw_request_check() fail", typed_corruption);
  printf("%d passed, %d failed\n", count - failures, failures);
  return failures ? 1 : 0;
}
