// Shared helpers for the ringwire addon. Every exported function is a thin system call: it takes
// numbers, fds and buffers, returns a number (>= 0 on success, -errno on failure) or a value, and
// never throws. Argument shapes are validated in lib/ before the call; a native argument that still
// has the wrong shape yields -EINVAL rather than undefined behaviour.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace ringwire {

// The result of a system call as JS sees it: the value itself, or -errno when it failed.
inline Napi::Value SyscallResult(Napi::Env env, long result) {
  return Napi::Number::New(env, result < 0 ? -errno : result);
}

inline Napi::Value NegErrno(Napi::Env env, int err) { return Napi::Number::New(env, -err); }

// Reads argument `i` as an integer that fits in int64; false when it is not an integral Number.
bool IntArg(const Napi::CallbackInfo& info, size_t i, int64_t* out);
// Reads argument `i` as a file descriptor (0..INT32_MAX).
bool FdArg(const Napi::CallbackInfo& info, size_t i, int* out);
// Reads argument `i` as the bytes of a TypedArray, DataView-free: Uint8Array/Buffer only.
bool BytesArg(const Napi::CallbackInfo& info, size_t i, uint8_t** data, size_t* len);
// Reads argument `i` as an Int32Array (fd lists, small out-parameters).
bool Int32ArrayArg(const Napi::CallbackInfo& info, size_t i, int32_t** data, size_t* len);
// Reads argument `i` as a Float64Array (out-parameters wider than 32 bits).
bool Float64ArrayArg(const Napi::CallbackInfo& info, size_t i, double** data, size_t* len);

// Creates a SharedArrayBuffer over [base + dataOffset, base + dataOffset + length) that munmaps the
// whole mapping when the last reference to it, in any thread, is gone. On failure the mapping is
// unmapped and -ENOMEM returned.
Napi::Value NewMappedSharedArrayBuffer(Napi::Env env, void* base, size_t dataOffset, size_t length);
Napi::Value ReleaseMapping(const Napi::CallbackInfo& info);

void InitFd(Napi::Env env, Napi::Object exports);
void InitRegion(Napi::Env env, Napi::Object exports);
void InitEventFd(Napi::Env env, Napi::Object exports);
void InitPoller(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);

}  // namespace ringwire
