// A SharedArrayBuffer over an mmap'ed region. The mapping must outlive every JS reference, in every
// thread the buffer is posted to, so its lifetime is tied to the buffer's backing store: the deleter
// munmaps when V8 frees the last reference. The deleter may run on any thread and after the
// creating environment is gone, so it touches nothing but the mapping itself.
//
// Two ways to make such a buffer, chosen once per environment when the addon loads:
// - "external": node_api_create_external_sharedarraybuffer (Node-API, experimental; Node 22.23+,
//   24.16+, 26.1+). It is looked up at run time through a weak reference, never at compile time, so
//   one binary built against any headers uses it wherever the running Node has it. That is what
//   lets one prebuild serve every Node version, and makes a build against the wrong headers (the
//   npm_config_nodedir trap) harmless on those versions.
// - "v8": the V8 API, for Nodes without it (Node 20). V8's C++ ABI changes with every Node major,
//   so this path is taken only when the running Node's major equals the headers' major; otherwise
//   the addon refuses to load with a message saying so, instead of calling V8 with the wrong ABI.
//
// Build switches (binding.gyp, from RINGWIRE_SAB at build time):
//   RINGWIRE_SAB_EXTERNAL_ONLY  no V8 code at all (the Node-API prebuild: no V8 symbol is referenced)
//   RINGWIRE_SAB_FORCE_V8       always the V8 path (keeps the fallback tested on Nodes that have both)
#include <sys/mman.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "state.h"

// node_version.h (for NODE_MAJOR_VERSION) also defines NAPI_VERSION as the runtime's (9 in Node 20):
// keep the module's NAPI_VERSION from binding.gyp.
#pragma push_macro("NAPI_VERSION")
#undef NAPI_VERSION
#include <node_version.h>
#pragma pop_macro("NAPI_VERSION")

#ifndef RINGWIRE_SAB_EXTERNAL_ONLY
#include <v8.h>
#endif

#ifdef RINGWIRE_SAB_INVALID
#error "RINGWIRE_SAB must be auto, external-only or v8"
#endif
#if defined(RINGWIRE_SAB_EXTERNAL_ONLY) && defined(RINGWIRE_SAB_FORCE_V8)
#error "RINGWIRE_SAB_EXTERNAL_ONLY and RINGWIRE_SAB_FORCE_V8 exclude each other"
#endif

// Declared here, not taken from the headers: they declare it only under NAPI_EXPERIMENTAL, and only
// from Node 22.23 on. Weak: where the running Node does not export it, its address is null.
extern "C" {
typedef void (*ringwire_noenv_finalize)(void* data, void* hint);
napi_status node_api_create_external_sharedarraybuffer(napi_env env, void* external_data, size_t byte_length,
                                                       ringwire_noenv_finalize finalize_cb, void* finalize_hint,
                                                       napi_value* result) __attribute__((weak, visibility("default")));
}

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

struct Span {
  size_t length;
  size_t pageOffset;
};

void UnmapSpan(void* data, void* hint) {
  Span* s = static_cast<Span*>(hint);
  UnmapRegion(data, s->length, reinterpret_cast<void*>(static_cast<uintptr_t>(s->pageOffset)));
  delete s;
}

#ifndef RINGWIRE_SAB_FORCE_V8
// True when the running Node exports the function and it works for this module: a probe over a
// static word (no finalizer, the memory is never freed).
bool ExternalWorks(Napi::Env env) {
  if (node_api_create_external_sharedarraybuffer == nullptr) return false;
  static uint64_t probe;
  napi_value result;
  return node_api_create_external_sharedarraybuffer(env, &probe, sizeof(probe), nullptr, nullptr, &result) ==
         napi_ok;
}
#endif

const char* BuildMode() {
#if defined(RINGWIRE_SAB_EXTERNAL_ONLY)
  return "external-only";
#elif defined(RINGWIRE_SAB_FORCE_V8)
  return "v8";
#else
  return "auto";
#endif
}

}  // namespace

Napi::Value NewMappedSharedArrayBuffer(Napi::Env env, void* base, size_t dataOffset, size_t length) {
  void* data = static_cast<char*>(base) + dataOffset;
  void* hint = reinterpret_cast<void*>(static_cast<uintptr_t>(dataOffset));
  AddonState* state = env.GetInstanceData<AddonState>();
  Remember(data, length, dataOffset);
  if (state->sabPath == SabPath::kExternal) {
    // This finalizer gets no length, so the mapping span travels in a small allocation it frees.
    Span* span = new Span{length, dataOffset};
    napi_value result;
    if (node_api_create_external_sharedarraybuffer(env, data, length, UnmapSpan, span, &result) != napi_ok) {
      delete span;
      UnmapRegion(data, length, hint);
      return NegErrno(env, ENOMEM);
    }
    return Napi::Value(env, result);
  }
#ifndef RINGWIRE_SAB_EXTERNAL_ONLY
  if (state->sabPath == SabPath::kV8) {
    // A napi_value is a V8 local handle in every Node release, so the V8 object created here
    // crosses the boundary by value.
    v8::Isolate* isolate = v8::Isolate::GetCurrent();
    std::shared_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(data, length, UnmapRegion, hint);
    v8::Local<v8::Value> sab = v8::SharedArrayBuffer::New(isolate, std::move(store));
    napi_value result;
    static_assert(sizeof(result) == sizeof(sab), "napi_value must be a V8 local handle");
    std::memcpy(&result, &sab, sizeof(result));
    return Napi::Value(env, result);
  }
#endif
  UnmapRegion(data, length, hint);
  return NegErrno(env, ENOSYS);
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

// Chooses the path for this environment and exports what was chosen as `sharedBuffer`:
// { path: 'external' | 'v8', build: 'auto' | 'external-only' | 'v8', headersNodeMajor }.
// Returns false, with a JS exception pending, when no path can serve the running Node.
bool InitSharedBuffer(Napi::Env env, Napi::Object exports, AddonState* state) {
  const napi_node_version* running = nullptr;
  if (napi_get_node_version(env, &running) != napi_ok) return false;
  bool sameMajor = running->major == NODE_MAJOR_VERSION;
  (void)sameMajor;
#if defined(RINGWIRE_SAB_FORCE_V8)
  if (sameMajor) state->sabPath = SabPath::kV8;
#elif defined(RINGWIRE_SAB_EXTERNAL_ONLY)
  if (ExternalWorks(env)) state->sabPath = SabPath::kExternal;
#else
  if (ExternalWorks(env))
    state->sabPath = SabPath::kExternal;
  else if (sameMajor)
    state->sabPath = SabPath::kV8;
#endif
  if (state->sabPath == SabPath::kNone) {
    std::string why = std::string("ringwire addon (build ") + BuildMode() + ", headers of Node " +
                      std::to_string(NODE_MAJOR_VERSION) + ") cannot make SharedArrayBuffers on Node " +
                      std::to_string(running->major) + "." + std::to_string(running->minor) + "." +
                      std::to_string(running->patch) +
                      ": that Node has no node_api_create_external_sharedarraybuffer, and " +
#ifdef RINGWIRE_SAB_EXTERNAL_ONLY
                      "this build has no V8 fallback" +
#else
                      "the V8 fallback is built for another Node major (headers from npm_config_nodedir?)" +
#endif
                      ". Rebuild from source under this Node: npm rebuild ringwire --build-from-source";
    Napi::Error::New(env, why).ThrowAsJavaScriptException();
    return false;
  }
  Napi::Object info = Napi::Object::New(env);
  info.Set("path", state->sabPath == SabPath::kExternal ? "external" : "v8");
  info.Set("build", BuildMode());
  info.Set("headersNodeMajor", Napi::Number::New(env, NODE_MAJOR_VERSION));
  exports.Set("sharedBuffer", info);
  return true;
}

}  // namespace ringwire
