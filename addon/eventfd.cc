// eventfd doorbells: create, signal (write a u64), drain (a read that never blocks), and a blocking
// poll(2) for worker threads. Event-loop waiting lives in poller.cc.
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "common.h"

#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008  // include/uapi/linux/fs.h; older C libraries lack the name
#endif

namespace ringwire {

namespace {

// eventfdCreate(semaphore) -> fd | -errno. Non-blocking so a drain never parks the event loop.
Napi::Value EventfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) return NegErrno(env, EINVAL);
  int flags = EFD_CLOEXEC | EFD_NONBLOCK | (info[0].As<Napi::Boolean>().Value() ? EFD_SEMAPHORE : 0);
  return SyscallResult(env, eventfd(0, flags));
}

// Whether `fd` is ready for `events` right now: 1, 0, or -errno (-EBADF for a closed fd).
int PollNow(int fd, short events) {
  struct pollfd pfd = {fd, events, 0};
  int r;
  do r = poll(&pfd, 1, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) return -errno;
  if (pfd.revents & POLLNVAL) return -EBADF;
  return r > 0 && (pfd.revents & events) ? 1 : 0;
}

// eventfdWrite(fd, n) -> 0 | -errno; adds n (1..2^53-1) to the counter. -EAGAIN when it would overflow.
// O_NONBLOCK lives on the open file description, which a peer holding the fd shares and may clear,
// and eventfd writes do not honour RWF_NOWAIT. So poll first: POLLOUT means a write of 1 cannot
// block. A peer that fills the counter between the poll and the write still blocks us (docs/native.md).
Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t n;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, &n) || n < 1) return NegErrno(env, EINVAL);
  int ready = PollNow(fd, POLLOUT);
  if (ready < 0) return NegErrno(env, -ready);
  if (ready == 0) return NegErrno(env, EAGAIN);
  uint64_t value = static_cast<uint64_t>(n);
  ssize_t r;
  do r = write(fd, &value, sizeof value);
  while (r < 0 && errno == EINTR);
  if (r < 0) return NegErrno(env, errno);
  if (r != sizeof value) return NegErrno(env, EIO);
  return Napi::Number::New(env, 0);
}

// One read of the counter that never blocks, whatever a peer did to O_NONBLOCK: preadv2 with
// RWF_NOWAIT returns EAGAIN at 0 even on a blocking description. Kernels whose eventfd lacks
// RWF_NOWAIT (EOPNOTSUPP, or ENOSYS without preadv2) get poll-then-read, which a second reader
// draining the counter between the two calls could still block.
ssize_t ReadCounterNoWait(int fd, uint64_t* value) {
  struct iovec iov = {value, sizeof *value};
  ssize_t r;
  do r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
  while (r < 0 && errno == EINTR);
  if (r >= 0 || (errno != EOPNOTSUPP && errno != ENOSYS)) return r;
  int ready = PollNow(fd, POLLIN);
  if (ready <= 0) {
    errno = ready < 0 ? -ready : EAGAIN;
    return -1;
  }
  do r = read(fd, value, sizeof *value);
  while (r < 0 && errno == EINTR);
  return r;
}

// eventfdRead(fd) -> counter (>= 1) | -errno (-EAGAIN when nothing is pending). A counter above
// 2^53 loses precision as a JS number; a doorbell only needs "non-zero".
Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return NegErrno(env, EINVAL);
  uint64_t value;
  ssize_t r = ReadCounterNoWait(fd, &value);
  if (r < 0) return NegErrno(env, errno);
  if (r != sizeof value) return NegErrno(env, EIO);
  return Napi::Number::New(env, static_cast<double>(value));
}

int64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// pollWait(fd, events, timeoutMs) -> revents | 0 on timeout | -errno. Blocks the calling thread;
// timeoutMs < 0 waits forever. Signals do not shorten the wait.
Napi::Value PollWait(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t events, timeout;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, &events) || !IntArg(info, 2, &timeout) || events < 0 ||
      events > 0xffff || timeout > INT32_MAX)
    return NegErrno(env, EINVAL);
  struct pollfd pfd = {fd, static_cast<short>(events), 0};
  int64_t deadline = timeout < 0 ? -1 : NowMs() + timeout;
  for (;;) {
    int wait = deadline < 0 ? -1 : static_cast<int>(std::max<int64_t>(0, deadline - NowMs()));
    int r = poll(&pfd, 1, wait);
    if (r >= 0) return Napi::Number::New(env, r == 0 ? 0 : pfd.revents);
    if (errno != EINTR) return NegErrno(env, errno);
  }
}

}  // namespace

void InitEventFd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfdCreate", Napi::Function::New(env, EventfdCreate, "eventfdCreate"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
  exports.Set("pollWait", Napi::Function::New(env, PollWait, "pollWait"));
}

}  // namespace ringwire
