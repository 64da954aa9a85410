// A SharedArrayBuffer over an mmap'ed region. The mapping must outlive every JS reference, in every
// thread the buffer is posted to, so its lifetime is tied to the buffer's backing store: the deleter
// munmaps when V8 frees the last reference. The deleter may run on any thread and after the
// creating environment is gone, so it touches nothing but the mapping itself.
#define NAPI_EXPERIMENTAL
#define NODE_API_EXPERIMENTAL_NO_WARNING
#include <sys/mman.h>

#include <cstring>
#include <mutex>
#include <unordered_map>

#include "common.h"

#ifndef NODE_API_EXPERIMENTAL_HAS_CREATE_EXTERNAL_SHAREDARRAYBUFFER
#include <v8.h>
#endif

namespace ringwire {

namespace {

// Every live mapping made here, by the address of its buffer's first byte: releaseMapping() may
// only replace pages it can prove are one of ours. Process-wide on purpose (mappings are, and the
// deleter runs on whichever thread frees the last reference), hence the lock.
struct Mapping {
  size_t length;
  size_t pageOffset;
};
std::mutex mappingsLock;
std::unordered_map<uintptr_t, Mapping>& Mappings() {
  static auto* mappings = new std::unordered_map<uintptr_t, Mapping>();
  return *mappings;
}

// The buffer may start inside the first page (a mapping at an unaligned file offset); the page
// offset travels as the deleter's hint so no allocation outlives the environment.
void UnmapRegion(void* data, size_t length, void* hint) {
  size_t pageOffset = reinterpret_cast<uintptr_t>(hint);
  {
    std::lock_guard<std::mutex> hold(mappingsLock);
    Mappings().erase(reinterpret_cast<uintptr_t>(data));
  }
  munmap(static_cast<char*>(data) - pageOffset, length + pageOffset);
}

void Remember(void* data, size_t length, size_t pageOffset) {
  std::lock_guard<std::mutex> hold(mappingsLock);
  Mappings()[reinterpret_cast<uintptr_t>(data)] = Mapping{length, pageOffset};
}

#ifdef NODE_API_EXPERIMENTAL_HAS_CREATE_EXTERNAL_SHAREDARRAYBUFFER
struct Span {
  size_t length;
  size_t pageOffset;
};
#endif

}  // namespace

Napi::Value NewMappedSharedArrayBuffer(Napi::Env env, void* base, size_t dataOffset, size_t length) {
  void* data = static_cast<char*>(base) + dataOffset;
  void* hint = reinterpret_cast<void*>(static_cast<uintptr_t>(dataOffset));
  Remember(data, length, dataOffset);
#ifdef NODE_API_EXPERIMENTAL_HAS_CREATE_EXTERNAL_SHAREDARRAYBUFFER
  // This finalizer gets no length, so the mapping span travels in a small allocation it frees.
  Span* span = new Span{length, dataOffset};
  napi_value result;
  napi_status status = node_api_create_external_sharedarraybuffer(
      env, data, length,
      [](void* d, void* h) {
        Span* s = static_cast<Span*>(h);
        UnmapRegion(d, s->length, reinterpret_cast<void*>(static_cast<uintptr_t>(s->pageOffset)));
        delete s;
      },
      span, &result);
  if (status != napi_ok) {
    delete span;
    UnmapRegion(data, length, hint);
    return NegErrno(env, ENOMEM);
  }
  return Napi::Value(env, result);
#else
  // Node 20 has no Node-API for an external SharedArrayBuffer. A napi_value is a V8 local handle in
  // every Node release, so the V8 object created here crosses the boundary by value.
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  std::shared_ptr<v8::BackingStore> store =
      v8::SharedArrayBuffer::NewBackingStore(data, length, UnmapRegion, hint);
  v8::Local<v8::Value> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
  napi_value result;
  static_assert(sizeof(result) == sizeof(sab), "napi_value must be a V8 local handle");
  std::memcpy(&result, &sab, sizeof(result));
  return Napi::Value(env, result);
#endif
}

// releaseMapping(first: Uint8Array) -> 0 | -errno, where `first` views the first byte(s) of a
// buffer mmap() returned. Replaces the whole mapping, at the same address, with private anonymous
// pages (MAP_FIXED: atomic, no gap another mmap could take): the file is released now instead of
// whenever the garbage collector frees the buffer, a view still held reads zeros instead of
// faulting, and the deleter later unmaps the placeholder as it would have the file. -EINVAL for a
// buffer this addon did not map.
Napi::Value ReleaseMapping(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* data;
  size_t len;
  if (!BytesArg(info, 0, &data, &len)) return NegErrno(env, EINVAL);
  Mapping m;
  {
    std::lock_guard<std::mutex> hold(mappingsLock);
    auto it = Mappings().find(reinterpret_cast<uintptr_t>(data));
    if (it == Mappings().end()) return NegErrno(env, EINVAL);
    m = it->second;
  }
  void* start = data - m.pageOffset;
  void* r = mmap(start, m.length + m.pageOffset, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return NegErrno(env, errno);
  return Napi::Number::New(env, 0);
}

}  // namespace ringwire
