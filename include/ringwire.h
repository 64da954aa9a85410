/*
 * ringwire.h: a dependency-free C11 peer for ringwire rings (layout version 2), written from
 * docs/layout.md and docs/memory-ordering.md. Linux only (memfd, eventfd). Include it first, or
 * build with -D_GNU_SOURCE.
 *
 *   SPSC producer and consumer, MPSC producer and consumer, the eventfd doorbell with the
 *   lost-wakeup protocol, sealed memfd blocks (create and map), and the checked helpers that
 *   generated typed-message headers (`ringwire gen --lang c`) build on.
 *
 * Concurrency contract: one rw_spsc_producer_t / rw_spsc_consumer_t per ring side, one
 * rw_mpsc_consumer_t per MPSC ring and any number of rw_mpsc_producer_t (one per thread). Each
 * object is used by one thread at a time.
 *
 * Memory ordering (docs/memory-ordering.md): every atomic access in the protocol is
 * memory_order_seq_cst, as JavaScript's Atomics are. Release/acquire would be enough to publish
 * records, but NOT for the doorbell: "store my index, then load your waiting count" on one side and
 * "add to my waiting count, then load your index" on the other is a store-load (Dekker) pattern,
 * and only a single total order guarantees one side sees the other; with release/acquire both may
 * miss and the sleeper wakes only at its 1 s re-check. Byte order: little-endian (the header
 * refuses to compile elsewhere). Shared words are accessed through _Atomic uint32_t pointers onto
 * the mapping, which GCC and Clang lay out as plain uint32_t (checked below).
 *
 * Errors are negative return values: RW_EAGAIN (full / empty: back-pressure, not an error),
 * RW_ECORRUPT (the peer broke an invariant; the object is poisoned and keeps returning it),
 * RW_EINVAL, RW_EMSGSIZE, RW_EREVOKED (MPSC: the consumer skipped our reservation), or -errno.
 */
#ifndef RINGWIRE_H
#define RINGWIRE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "ringwire rings and typed messages are little-endian"
#endif
_Static_assert(sizeof(_Atomic uint32_t) == 4 && _Alignof(_Atomic uint32_t) == 4, "atomic u32 must be a plain u32");

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* ---- Layout (docs/layout.md; lib/ring/layout.ts is the source of truth) ---- */
#define RW_LAYOUT_VERSION 2u
#define RW_PRODUCER_MAGIC 0x50525752u /* 'RWRP' little-endian */
#define RW_CONSUMER_MAGIC 0x43525752u /* 'RWRC' */
#define RW_KIND_SPSC 1u
#define RW_KIND_MPSC 2u
#define RW_OFF_MAGIC 0
#define RW_OFF_VERSION_KIND 4 /* u16 version | u16 kind << 16 */
#define RW_OFF_CAPACITY 8
#define RW_OFF_DATA_OFFSET 12
#define RW_OFF_TAIL 64             /* producer block */
#define RW_OFF_PRODUCER_WAITING 128 /* producer block */
#define RW_OFF_HEAD 64             /* consumer block */
#define RW_OFF_CONSUMER_WAITING 128 /* consumer block */
#define RW_PRODUCER_DATA 192
#define RW_CONSUMER_BLOCK_SIZE 192
#define RW_RECORD_HEADER 8u
#define RW_SPSC_PRESENT 0x80000000u
#define RW_SPSC_SLACK 8u
#define RW_TYPE_PADDING 0x80000000u
#define RW_MAX_USER_TYPE 0x7fffffffu
#define RW_MIN_CAPACITY 64u
#define RW_MAX_CAPACITY (1u << 30)
#define RW_MAX_MPSC_CAPACITY (1u << 24)
#define RW_MPSC_VALUE_MASK ((1u << 25) - 1)
#define RW_MPSC_COMMITTED (1u << 25)
#define RW_MPSC_TAG_SHIFT 26
/* A parked side re-checks at least this often (docs/memory-ordering.md, MAX_PARK_MS). */
#define RW_MAX_PARK_MS 1000

#define RW_EAGAIN (-EAGAIN)
#define RW_EINVAL (-EINVAL)
#define RW_EMSGSIZE (-EMSGSIZE)
#define RW_ECORRUPT (-1000)
#define RW_EREVOKED (-1001)

static inline uint32_t rw_record_bytes(uint32_t length) { return (RW_RECORD_HEADER + length + 7u) & ~7u; }
static inline _Atomic uint32_t *rw__word(uint8_t *block, uint32_t off) { return (_Atomic uint32_t *)(void *)(block + off); }
static inline uint32_t rw__load(uint8_t *block, uint32_t off) { return atomic_load(rw__word(block, off)); }
static inline void rw__store(uint8_t *block, uint32_t off, uint32_t v) { atomic_store(rw__word(block, off), v); }
/* Plain (unordered) word access, for fields whose ordering comes from a later seq-cst store. */
static inline uint32_t rw__get(uint8_t *block, uint32_t off) { return atomic_load_explicit(rw__word(block, off), memory_order_relaxed); }
static inline void rw__set(uint8_t *block, uint32_t off, uint32_t v) { atomic_store_explicit(rw__word(block, off), v, memory_order_relaxed); }

/* ---- Attaching to blocks (design rule 2: check everything once, keep local copies) ---- */
typedef struct rw_ring {
  uint8_t *kp;     /* producer block (shared) */
  uint8_t *kc;     /* consumer block (shared) */
  uint8_t *data;   /* kp + RW_PRODUCER_DATA */
  uint32_t capacity, mask, shift, kind;
  int data_bell;   /* eventfd rung when records are published (-1: none) */
  int space_bell;  /* eventfd rung when space is released (-1: none) */
  int broken;
} rw_ring_t;

static inline int rw__valid_capacity(uint32_t kind, uint32_t cap) {
  uint32_t max = kind == RW_KIND_MPSC ? RW_MAX_MPSC_CAPACITY : RW_MAX_CAPACITY;
  return cap >= RW_MIN_CAPACITY && cap <= max && (cap & (cap - 1)) == 0;
}

/* Validates both blocks' headers (magic, version, kind, capacity, data offset, sizes). */
static inline int rw_ring_attach(rw_ring_t *r, uint32_t kind, void *producer_block, size_t producer_len,
                                 void *consumer_block, size_t consumer_len, int data_bell, int space_bell) {
  uint8_t *p = (uint8_t *)producer_block, *c = (uint8_t *)consumer_block;
  memset(r, 0, sizeof *r);
  if (producer_len < RW_PRODUCER_DATA || consumer_len < RW_CONSUMER_BLOCK_SIZE) return RW_ECORRUPT;
  if (rw__load(p, RW_OFF_MAGIC) != RW_PRODUCER_MAGIC || rw__load(c, RW_OFF_MAGIC) != RW_CONSUMER_MAGIC) return RW_ECORRUPT;
  uint32_t vk = RW_LAYOUT_VERSION | kind << 16;
  if (rw__get(p, RW_OFF_VERSION_KIND) != vk || rw__get(c, RW_OFF_VERSION_KIND) != vk) return RW_ECORRUPT;
  uint32_t cap = rw__get(p, RW_OFF_CAPACITY);
  if (!rw__valid_capacity(kind, cap) || rw__get(c, RW_OFF_CAPACITY) != cap) return RW_ECORRUPT;
  if (rw__get(p, RW_OFF_DATA_OFFSET) != RW_PRODUCER_DATA || producer_len < RW_PRODUCER_DATA + (size_t)cap) return RW_ECORRUPT;
  r->kp = p;
  r->kc = c;
  r->data = p + RW_PRODUCER_DATA;
  r->capacity = cap;
  r->mask = cap - 1;
  r->shift = (uint32_t)__builtin_ctz(cap);
  r->kind = kind;
  r->data_bell = data_bell;
  r->space_bell = space_bell;
  return 0;
}

static inline int rw__fail(rw_ring_t *r) {
  r->broken = 1;
  return RW_ECORRUPT;
}

/* ---- Doorbells: eventfds count rings, so one rung between "waiting" and "park" is not lost ---- */
static inline void rw_bell_ring(int fd) {
  uint64_t one = 1;
  if (fd >= 0) (void)!write(fd, &one, sizeof one);
}

/* Parks on `fd` for up to timeout_ms (capped at RW_MAX_PARK_MS), then drains it. */
static inline void rw_bell_park(int fd, int timeout_ms) {
  struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };
  if (timeout_ms < 0 || timeout_ms > RW_MAX_PARK_MS) timeout_ms = RW_MAX_PARK_MS;
  if (fd < 0 || poll(&pfd, 1, timeout_ms) <= 0) return;
  uint64_t n;
  (void)!read(fd, &n, sizeof n);
}

/* The producer's half of the lost-wakeup check, right after the seq-cst store that publishes. */
static inline void rw__notify_consumer(rw_ring_t *r) {
  if (rw__load(r->kc, RW_OFF_CONSUMER_WAITING) != 0) rw_bell_ring(r->data_bell);
}
static inline void rw__notify_producers(rw_ring_t *r) {
  if (rw__load(r->kp, RW_OFF_PRODUCER_WAITING) != 0) rw_bell_ring(r->space_bell);
}

/* ---- SPSC producer ---- */
typedef struct rw_spsc_producer {
  rw_ring_t r;
  uint32_t tail;      /* claimed position */
  uint32_t published; /* published position */
  uint32_t head;      /* last consumer head seen */
  int32_t gate;       /* offset of word 0 of the batch's first record, stored last; -1 none */
  uint32_t gate_word;
} rw_spsc_producer_t;

static inline int rw__spsc_check_head(rw_spsc_producer_t *p, uint32_t head) {
  int32_t used = (int32_t)(p->published - head);
  if ((head & 7) || used < 0 || (uint32_t)used > p->r.capacity - RW_SPSC_SLACK || (int32_t)(head - p->head) < 0) return rw__fail(&p->r);
  return 0;
}

/* Attaches as the SPSC producer; follows records already published past the stored tail. */
static inline int rw_spsc_producer_attach(rw_spsc_producer_t *p, void *producer_block, size_t plen, void *consumer_block,
                                          size_t clen, int data_bell, int space_bell) {
  memset(p, 0, sizeof *p);
  int e = rw_ring_attach(&p->r, RW_KIND_SPSC, producer_block, plen, consumer_block, clen, data_bell, space_bell);
  if (e) return e;
  uint32_t tail = rw__load(p->r.kp, RW_OFF_TAIL), end = tail;
  if (tail & 7) return rw__fail(&p->r);
  for (;;) {
    uint32_t off = end & p->r.mask, word = rw__load(p->r.data, off);
    if (word == 0) break;
    uint32_t len = word & ~RW_SPSC_PRESENT;
    uint32_t rec = rw__get(p->r.data, off + 4) == RW_TYPE_PADDING ? p->r.capacity - off : rw_record_bytes(len);
    if (!(word & RW_SPSC_PRESENT) || len > p->r.capacity || off + rec > p->r.capacity || (end - tail) + rec > p->r.capacity - RW_SPSC_SLACK) return rw__fail(&p->r);
    end += rec;
  }
  p->tail = p->published = end;
  p->head = rw__load(p->r.kc, RW_OFF_HEAD);
  p->gate = -1;
  return rw__spsc_check_head(p, p->head);
}

/* True when `bytes` more fit and leave the slack free; re-reads the head only when the cache says no. */
static inline int rw__spsc_fits(rw_spsc_producer_t *p, uint32_t bytes, int *err) {
  int64_t room = (int64_t)p->r.capacity - RW_SPSC_SLACK - bytes;
  if ((int32_t)(p->tail - p->head) <= room) return 1;
  uint32_t head = rw__load(p->r.kc, RW_OFF_HEAD);
  if ((*err = rw__spsc_check_head(p, head))) return 0;
  p->head = head;
  return (int32_t)(p->tail - head) <= room;
}

static inline void rw__spsc_header(rw_spsc_producer_t *p, uint32_t off, uint32_t length, uint32_t type) {
  rw__set(p->r.data, off + 4, type);
  if (p->gate < 0) {
    p->gate = (int32_t)off;
    p->gate_word = length | RW_SPSC_PRESENT;
  } else {
    rw__set(p->r.data, off, length | RW_SPSC_PRESENT);
  }
}

static inline uint32_t rw_spsc_max_message(const rw_ring_t *r) { return r->capacity - RW_RECORD_HEADER - RW_SPSC_SLACK; }

static inline void rw_spsc_commit(rw_spsc_producer_t *p);

/* Claims `length` bytes: returns the payload offset in r.data (8-aligned), RW_EAGAIN when full. */
static inline int64_t rw_spsc_claim(rw_spsc_producer_t *p, uint32_t length, uint32_t type) {
  int err = 0;
  if (p->r.broken) return RW_ECORRUPT;
  if (length > rw_spsc_max_message(&p->r)) return RW_EMSGSIZE;
  if (type > RW_MAX_USER_TYPE) return RW_EINVAL;
  uint32_t rec = rw_record_bytes(length), off = p->tail & p->r.mask;
  if (off + rec > p->r.capacity) {
    uint32_t pad = p->r.capacity - off;
    if (!rw__spsc_fits(p, pad, &err)) goto full;
    rw__spsc_header(p, off, pad - RW_RECORD_HEADER, RW_TYPE_PADDING);
    p->tail += pad;
    off = 0;
  }
  if (!rw__spsc_fits(p, rec, &err)) goto full;
  rw__spsc_header(p, off, length, type);
  p->tail += rec;
  return off + RW_RECORD_HEADER;
full:
  rw_spsc_commit(p);
  return err ? err : RW_EAGAIN;
}

/* Publishes every claimed record and rings the data bell if the consumer sleeps. */
static inline void rw_spsc_commit(rw_spsc_producer_t *p) {
  if (p->tail == p->published) return;
  /* The slot after the batch may hold an older lap's bytes: it must read as "nothing yet" first. */
  rw__set(p->r.data, p->tail & p->r.mask, 0);
  /* Seq-cst store of the batch's first word 0: publishes the batch (and the zero after it), and is
   * the "store" half of the lost-wakeup check below. */
  rw__store(p->r.data, (uint32_t)p->gate, p->gate_word);
  rw__set(p->r.kp, RW_OFF_TAIL, p->tail); /* for attach and inspection only; written last */
  p->gate = -1;
  p->published = p->tail;
  rw__notify_consumer(&p->r);
}

/* ---- SPSC consumer ---- */
typedef struct rw_spsc_consumer {
  rw_ring_t r;
  uint32_t head; /* released position */
  uint32_t pos;  /* read position */
  /* The record the last successful read returned. */
  uint32_t offset, length, type;
} rw_spsc_consumer_t;

static inline int rw_spsc_consumer_attach(rw_spsc_consumer_t *c, void *producer_block, size_t plen, void *consumer_block,
                                          size_t clen, int data_bell, int space_bell) {
  memset(c, 0, sizeof *c);
  int e = rw_ring_attach(&c->r, RW_KIND_SPSC, producer_block, plen, consumer_block, clen, data_bell, space_bell);
  if (e) return e;
  c->head = c->pos = rw__load(c->r.kc, RW_OFF_HEAD);
  return 0;
}

static inline void rw_spsc_release(rw_spsc_consumer_t *c) {
  if (c->pos == c->head) return;
  /* Seq-cst: we are done with the records before the producer may reuse them, and the "store"
   * half of the producer's space wait. */
  rw__store(c->r.kc, RW_OFF_HEAD, c->pos);
  c->head = c->pos;
  rw__notify_producers(&c->r);
}

/* Reads the next record in place: its length (and offset/length/type), RW_EAGAIN when empty. */
static inline int64_t rw_spsc_read(rw_spsc_consumer_t *c) {
  if (c->r.broken) return RW_ECORRUPT;
  for (;;) {
    uint32_t off = c->pos & c->r.mask;
    uint32_t word = rw__load(c->r.data, off); /* pairs with the producer's publishing store */
    if (word == 0) return RW_EAGAIN;
    if (!(word & RW_SPSC_PRESENT)) return rw__fail(&c->r);
    uint32_t len = word & ~RW_SPSC_PRESENT, type = rw__get(c->r.data, off + 4);
    uint32_t unreleased = c->pos - c->head;
    if (type > RW_MAX_USER_TYPE) {
      uint32_t pad = len + RW_RECORD_HEADER;
      if (type != RW_TYPE_PADDING || len > c->r.capacity || off + pad != c->r.capacity || unreleased + pad > c->r.capacity - RW_SPSC_SLACK) return rw__fail(&c->r);
      int release_now = c->pos == c->head;
      c->pos += pad;
      if (release_now) rw_spsc_release(c);
      continue;
    }
    uint32_t rec = rw_record_bytes(len);
    if (len > c->r.capacity || off + rec > c->r.capacity || unreleased + rec > c->r.capacity - RW_SPSC_SLACK) return rw__fail(&c->r);
    c->offset = off + RW_RECORD_HEADER;
    c->length = len;
    c->type = type;
    c->pos += rec;
    return len;
  }
}

static inline int rw_spsc_available(rw_spsc_consumer_t *c) { return rw__load(c->r.data, c->pos & c->r.mask) != 0; }

/*
 * Sleeps until a record is available or timeout_ms passes (-1: forever), re-checking every
 * RW_MAX_PARK_MS: count ourselves waiting (seq-cst), re-check, park. Returns 1 when available.
 */
static inline int rw_spsc_wait(rw_spsc_consumer_t *c, int timeout_ms) {
  for (int waited = 0;;) {
    if (rw_spsc_available(c)) return 1;
    if (timeout_ms >= 0 && waited >= timeout_ms) return 0;
    int slice = timeout_ms < 0 || timeout_ms - waited > RW_MAX_PARK_MS ? RW_MAX_PARK_MS : timeout_ms - waited;
    atomic_fetch_add(rw__word(c->r.kc, RW_OFF_CONSUMER_WAITING), 1);
    if (!rw_spsc_available(c)) rw_bell_park(c->r.data_bell, slice);
    atomic_fetch_sub(rw__word(c->r.kc, RW_OFF_CONSUMER_WAITING), 1);
    waited += slice;
  }
}

/* Sleeps until `length` bytes fit (the mirror image, on producerWaiting and the head). */
static inline int rw_spsc_wait_space(rw_spsc_producer_t *p, uint32_t length, int timeout_ms) {
  for (int waited = 0;;) {
    int err = 0;
    uint32_t rec = rw_record_bytes(length), off = p->tail & p->r.mask;
    uint32_t need = off + rec > p->r.capacity ? p->r.capacity - off + rec : rec;
    if (rw__spsc_fits(p, need, &err)) return 1;
    if (err || (timeout_ms >= 0 && waited >= timeout_ms)) return 0;
    int slice = timeout_ms < 0 || timeout_ms - waited > RW_MAX_PARK_MS ? RW_MAX_PARK_MS : timeout_ms - waited;
    atomic_fetch_add(rw__word(p->r.kp, RW_OFF_PRODUCER_WAITING), 1);
    if (!rw__spsc_fits(p, need, &err)) rw_bell_park(p->r.space_bell, slice);
    atomic_fetch_sub(rw__word(p->r.kp, RW_OFF_PRODUCER_WAITING), 1);
    waited += slice;
  }
}

/* ---- MPSC producer ---- */
typedef struct rw_mpsc_producer {
  rw_ring_t r;
  uint32_t head;      /* last consumer head seen */
  int64_t claim_word; /* offset of the claimed record's state word, -1 none */
  uint32_t claim_mark, claim_len;
} rw_mpsc_producer_t;

static inline uint32_t rw__lap_tag(uint32_t pos, uint32_t shift) { return ((pos >> shift) & 63u) << RW_MPSC_TAG_SHIFT; }
static inline int rw__is_marked(uint32_t word, uint32_t tag) {
  return ((word ^ tag) >> RW_MPSC_TAG_SHIFT) == 0 && (word & (RW_MPSC_VALUE_MASK | RW_MPSC_COMMITTED)) != 0;
}

static inline int rw_mpsc_producer_attach(rw_mpsc_producer_t *p, void *producer_block, size_t plen, void *consumer_block,
                                          size_t clen, int data_bell, int space_bell) {
  memset(p, 0, sizeof *p);
  int e = rw_ring_attach(&p->r, RW_KIND_MPSC, producer_block, plen, consumer_block, clen, data_bell, space_bell);
  if (e) return e;
  p->head = rw__load(p->r.kc, RW_OFF_HEAD);
  p->claim_word = -1;
  return 0;
}

static inline int rw__mpsc_fits(rw_mpsc_producer_t *p, uint32_t tail, uint32_t bytes, int *err) {
  if ((uint64_t)(uint32_t)(tail - p->head) + bytes <= p->r.capacity) return 1;
  uint32_t head = rw__load(p->r.kc, RW_OFF_HEAD), now = rw__load(p->r.kp, RW_OFF_TAIL);
  if ((head & 7) || (int32_t)(now - head) < 0) {
    *err = rw__fail(&p->r);
    return 0;
  }
  p->head = head;
  return (int64_t)(int32_t)(tail - head) + bytes <= p->r.capacity;
}

/* CAS from whatever is there unless it is this lap's mark or SKIPPED: then it is not ours. */
static inline int rw__mpsc_mark(rw_mpsc_producer_t *p, uint32_t off, uint32_t state) {
  uint32_t tag = (state >> RW_MPSC_TAG_SHIFT) << RW_MPSC_TAG_SHIFT;
  _Atomic uint32_t *w = rw__word(p->r.data, off);
  for (;;) {
    uint32_t seen = atomic_load(w);
    if (rw__is_marked(seen, tag)) return 0;
    if (atomic_compare_exchange_strong(w, &seen, state)) return 1;
  }
}

static inline int rw_mpsc_commit(rw_mpsc_producer_t *p);

/* Reserves a record (one outstanding claim per producer): the payload offset, or RW_EAGAIN when full. */
static inline int64_t rw_mpsc_claim(rw_mpsc_producer_t *p, uint32_t length, uint32_t type) {
  int err = 0;
  if (p->r.broken) return RW_ECORRUPT;
  if (length > p->r.capacity - RW_RECORD_HEADER) return RW_EMSGSIZE;
  if (type > RW_MAX_USER_TYPE) return RW_EINVAL;
  if (p->claim_word >= 0 && (err = rw_mpsc_commit(p))) return err;
  uint32_t rec = rw_record_bytes(length);
  _Atomic uint32_t *ktail = rw__word(p->r.kp, RW_OFF_TAIL);
  for (;;) {
    uint32_t tail = atomic_load(ktail), off = tail & p->r.mask;
    if (off + rec > p->r.capacity) {
      uint32_t pad = p->r.capacity - off;
      if (!rw__mpsc_fits(p, tail, pad, &err)) return err ? err : RW_EAGAIN;
      if (!atomic_compare_exchange_strong(ktail, &tail, tail + pad)) continue;
      rw__set(p->r.data, off + 4, RW_TYPE_PADDING);
      if (rw__mpsc_mark(p, off, rw__lap_tag(tail, p->r.shift) | RW_MPSC_COMMITTED | (pad - RW_RECORD_HEADER + 1))) rw__notify_consumer(&p->r);
      continue;
    }
    if (!rw__mpsc_fits(p, tail, rec, &err)) return err ? err : RW_EAGAIN;
    if (!atomic_compare_exchange_strong(ktail, &tail, tail + rec)) continue;
    uint32_t mark = rw__lap_tag(tail, p->r.shift) | rec;
    if (!rw__mpsc_mark(p, off, mark)) continue;
    rw__set(p->r.data, off + 4, type);
    p->claim_word = off;
    p->claim_mark = mark;
    p->claim_len = length;
    return off + RW_RECORD_HEADER;
  }
}

/* Publishes the claim; RW_EREVOKED when the consumer had skipped it as abandoned. */
static inline int rw_mpsc_commit(rw_mpsc_producer_t *p) {
  if (p->claim_word < 0) return 0;
  uint32_t off = (uint32_t)p->claim_word, expected = p->claim_mark;
  p->claim_word = -1;
  uint32_t committed = (expected & ~RW_MPSC_VALUE_MASK) | RW_MPSC_COMMITTED | (p->claim_len + 1);
  if (!atomic_compare_exchange_strong(rw__word(p->r.data, off), &expected, committed)) return RW_EREVOKED;
  rw__notify_consumer(&p->r);
  return 0;
}

/* ---- MPSC consumer ---- */

#define RW_MPSC_KEEP 16 /* unmarked skipped ranges remembered between releases */
#define RW_MPSC_SKIPPED RW_MPSC_COMMITTED /* committed with value 0: no record has it */

typedef struct rw_mpsc_consumer {
  rw_ring_t r;
  uint32_t head, pos, reserved;
  uint32_t offset, length, type;
  /*
   * Abandoned reservations (docs/layout.md, MPSC; lib/ring/mpsc.ts): a record not committed
   * within abandon_ms of reaching the head is skipped, by its size if its writer marked it,
   * else slot by slot (SKIPPED words, kept through release) up to the next marked slot below the
   * tail seen when the timer started. Set abandon_ms before the first read (default 1000).
   */
  int64_t abandon_ms;
  int64_t blocked_since; /* -1: no timer */
  uint32_t blocked_pos, blocked_tail;
  uint32_t keep[2 * RW_MPSC_KEEP];
  uint32_t nkeep;
  uint64_t abandoned;
} rw_mpsc_consumer_t;

static inline int64_t rw__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int rw_mpsc_consumer_attach(rw_mpsc_consumer_t *c, void *producer_block, size_t plen, void *consumer_block,
                                          size_t clen, int data_bell, int space_bell) {
  memset(c, 0, sizeof *c);
  int e = rw_ring_attach(&c->r, RW_KIND_MPSC, producer_block, plen, consumer_block, clen, data_bell, space_bell);
  if (e) return e;
  c->head = c->pos = c->reserved = rw__load(c->r.kc, RW_OFF_HEAD);
  c->abandon_ms = 1000;
  c->blocked_since = -1;
  return 0;
}

static inline int rw__mpsc_refresh(rw_mpsc_consumer_t *c, uint32_t *ahead) {
  uint32_t tail = rw__load(c->r.kp, RW_OFF_TAIL);
  int32_t a = (int32_t)(tail - c->head);
  if ((tail & 7) || a < 0 || (uint32_t)a > c->r.capacity || (int32_t)(tail - c->reserved) < 0) return rw__fail(&c->r);
  c->reserved = tail;
  *ahead = tail - c->pos;
  return 0;
}

static inline uint32_t rw__mpsc_state(rw_mpsc_consumer_t *c, uint32_t off) {
  uint32_t s = rw__load(c->r.data, off);
  return (s & ~(RW_MPSC_VALUE_MASK | RW_MPSC_COMMITTED)) == rw__lap_tag(c->pos, c->r.shift) ? s : 0;
}

static inline void rw_mpsc_release(rw_mpsc_consumer_t *c);

static inline void rw__mpsc_skip(rw_mpsc_consumer_t *c, uint32_t bytes) {
  int release_now = c->pos == c->head;
  c->pos += bytes;
  if (release_now) rw_mpsc_release(c);
}

/* The record at the read position is uncommitted: 1 after skipping it (or when it got committed), 0 to wait, <0 corrupt. */
static inline int rw__mpsc_blocked(rw_mpsc_consumer_t *c, uint32_t off) {
  uint32_t ahead;
  int e = rw__mpsc_refresh(c, &ahead);
  if (e) return e;
  if (ahead == 0) return 0;
  int64_t now = rw__now_ms();
  if (c->blocked_since < 0 || c->blocked_pos != c->pos) {
    c->blocked_pos = c->pos;
    c->blocked_since = now;
    c->blocked_tail = c->reserved;
    return 0;
  }
  if (now - c->blocked_since < c->abandon_ms) return 0;
  uint32_t state = rw__mpsc_state(c, off);
  if (state & RW_MPSC_COMMITTED) return 1;
  uint32_t to_end = c->r.capacity - off, size = state & RW_MPSC_VALUE_MASK;
  if (size) {
    if ((size & 7) || size > to_end || size > ahead) return rw__fail(&c->r);
    uint32_t skipped = (state & ~(RW_MPSC_VALUE_MASK | RW_MPSC_COMMITTED)) | RW_MPSC_SKIPPED;
    /* Seq-cst CAS, paired with the producer's commit CAS: exactly one lands. */
    if (!atomic_compare_exchange_strong(rw__word(c->r.data, off), &state, skipped)) return 1;
    c->blocked_since = -1;
    c->abandoned++;
    rw__mpsc_skip(c, size);
    return 1;
  }
  if (c->nkeep == RW_MPSC_KEEP) return 0; /* remembered enough; skip after the next release */
  uint32_t limit = c->blocked_tail - c->pos < to_end ? c->blocked_tail - c->pos : to_end;
  uint32_t tag = rw__lap_tag(c->pos, c->r.shift), skipped = 0;
  while (skipped < limit) {
    _Atomic uint32_t *w = rw__word(c->r.data, off + skipped);
    uint32_t seen = atomic_load(w);
    if (rw__is_marked(seen, tag)) break;
    /* Paired with the producer's marking CAS: a producer late to mark learns it lost the slot. */
    if (atomic_compare_exchange_strong(w, &seen, tag | RW_MPSC_SKIPPED)) skipped += RW_RECORD_HEADER;
  }
  if (skipped == 0) return 1; /* its writer marked it just now: skip it by its size next time */
  c->blocked_since = -1;
  c->abandoned++;
  c->keep[2 * c->nkeep] = c->pos;
  c->keep[2 * c->nkeep + 1] = c->pos + skipped;
  c->nkeep++;
  rw__mpsc_skip(c, skipped);
  return 1;
}

static inline int64_t rw_mpsc_read(rw_mpsc_consumer_t *c) {
  if (c->r.broken) return RW_ECORRUPT;
  for (;;) {
    uint32_t ahead = c->reserved - c->pos;
    if (ahead == 0) {
      int e = rw__mpsc_refresh(c, &ahead);
      if (e) return e;
      if (ahead == 0) return RW_EAGAIN;
    }
    uint32_t off = c->pos & c->r.mask, state = rw__mpsc_state(c, off);
    if (!(state & RW_MPSC_COMMITTED)) {
      int b = rw__mpsc_blocked(c, off);
      if (b < 0) return b;
      if (b == 0) return RW_EAGAIN;
      continue;
    }
    uint32_t value = state & RW_MPSC_VALUE_MASK;
    if (value == 0) return rw__fail(&c->r); /* SKIPPED where a record should be */
    uint32_t len = value - 1, type = rw__get(c->r.data, off + 4);
    if (ahead < RW_RECORD_HEADER + len) {
      int e = rw__mpsc_refresh(c, &ahead);
      if (e) return e;
    }
    if (type == RW_TYPE_PADDING) {
      uint32_t pad = len + RW_RECORD_HEADER;
      if (off + pad != c->r.capacity || pad > ahead) return rw__fail(&c->r);
      rw__mpsc_skip(c, pad);
      continue;
    }
    uint32_t rec = rw_record_bytes(len);
    if (type > RW_MAX_USER_TYPE || off + rec > c->r.capacity || rec > ahead) return rw__fail(&c->r);
    c->blocked_since = -1;
    c->offset = off + RW_RECORD_HEADER;
    c->length = len;
    c->type = type;
    c->pos += rec;
    return len;
  }
}

static inline void rw__mpsc_zero(rw_mpsc_consumer_t *c, uint32_t from, uint32_t to) {
  while (from != to) {
    uint32_t off = from & c->r.mask, n = to - from;
    if (n > c->r.capacity - off) n = c->r.capacity - off;
    memset(c->r.data + off, 0, n);
    from += n;
  }
}

/* Zeroes the records read (except slots skipped unmarked: a late mark must not land on a zero), then publishes the head. */
static inline void rw_mpsc_release(rw_mpsc_consumer_t *c) {
  if (c->pos == c->head) return;
  uint32_t from = c->head;
  for (uint32_t i = 0; i < c->nkeep; i++) {
    rw__mpsc_zero(c, from, c->keep[2 * i]);
    from = c->keep[2 * i + 1];
  }
  rw__mpsc_zero(c, from, c->pos);
  c->nkeep = 0;
  /* Seq-cst: the zeroes (and our reads) before the head that hands the space back. */
  rw__store(c->r.kc, RW_OFF_HEAD, c->pos);
  c->head = c->pos;
  rw__notify_producers(&c->r);
}

/* True when a committed record waits at the read position. */
static inline int rw_mpsc_available(rw_mpsc_consumer_t *c) {
  uint32_t ahead = c->reserved - c->pos;
  if (ahead == 0 && (rw__mpsc_refresh(c, &ahead) || ahead == 0)) return 0;
  return (rw__mpsc_state(c, c->pos & c->r.mask) & RW_MPSC_COMMITTED) != 0;
}

/*
 * Sleeps until a record can be read or timeout_ms passes (-1: forever). Parks in slices of at most
 * abandon_ms / 4 and runs the abandon logic on every wake: nobody rings for a record whose writer died.
 */
static inline int rw_mpsc_wait(rw_mpsc_consumer_t *c, int timeout_ms) {
  int slice_max = c->abandon_ms / 4 < RW_MAX_PARK_MS ? (int)(c->abandon_ms / 4) + 1 : RW_MAX_PARK_MS;
  for (int waited = 0;;) {
    if (rw_mpsc_available(c)) return 1;
    uint32_t off = c->pos & c->r.mask, ahead = c->reserved - c->pos;
    if (ahead && rw__mpsc_blocked(c, off) == 1) return 1;
    if (timeout_ms >= 0 && waited >= timeout_ms) return 0;
    int slice = timeout_ms < 0 || timeout_ms - waited > slice_max ? slice_max : timeout_ms - waited;
    atomic_fetch_add(rw__word(c->r.kc, RW_OFF_CONSUMER_WAITING), 1);
    if (!rw_mpsc_available(c)) rw_bell_park(c->r.data_bell, slice);
    atomic_fetch_sub(rw__word(c->r.kc, RW_OFF_CONSUMER_WAITING), 1);
    waited += slice;
  }
}

/* ---- Sealed memfd blocks (docs/layout.md "Sharing blocks between processes") ---- */

/* Initialises a zeroed block in place; the magic is stored last. */
static inline void rw_block_init(void *block, uint32_t kind, uint32_t capacity, int producer_side) {
  uint8_t *b = (uint8_t *)block;
  rw__set(b, RW_OFF_VERSION_KIND, RW_LAYOUT_VERSION | kind << 16);
  rw__set(b, RW_OFF_CAPACITY, capacity);
  if (producer_side) rw__set(b, RW_OFF_DATA_OFFSET, RW_PRODUCER_DATA);
  rw__store(b, RW_OFF_MAGIC, producer_side ? RW_PRODUCER_MAGIC : RW_CONSUMER_MAGIC);
}

/*
 * Creates a sealed memfd holding one initialised block, mapped read-write at *mem. Seals: shrink,
 * grow, seal, and (unless peer_writable: MPSC producer blocks) future-write, so the peer's mapping
 * is read-only by force. Returns the fd or -errno.
 */
static inline int rw_block_create(uint32_t kind, uint32_t capacity, int producer_side, const char *name, int peer_writable,
                                  void **mem, size_t *len) {
  if (!rw__valid_capacity(kind, capacity)) return RW_EINVAL;
  size_t size = producer_side ? RW_PRODUCER_DATA + (size_t)capacity : RW_CONSUMER_BLOCK_SIZE;
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING), e;
  if (fd < 0) return -errno;
  if (ftruncate(fd, (off_t)size) < 0) goto fail;
  *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (*mem == MAP_FAILED) goto fail;
  rw_block_init(*mem, kind, capacity, producer_side);
  if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | (peer_writable ? 0 : F_SEAL_FUTURE_WRITE) | F_SEAL_SEAL) < 0) {
    e = -errno;
    munmap(*mem, size);
    close(fd);
    return e;
  }
  *len = size;
  return fd;
fail:
  e = -errno;
  close(fd);
  return e;
}

/*
 * Maps a block fd from a peer, refusing one it could still shrink (a later truncate would SIGBUS
 * us) or re-seal: F_SEAL_SHRINK and F_SEAL_SEAL must both be set, checked before mapping.
 */
static inline int rw_block_map(int fd, int writable, void **mem, size_t *len) {
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0) return -errno;
  if ((seals & (F_SEAL_SHRINK | F_SEAL_SEAL)) != (F_SEAL_SHRINK | F_SEAL_SEAL)) return RW_EINVAL;
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  *mem = mmap(NULL, (size_t)st.st_size, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (*mem == MAP_FAILED) return -errno;
  *len = (size_t)st.st_size;
  return 0;
}

/* ---- Typed messages: checked access to canonical ABI data (docs/types.md) ---- */
typedef struct rw_msg { const uint8_t *base; uint32_t len; } rw_msg_t; /* base 8-aligned */
typedef struct rw_str { uint32_t ptr, len; } rw_str_t;   /* ptr: offset from the message start; len: UTF-8 bytes */
typedef struct rw_list { uint32_t ptr, len; } rw_list_t; /* ptr: offset from the message start; len: elements */
_Static_assert(sizeof(rw_str_t) == 8 && _Alignof(rw_str_t) == 4, "string slot");
_Static_assert(sizeof(rw_list_t) == 8 && _Alignof(rw_list_t) == 4, "list slot");

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no truncation. */
static inline int rw_utf8_valid(const uint8_t *s, uint32_t n) {
  uint32_t i = 0;
  while (i < n) {
    uint8_t b = s[i];
    if (b < 0x80) { i++; continue; }
    uint32_t need, cp, min;
    if (b >= 0xc2 && b <= 0xdf) { need = 1; cp = b & 0x1f; min = 0x80; }
    else if (b >= 0xe0 && b <= 0xef) { need = 2; cp = b & 0x0f; min = 0x800; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; cp = b & 0x07; min = 0x10000; }
    else return 0;
    if (n - i <= need) return 0;
    for (uint32_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) return 0;
    i += need + 1;
  }
  return 1;
}

static inline int rw_char_check(uint32_t c) { return c < 0x110000 && (c < 0xd800 || c >= 0xe000) ? 0 : RW_ECORRUPT; }

/* The elements of a list slot, after checking they lie inside the message and are aligned. */
static inline int rw_list_view(const rw_msg_t *m, const rw_list_t *l, uint32_t elem_size, uint32_t align, const void **out, uint32_t *n) {
  if ((uint64_t)l->ptr + (uint64_t)l->len * elem_size > m->len || (l->ptr & (align - 1))) return RW_ECORRUPT;
  *out = m->base + l->ptr;
  *n = l->len;
  return 0;
}

/* The bytes of a string slot (not NUL-terminated), after bounds and UTF-8 checks. */
static inline int rw_str_view(const rw_msg_t *m, const rw_str_t *s, const char **out, uint32_t *n) {
  if ((uint64_t)s->ptr + s->len > m->len || !rw_utf8_valid(m->base + s->ptr, s->len)) return RW_ECORRUPT;
  *out = (const char *)m->base + s->ptr;
  *n = s->len;
  return 0;
}

static inline int rw_str_validate(const rw_msg_t *m, const rw_str_t *s) {
  const char *p;
  uint32_t n;
  return rw_str_view(m, s, &p, &n);
}

/* Building a message in claimed ring space: the fixed part first, out-of-line data bumped after. */
typedef struct rw_builder { uint8_t *base; uint32_t cap, used; } rw_builder_t;

static inline uint32_t rw_align_up(uint32_t n, uint32_t align) { return (n + align - 1) & ~(align - 1); }
/* Message sizing: `size` grown by `bytes` at the next multiple of `align`. */
static inline uint32_t rw_size_add(uint32_t size, uint32_t bytes, uint32_t align) { return rw_align_up(size, align) + bytes; }

/* Zeroes cap bytes at base (8-aligned) and reserves the root's fixed part; returns base. */
static inline void *rw_b_init(rw_builder_t *b, void *base, uint32_t cap, uint32_t root_size) {
  b->base = (uint8_t *)base;
  b->cap = cap;
  b->used = root_size;
  memset(base, 0, cap);
  return base;
}

/* Room for n elements of size/align: sets the slot and returns the elements, or NULL when it does not fit. */
static inline void *rw_b_list(rw_builder_t *b, rw_list_t *slot, uint32_t n, uint32_t size, uint32_t align) {
  uint32_t at = rw_align_up(b->used, align);
  if ((uint64_t)at + (uint64_t)n * size > b->cap) return NULL;
  slot->ptr = at;
  slot->len = n;
  b->used = at + n * size;
  return b->base + at;
}

static inline int rw_b_str(rw_builder_t *b, rw_str_t *slot, const void *s, uint32_t n) {
  if ((uint64_t)b->used + n > b->cap) return RW_EMSGSIZE;
  memcpy(b->base + b->used, s, n);
  slot->ptr = b->used;
  slot->len = n;
  b->used += n;
  return 0;
}

#endif /* RINGWIRE_H */
