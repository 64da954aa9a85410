/*
 * An MPSC consumer in C for test/87: creates both blocks of an MPSC ring (sealed memfds; the
 * producer block stays mappable read-write for producers) and its data bell, connects to a Node
 * service and sends "rwq1" + [producer block, consumer block, data bell]; receives the producers'
 * space bell ("rwq2"). Then validates typed kitchen requests until a type 2 record, sleeping on its
 * bell, skipping reservations abandoned for 100 ms, and prints "<valid> <invalid> <abandoned> <parks>".
 * argv: SOCKET CAPACITY
 */
#include "ringwire.h"
#include "kitchen.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

static int die(const char *what, int e) {
  fprintf(stderr, "mpsc-consumer: %s: %d\n", what, e);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: mpsc-consumer SOCKET CAPACITY", 0);
  uint32_t cap = (uint32_t)strtoul(argv[2], NULL, 0);
  int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect", errno);

  void *pblock, *cblock;
  size_t plen, clen;
  int fds[3];
  fds[0] = rw_block_create(RW_KIND_MPSC, cap, 1, "c-mpsc-producer", 1, &pblock, &plen);
  fds[1] = rw_block_create(RW_KIND_MPSC, cap, 0, "c-mpsc-consumer", 0, &cblock, &clen);
  fds[2] = eventfd(0, EFD_CLOEXEC);
  for (int i = 0; i < 3; i++) if (fds[i] < 0) die("create", fds[i]);
  char cbuf[CMSG_SPACE(sizeof fds)];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = { .iov_base = "rwq1", .iov_len = 4 };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  if (sendmsg(sock, &msg, 0) < 0) die("sendmsg", errno);

  char data[16], rbuf[CMSG_SPACE(sizeof(int))];
  struct iovec riov = { .iov_base = data, .iov_len = sizeof data };
  struct msghdr in = { .msg_iov = &riov, .msg_iovlen = 1, .msg_control = rbuf, .msg_controllen = sizeof rbuf };
  if (recvmsg(sock, &in, MSG_CMSG_CLOEXEC) < 0) die("recvmsg", errno);
  struct cmsghdr *rc = CMSG_FIRSTHDR(&in);
  if (!rc || rc->cmsg_len != CMSG_LEN(sizeof(int))) die("expected the space bell", 0);
  int space_bell;
  memcpy(&space_bell, CMSG_DATA(rc), sizeof(int));

  rw_mpsc_consumer_t q;
  int e;
  if ((e = rw_mpsc_consumer_attach(&q, pblock, plen, cblock, clen, fds[2], space_bell))) die("attach", e);
  q.abandon_ms = 100;
  unsigned long valid = 0, invalid = 0, parks = 0;
  for (;;) {
    int64_t len = rw_mpsc_read(&q);
    if (len == RW_EAGAIN) {
      rw_mpsc_release(&q);
      parks++;
      rw_mpsc_wait(&q, -1);
      continue;
    }
    if (len < 0) die("read", (int)len);
    if (q.type == 2) break;
    rw_msg_t m = { q.r.data + q.offset, (uint32_t)len };
    if (rw_request_check(&m)) valid++;
    else invalid++;
    if ((valid + invalid) % 16 == 0) rw_mpsc_release(&q);
  }
  rw_mpsc_release(&q);
  printf("%lu %lu %llu %lu\n", valid, invalid, (unsigned long long)q.abandoned, parks);
  return 0;
}
