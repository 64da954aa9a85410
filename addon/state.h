// Per-environment state. Each Node environment (main thread, every worker, every copy of the addon)
// gets its own; nothing native is global, so environments never see each other's handles.
#pragma once

#include <uv.h>

#include <unordered_set>

#include "common.h"

namespace ringwire {

class Poller;

// A uv_poll_t outlives its Poller until libuv's close callback runs, so it is allocated apart.
struct PollHandle {
  uv_poll_t poll;
  Poller* owner;  // null once the Poller is gone or the environment is tearing down
};

// How mmap'ed regions become SharedArrayBuffers in this environment (shared_buffer.cc).
enum class SabPath { kNone, kExternal, kV8 };

struct AddonState {
  uv_loop_t* loop = nullptr;
  SabPath sabPath = SabPath::kNone;
  // Handles still open in this environment; closed by the cleanup hook so a worker's loop can shut down.
  std::unordered_set<PollHandle*> handles;
};

// Closes the uv handle; its memory is freed by libuv's close callback.
void ClosePollHandle(AddonState* state, PollHandle* handle);
// Detaches every Poller of the environment and closes its handle (environment teardown).
void CloseAllPollHandles(AddonState* state);
// Chooses the SharedArrayBuffer path and exports it; false (JS exception pending) if none fits.
bool InitSharedBuffer(Napi::Env env, Napi::Object exports, AddonState* state);

}  // namespace ringwire
