// Shared-memory regions: memfd creation, size, seals, and mapping an fd as a SharedArrayBuffer.
// Bounds (offset + length within the file) are checked in lib/native/region.ts before mmap is called.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "common.h"

namespace ringwire {

namespace {

// memfdCreate(name) -> fd | -errno. Always close-on-exec and sealable: a region fd must not leak
// into exec'ed children, and sealing is how a peer is kept from shrinking it.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) return NegErrno(env, EINVAL);
  std::string name = info[0].As<Napi::String>().Utf8Value();
  return SyscallResult(env, memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
}

// open(path, writable) -> fd | -errno, close-on-exec.
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBoolean()) return NegErrno(env, EINVAL);
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int flags = (info[1].As<Napi::Boolean>().Value() ? O_RDWR : O_RDONLY) | O_CLOEXEC;
  int fd;
  do fd = open(path.c_str(), flags);
  while (fd < 0 && errno == EINTR);
  return SyscallResult(env, fd);
}

// ftruncate(fd, size) -> 0 | -errno.
Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t size;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, &size) || size < 0) return NegErrno(env, EINVAL);
  int r;
  do r = ftruncate(fd, size);
  while (r < 0 && errno == EINTR);
  return SyscallResult(env, r);
}

// fstat(fd, out: Float64Array(2)) -> 0 | -errno; out = [st_size, st_mode].
Napi::Value Fstat(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  double* out;
  size_t n;
  if (!FdArg(info, 0, &fd) || !Float64ArrayArg(info, 1, &out, &n) || n < 2) return NegErrno(env, EINVAL);
  struct stat st;
  if (fstat(fd, &st) < 0) return NegErrno(env, errno);
  out[0] = static_cast<double>(st.st_size);
  out[1] = static_cast<double>(st.st_mode);
  return Napi::Number::New(env, 0);
}

// addSeals(fd, seals) -> 0 | -errno.
Napi::Value AddSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t seals;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, &seals) || seals < 0 || seals > INT32_MAX) return NegErrno(env, EINVAL);
  return SyscallResult(env, fcntl(fd, F_ADD_SEALS, static_cast<int>(seals)));
}

// getSeals(fd) -> seals | -errno.
Napi::Value GetSeals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  if (!FdArg(info, 0, &fd)) return NegErrno(env, EINVAL);
  return SyscallResult(env, fcntl(fd, F_GET_SEALS));
}

// mmap(fd, offset, length, writable) -> SharedArrayBuffer | -errno. MAP_SHARED so other processes
// see the writes; an unaligned offset maps from the page below it and the buffer starts inside it.
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd;
  int64_t offset, length;
  if (!FdArg(info, 0, &fd) || !IntArg(info, 1, &offset) || !IntArg(info, 2, &length) || info.Length() < 4 ||
      !info[3].IsBoolean() || offset < 0 || length <= 0)
    return NegErrno(env, EINVAL);
  bool writable = info[3].As<Napi::Boolean>().Value();
  int64_t page = sysconf(_SC_PAGESIZE);
  int64_t pageOffset = offset % page;
  int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;
  void* base = mmap(nullptr, static_cast<size_t>(length + pageOffset), prot, MAP_SHARED, fd, offset - pageOffset);
  if (base == MAP_FAILED) return NegErrno(env, errno);
  return NewMappedSharedArrayBuffer(env, base, static_cast<size_t>(pageOffset), static_cast<size_t>(length));
}

}  // namespace

void InitRegion(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("open", Napi::Function::New(env, Open, "open"));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  exports.Set("fstat", Napi::Function::New(env, Fstat, "fstat"));
  exports.Set("addSeals", Napi::Function::New(env, AddSeals, "addSeals"));
  exports.Set("getSeals", Napi::Function::New(env, GetSeals, "getSeals"));
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("releaseMapping", Napi::Function::New(env, ReleaseMapping, "releaseMapping"));
}

}  // namespace ringwire
