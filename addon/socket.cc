// UNIX domain sockets that carry fds (SCM_RIGHTS): socket, bind, listen, accept, connect, sendmsg,
// recvmsg, SO_PEERCRED, SO_PEERPIDFD and socketpair. Addresses arrive as raw sun_path bytes (a leading NUL for an abstract
// name), built and length-checked in lib/native/unix-socket.ts. Every fd is non-blocking and close-on-exec.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "common.h"

namespace ringwire {

namespace {

// The kernel's per-message limit on passed fds (SCM_MAX_FD).
constexpr size_t kMaxFds = 253;

bool AddressArg(const Napi::CallbackInfo& info, size_t i, sockaddr_un* addr, socklen_t* len) {
  uint8_t* bytes;
  size_t n;
  if (!BytesArg(info, i, &bytes, &n) || n == 0 || n > sizeof addr->sun_path) return false;
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  std::memcpy(addr->sun_path, bytes, n);
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  return true;
}

// socket(stream) -> fd | -errno; SOCK_STREAM when stream is true, else SOCK_SEQPACKET.
Napi::Value Socket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) return NegErrno(env, EINVAL);
  int type = info[0].As<Napi::Boolean>().Value() ? SOCK_STREAM : SOCK_SEQPACKET;
  return SyscallResult(env, socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

// bind(fd, address) -> 0 | -errno.
Napi::Value Bind(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  sockaddr_un addr;
  socklen_t len;
  if (!FdArg(info, 0, &fd) || !AddressArg(info, 1, &addr, &len)) return NegErrno(env, EINVAL);
  return SyscallResult(env, bind(fd, reinterpret_cast<sockaddr*>(&addr), len));
}

// listen(fd, backlog) -> 0 | -errno.
Napi::Value Listen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t backlog;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, &backlog) || backlog < 0 || backlog > INT32_MAX)
    return NegErrno(env, EINVAL);
  return SyscallResult(env, listen(fd, static_cast<int>(backlog)));
}

// accept(fd) -> connected fd | -errno (-EAGAIN when no connection is pending).
Napi::Value Accept(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return NegErrno(env, EINVAL);
  int r;
  do r = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (r < 0 && errno == EINTR);
  return SyscallResult(env, r);
}

// connect(fd, address) -> 0 | -errno. On a UNIX socket this completes at once or fails; -EAGAIN
// means the listener's backlog is full.
Napi::Value Connect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  sockaddr_un addr;
  socklen_t len;
  if (!FdArg(info, 0, &fd) || !AddressArg(info, 1, &addr, &len)) return NegErrno(env, EINVAL);
  int r;
  do r = connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  while (r < 0 && errno == EINTR);
  return SyscallResult(env, r);
}

// sendmsg(fd, data: Uint8Array, fds: Int32Array) -> bytes sent | -errno. Never raises SIGPIPE.
Napi::Value SendMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint8_t* data;
  size_t len;
  int32_t* fds;
  size_t nfds;
  if (!FdArg(info, 0, &fd) || !BytesArg(info, 1, &data, &len) || !Int32ArrayArg(info, 2, &fds, &nfds) ||
      nfds > kMaxFds)
    return NegErrno(env, EINVAL);
  iovec iov = {data, len};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), fds, nfds * sizeof(int));
  }
  ssize_t r;
  do r = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  return SyscallResult(env, r);
}

// recvmsg(fd, data: Uint8Array, fdsOut: Int32Array, meta: Int32Array(2), realLength?: boolean)
// -> bytes | -errno. meta = [fds received, msg_flags]. With realLength (seqpacket only: on a stream
// MSG_TRUNC would discard bytes) a datagram longer than `data` returns its full length, so a
// refusal can say how large it was; the bytes past `data` are discarded either way. Control space is sized for fdsOut.length fds; when more arrive
// the kernel sets MSG_CTRUNC and drops the rest, and the caller decides what to do with those that
// did arrive. Received fds are close-on-exec.
Napi::Value RecvMsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  uint8_t* data;
  size_t len;
  int32_t* fdsOut;
  size_t maxFds;
  int32_t* meta;
  size_t metaLen;
  if (!FdArg(info, 0, &fd) || !BytesArg(info, 1, &data, &len) || !Int32ArrayArg(info, 2, &fdsOut, &maxFds) ||
      !Int32ArrayArg(info, 3, &meta, &metaLen) || maxFds > kMaxFds || metaLen < 2)
    return NegErrno(env, EINVAL);
  bool realLength = info.Length() > 4 && info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  iovec iov = {data, len};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(kMaxFds * sizeof(int))];
  if (maxFds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(maxFds * sizeof(int));
  }
  ssize_t r;
  do r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT | (realLength ? MSG_TRUNC : 0));
  while (r < 0 && errno == EINTR);
  if (r < 0) return NegErrno(env, errno);
  size_t got = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t k = 0; k < n; k++) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
      // The control buffer holds at most maxFds, so this only guards against a malformed header.
      if (got < maxFds) fdsOut[got++] = received;
      else close(received);
    }
  }
  meta[0] = static_cast<int32_t>(got);
  meta[1] = msg.msg_flags;
  return Napi::Number::New(env, static_cast<double>(r));
}

// peerCred(fd, out: Int32Array(3)) -> 0 | -errno; out = [pid, uid, gid] of the peer at connect time.
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int32_t* out;
  size_t n;
  if (!FdArg(info, 0, &fd) || !Int32ArrayArg(info, 1, &out, &n) || n < 3) return NegErrno(env, EINVAL);
  ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return NegErrno(env, errno);
  out[0] = cred.pid;
  out[1] = static_cast<int32_t>(cred.uid);
  out[2] = static_cast<int32_t>(cred.gid);
  return Napi::Number::New(env, 0);
}

// socketpair(out: Int32Array(2)) -> 0 | -errno; a connected SOCK_SEQPACKET pair (the agent hands one
// end to each peer of a brokered channel).
Napi::Value SocketPair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t* out;
  size_t n;
  if (!Int32ArrayArg(info, 0, &out, &n) || n < 2) return NegErrno(env, EINVAL);
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return NegErrno(env, errno);
  out[0] = fds[0];
  out[1] = fds[1];
  return Napi::Number::New(env, 0);
}

// peerPidfd(fd) -> pidfd | -errno: a pidfd for the process that connected (SO_PEERPIDFD, Linux
// 6.5+, taken by the kernel at connect time, so a recycled pid cannot stand in). Older kernels:
// -ENOPROTOOPT, and the caller may fall back to pidfdOpen(pid).
Napi::Value PeerPidfd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return NegErrno(env, EINVAL);
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0) return NegErrno(env, errno);
  // The kernel returns it without O_CLOEXEC.
  if (fcntl(pidfd, F_SETFD, FD_CLOEXEC) < 0) {
    int err = errno;
    close(pidfd);
    return NegErrno(env, err);
  }
  return Napi::Number::New(env, pidfd);
}

// pidfdOpen(pid) -> pidfd | -errno (close-on-exec; pidfd_open always sets it).
Napi::Value PidfdOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int64_t pid;
  if (!IntArg(info, 0, &pid) || pid <= 0 || pid > INT32_MAX) return NegErrno(env, EINVAL);
  return SyscallResult(env, syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socket", Napi::Function::New(env, Socket, "socket"));
  exports.Set("bind", Napi::Function::New(env, Bind, "bind"));
  exports.Set("listen", Napi::Function::New(env, Listen, "listen"));
  exports.Set("accept", Napi::Function::New(env, Accept, "accept"));
  exports.Set("connect", Napi::Function::New(env, Connect, "connect"));
  exports.Set("sendmsg", Napi::Function::New(env, SendMsg, "sendmsg"));
  exports.Set("recvmsg", Napi::Function::New(env, RecvMsg, "recvmsg"));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred, "peerCred"));
  exports.Set("socketpair", Napi::Function::New(env, SocketPair, "socketpair"));
  exports.Set("peerPidfd", Napi::Function::New(env, PeerPidfd, "peerPidfd"));
  exports.Set("pidfdOpen", Napi::Function::New(env, PidfdOpen, "pidfdOpen"));
  Napi::Object flags = Napi::Object::New(env);
  flags.Set("MSG_TRUNC", Napi::Number::New(env, MSG_TRUNC));
  flags.Set("MSG_CTRUNC", Napi::Number::New(env, MSG_CTRUNC));
  exports.Set("msgFlags", flags);
}

}  // namespace ringwire
