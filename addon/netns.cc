// Sockets opened inside another network namespace. A socket belongs to the namespace of the thread
// that created it and keeps it for life, so the agent can serve an abstract name inside a pod's
// namespace from its own event loop. The namespace switch happens on a short-lived native thread
// made for the call: setns() changes only the calling thread, and neither the Node thread nor a
// libuv pool thread (which would carry the namespace into unrelated later work) ever switches.
//
// netnsListen(nsPath, address, backlog) -> listening fd | -errno
// netnsConnect(nsPath, address)          -> connected fd | -errno
// Sockets are AF_UNIX SOCK_SEQPACKET, non-blocking, close-on-exec; `address` is raw sun_path bytes
// (a leading NUL for an abstract name), as in socket.cc. A path that is not a network namespace
// gives -EINVAL (from setns), a missing one -ENOENT.
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common.h"

namespace ringwire {

namespace {

struct NetnsCall {
  std::string nsPath;
  sockaddr_un addr;
  socklen_t addrLen;
  int backlog;  // >= 0: bind + listen; < 0: connect
  int result;   // fd | -errno, written by the thread
};

int OpenSocketIn(NetnsCall* call) {
  int nsfd = open(call->nsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) return -errno;
  int r = setns(nsfd, CLONE_NEWNET);
  int err = errno;
  close(nsfd);
  if (r < 0) return -err;
  int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  const sockaddr* sa = reinterpret_cast<const sockaddr*>(&call->addr);
  if (call->backlog >= 0) {
    r = bind(fd, sa, call->addrLen);
    if (r == 0) r = listen(fd, call->backlog);
  } else {
    do r = connect(fd, sa, call->addrLen);
    while (r < 0 && errno == EINTR);
  }
  if (r < 0) {
    err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

// The thread ends right after the call, taking its namespace with it.
void* NetnsThread(void* arg) {
  NetnsCall* call = static_cast<NetnsCall*>(arg);
  call->result = OpenSocketIn(call);
  return nullptr;
}

Napi::Value RunInNetns(const Napi::CallbackInfo& info, bool listening) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString()) return NegErrno(env, EINVAL);
  NetnsCall call;
  call.nsPath = info[0].As<Napi::String>().Utf8Value();
  if (call.nsPath.empty() || call.nsPath.find('\0') != std::string::npos) return NegErrno(env, EINVAL);
  uint8_t* bytes;
  size_t n;
  if (!BytesArg(info, 1, &bytes, &n) || n == 0 || n > sizeof call.addr.sun_path) return NegErrno(env, EINVAL);
  std::memset(&call.addr, 0, sizeof call.addr);
  call.addr.sun_family = AF_UNIX;
  std::memcpy(call.addr.sun_path, bytes, n);
  call.addrLen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n);
  call.backlog = -1;
  if (listening) {
    int64_t backlog;
    if (!IntArg(info, 2, &backlog) || backlog < 0 || backlog > INT32_MAX) return NegErrno(env, EINVAL);
    call.backlog = static_cast<int>(backlog);
  }
  call.result = -EINVAL;
  pthread_t thread;
  int r = pthread_create(&thread, nullptr, NetnsThread, &call);
  if (r != 0) return NegErrno(env, r);
  // The work is a handful of system calls that do not block (the socket is non-blocking), so the
  // Node thread waits for it rather than going asynchronous.
  r = pthread_join(thread, nullptr);
  if (r != 0) return NegErrno(env, r);
  return Napi::Number::New(env, call.result);
}

Napi::Value NetnsListen(const Napi::CallbackInfo& info) { return RunInNetns(info, true); }
Napi::Value NetnsConnect(const Napi::CallbackInfo& info) { return RunInNetns(info, false); }

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsListen", Napi::Function::New(env, NetnsListen, "netnsListen"));
  exports.Set("netnsConnect", Napi::Function::New(env, NetnsConnect, "netnsConnect"));
}

}  // namespace ringwire
