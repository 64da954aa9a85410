// A SharedArrayBuffer over an mmap'ed region. The mapping must outlive every JS reference, in every
// thread the buffer is posted to, so its lifetime is tied to the buffer's backing store: the deleter
// munmaps when V8 frees the last reference. The deleter may run on any thread and after the
// creating environment is gone, so it touches nothing but the mapping itself.
#define NAPI_EXPERIMENTAL
#define NODE_API_EXPERIMENTAL_NO_WARNING
#include <sys/mman.h>

#include <cstring>

#include "common.h"

#ifndef NODE_API_EXPERIMENTAL_HAS_CREATE_EXTERNAL_SHAREDARRAYBUFFER
#include <v8.h>
#endif

namespace ringwire {

namespace {

// The buffer may start inside the first page (a mapping at an unaligned file offset); the page
// offset travels as the deleter's hint so no allocation outlives the environment.
void UnmapRegion(void* data, size_t length, void* hint) {
  size_t pageOffset = reinterpret_cast<uintptr_t>(hint);
  munmap(static_cast<char*>(data) - pageOffset, length + pageOffset);
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

}  // namespace ringwire
