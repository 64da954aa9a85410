// Generic fd calls shared by every kind of fd the addon hands out.
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common.h"

namespace ringwire {

namespace {

// close(fd) -> 0 | -errno. EINTR is not retried: on Linux the fd is released even then.
Napi::Value Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return NegErrno(env, EINVAL);
  int r = close(fd);
  if (r < 0 && errno == EINTR) return Napi::Number::New(env, 0);
  return SyscallResult(env, r);
}

// dup(fd) -> new close-on-exec fd | -errno.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return NegErrno(env, EINVAL);
  return SyscallResult(env, fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

// pidfdOpen(pid) -> close-on-exec pidfd | -errno (ESRCH: no such process). A pidfd refers to the
// process itself, not its number, and becomes readable when the process exits (Linux 5.3+).
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t pid;
  if (!IntArg(info, 0, &pid) || pid <= 0 || pid > INT32_MAX) return NegErrno(env, EINVAL);
#ifdef SYS_pidfd_open
  // pidfd_open's fd is always close-on-exec.
  return SyscallResult(env, static_cast<int>(syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0)));
#else
  return NegErrno(env, ENOSYS);
#endif
}

// strerror(errno) -> the C library's description.
Napi::Value StrError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t e;
  if (!IntArg(info, 0, &e) || e < 0 || e > 4095) return Napi::String::New(env, "unknown error");
  char buf[128];
  return Napi::String::New(env, strerror_r(static_cast<int>(e), buf, sizeof buf));
}

// setNonblocking(fd) -> 0 | -errno. Sets O_NONBLOCK on the open file description, which a peer
// that sent the fd shares.
Napi::Value SetNonblocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return NegErrno(env, EINVAL);
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0) return NegErrno(env, errno);
  if (flags & O_NONBLOCK) return Napi::Number::New(env, 0);
  return SyscallResult(env, fcntl(fd, F_SETFL, flags | O_NONBLOCK));
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  exports.Set("setNonblocking", Napi::Function::New(env, SetNonblocking, "setNonblocking"));
  exports.Set("strerror", Napi::Function::New(env, StrError, "strerror"));
}

}  // namespace ringwire
