/*
 * An MPSC producer in C for test/87: connects to a Node MPSC consumer's SEQPACKET socket, receives
 * [producer block, consumer block, data bell], sends back its own space bell ("rwm1"), then sends
 * COUNT typed kitchen requests {id = ID << 32 | i, name "producer-ID", values [i, -i]}, parking on
 * its space bell when the ring is full. With ABANDON it claims one record and dies without
 * committing it, as a crashed producer would. argv: SOCKET ID COUNT [ABANDON]
 */
#include "ringwire.h"
#include "kitchen.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

static int die(const char *what, int e) {
  fprintf(stderr, "mpsc-producer: %s: %d\n", what, e);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 4) die("usage: mpsc-producer SOCKET ID COUNT [ABANDON]", 0);
  unsigned id = (unsigned)strtoul(argv[2], NULL, 0), count = (unsigned)strtoul(argv[3], NULL, 0);
  int abandon = argc > 4 && strcmp(argv[4], "abandon") == 0;
  int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect", errno);

  char data[16], cbuf[CMSG_SPACE(sizeof(int) * 3)];
  struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) < 0) die("recvmsg", errno);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_len != CMSG_LEN(sizeof(int) * 3)) die("expected 3 fds", 0);
  int fds[3];
  memcpy(fds, CMSG_DATA(c), sizeof fds);

  int space_bell = eventfd(0, EFD_CLOEXEC);
  char ccbuf[CMSG_SPACE(sizeof(int))];
  memset(ccbuf, 0, sizeof ccbuf);
  struct iovec oiov = { .iov_base = "rwm1", .iov_len = 4 };
  struct msghdr out = { .msg_iov = &oiov, .msg_iovlen = 1, .msg_control = ccbuf, .msg_controllen = sizeof ccbuf };
  struct cmsghdr *oc = CMSG_FIRSTHDR(&out);
  oc->cmsg_level = SOL_SOCKET;
  oc->cmsg_type = SCM_RIGHTS;
  oc->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(oc), &space_bell, sizeof(int));
  if (sendmsg(sock, &out, 0) < 0) die("sendmsg", errno);

  void *pblock, *cblock;
  size_t plen, clen;
  int e;
  if ((e = rw_block_map(fds[0], 1, &pblock, &plen))) die("map producer block", e);
  if ((e = rw_block_map(fds[1], 0, &cblock, &clen))) die("map consumer block", e);
  rw_mpsc_producer_t p;
  if ((e = rw_mpsc_producer_attach(&p, pblock, plen, cblock, clen, fds[2], space_bell))) die("attach", e);

  char name[32];
  int name_len = snprintf(name, sizeof name, "producer-%u", id);
  uint32_t size = rw_size_add(rw_size_add(sizeof(rw_request_t), (uint32_t)name_len, 1), 2 * 4, 4);
  for (unsigned i = 0; i < count + (unsigned)abandon; i++) {
    int64_t off;
    while ((off = rw_mpsc_claim(&p, size, 1)) == RW_EAGAIN) {
      /* Park for space: count ourselves waiting (seq-cst), re-check, sleep on our bell. */
      atomic_fetch_add(rw__word(p.r.kp, RW_OFF_PRODUCER_WAITING), 1);
      if ((off = rw_mpsc_claim(&p, size, 1)) == RW_EAGAIN) rw_bell_park(space_bell, RW_MAX_PARK_MS);
      atomic_fetch_sub(rw__word(p.r.kp, RW_OFF_PRODUCER_WAITING), 1);
      if (off >= 0) break;
    }
    if (off < 0) die("claim", (int)off);
    if (abandon) _exit(0); /* reserved and marked, never committed */
    rw_builder_t b;
    rw_request_t *r = (rw_request_t *)rw_b_init(&b, p.r.data + off, size, sizeof(rw_request_t));
    r->id = (uint64_t)id << 32 | i;
    rw_b_str(&b, &r->name, name, (uint32_t)name_len);
    int32_t *v = (int32_t *)rw_b_list(&b, &r->values, 2, 4, 4);
    v[0] = (int32_t)i;
    v[1] = -(int32_t)i;
    if (b.used != size) die("sized wrong", (int)b.used);
    if ((e = rw_mpsc_commit(&p))) die("commit", e);
  }
  return 0;
}
