// Entry point: one AddonState per environment, released by a cleanup hook that closes every libuv
// handle the environment still holds, so worker threads exit cleanly and the addon can be loaded
// more than once in a process.
#include "state.h"

namespace ringwire {

namespace {

void Cleanup(void* arg) {
  AddonState* state = static_cast<AddonState*>(arg);
  CloseAllPollHandles(state);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  AddonState* state = new AddonState();
  if (napi_get_uv_event_loop(env, &state->loop) != napi_ok) {
    delete state;
    return exports;
  }
  env.SetInstanceData<AddonState>(state);  // deleted by Node-API when the environment goes
  napi_add_env_cleanup_hook(env, Cleanup, state);
  if (!InitSharedBuffer(env, exports, state)) return exports;  // the load fails with its message
  InitFd(env, exports);
  InitRegion(env, exports);
  InitEventFd(env, exports);
  InitPoller(env, exports);
  InitSocket(env, exports);
  InitNetns(env, exports);
  return exports;
}

}  // namespace

}  // namespace ringwire

static Napi::Object InitRingwire(Napi::Env env, Napi::Object exports) { return ringwire::Init(env, exports); }

NODE_API_MODULE(ringwire, InitRingwire)
