/*
 * A C service for test/87: connects to a Node service's SEQPACKET socket, creates its halves of two
 * SPSC rings (Node -> C requests, C -> Node replies) in sealed memfds, trades fds, then answers
 * typed kitchen requests in place (kitchen-echo.h), sleeping on the eventfd doorbell when idle.
 *
 *   handshake: C sends "rwc1" with [n2c consumer block, n2c data bell, c2n producer block, c2n space bell];
 *              Node replies "rwn1" with [n2c producer block, n2c space bell, c2n consumer block, c2n data bell].
 *   argv: SOCKET CAPACITY [SPIN]: SPIN polls of an empty ring before parking (default 0: park at once).
 *   type 1 requests are kitchen requests; a corrupt one gets an empty type 3 reply; type 2 ends the
 *   service, which replies type 2 with "<requests> <parks>".
 */
#include "ringwire.h"
#include "kitchen-echo.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

static int die(const char *what, int e) {
  fprintf(stderr, "echo: %s: %d\n", what, e);
  exit(1);
}

static void send_fds(int sock, const char *tag, const int *fds, int n) {
  char cbuf[CMSG_SPACE(sizeof(int) * 8)];
  memset(cbuf, 0, sizeof cbuf);
  struct iovec iov = { .iov_base = (void *)tag, .iov_len = strlen(tag) };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n) };
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
  if (sendmsg(sock, &msg, 0) < 0) die("sendmsg", errno);
}

static void recv_fds(int sock, int *fds, int n) {
  char data[16], cbuf[CMSG_SPACE(sizeof(int) * 8)];
  struct iovec iov = { .iov_base = data, .iov_len = sizeof data };
  struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf };
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) < 0) die("recvmsg", errno);
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int) * (size_t)n)) die("expected fds", 0);
  memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)n);
}

int main(int argc, char **argv) {
  if (argc < 3) die("usage: echo SOCKET CAPACITY", 0);
  uint32_t cap = (uint32_t)strtoul(argv[2], NULL, 0);
  unsigned long spin = argc > 3 ? strtoul(argv[3], NULL, 0) : 0, idle = 0;
  int sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  strncpy(addr.sun_path, argv[1], sizeof addr.sun_path - 1);
  if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect", errno);

  void *n2c_cons, *c2n_prod;
  size_t n2c_cons_len, c2n_prod_len;
  int mine[4];
  mine[0] = rw_block_create(RW_KIND_SPSC, cap, 0, "echo-n2c-consumer", 0, &n2c_cons, &n2c_cons_len);
  mine[1] = eventfd(0, EFD_CLOEXEC);
  mine[2] = rw_block_create(RW_KIND_SPSC, cap, 1, "echo-c2n-producer", 0, &c2n_prod, &c2n_prod_len);
  mine[3] = eventfd(0, EFD_CLOEXEC);
  for (int i = 0; i < 4; i++) if (mine[i] < 0) die("create", mine[i]);
  send_fds(sock, "rwc1", mine, 4);
  int theirs[4];
  recv_fds(sock, theirs, 4);
  void *n2c_prod, *c2n_cons;
  size_t n2c_prod_len, c2n_cons_len;
  int e;
  if ((e = rw_block_map(theirs[0], 0, &n2c_prod, &n2c_prod_len))) die("map n2c producer block", e);
  if ((e = rw_block_map(theirs[2], 0, &c2n_cons, &c2n_cons_len))) die("map c2n consumer block", e);

  rw_spsc_consumer_t in;
  rw_spsc_producer_t out;
  if ((e = rw_spsc_consumer_attach(&in, n2c_prod, n2c_prod_len, n2c_cons, n2c_cons_len, mine[1], theirs[1]))) die("attach consumer", e);
  if ((e = rw_spsc_producer_attach(&out, c2n_prod, c2n_prod_len, c2n_cons, c2n_cons_len, theirs[3], mine[3]))) die("attach producer", e);

  unsigned long requests = 0, parks = 0;
  for (;;) {
    int64_t len = rw_spsc_read(&in);
    if (len == RW_EAGAIN) {
      if (++idle <= spin) continue;
      idle = 0;
      parks++;
      rw_spsc_wait(&in, -1);
      continue;
    }
    idle = 0;
    if (len < 0) die("read", (int)len);
    rw_msg_t m = { in.r.data + in.offset, (uint32_t)len };
    uint32_t type = in.type;
    if (type == 2) {
      char text[64];
      int n = snprintf(text, sizeof text, "%lu %lu", requests, parks);
      rw_spsc_release(&in);
      int64_t off;
      while ((off = rw_spsc_claim(&out, (uint32_t)n, 2)) == RW_EAGAIN) rw_spsc_wait_space(&out, (uint32_t)n, -1);
      memcpy(out.r.data + off, text, (size_t)n);
      rw_spsc_commit(&out);
      return 0;
    }
    requests++;
    const rw_request_t *q = rw_request_check(&m);
    uint32_t size = q ? echo_size(&m, q) : 0;
    int64_t off;
    while ((off = rw_spsc_claim(&out, size, q ? 1 : 3)) == RW_EAGAIN) rw_spsc_wait_space(&out, size, -1);
    if (off < 0) die("claim", (int)off);
    if (q && echo_build(&m, q, out.r.data + off, size) != size) die("sized wrong", (int)size);
    rw_spsc_release(&in);
    rw_spsc_commit(&out);
  }
}
