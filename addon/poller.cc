// Poller: one uv_poll_t watching one fd on the environment's libuv loop, so waiting for an eventfd
// or a socket costs no thread. The callback is entered with MakeCallback (async context, microtasks
// drained afterwards) and receives (status, events). While started, the Poller keeps itself alive.
#include "state.h"

namespace ringwire {

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("open", &Poller::Open), InstanceMethod("start", &Poller::Start),
                        InstanceMethod("stop", &Poller::Stop), InstanceMethod("close", &Poller::Close)});
  }

  explicit Poller(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<Poller>(info), context_(info.Env(), "ringwire.Poller") {}

  ~Poller() override { Release(); }

  // Called by the environment's cleanup hook: the handle is being closed for us.
  void Detach() {
    handle_ = nullptr;
    callback_.Reset();
  }

 private:
  AddonState* State() { return Env().GetInstanceData<AddonState>(); }

  // open(fd) -> 0 | -errno. The fd stays owned by the caller and must outlive the Poller's use of it.
  Napi::Value Open(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd;
    if (!FdArg(info, 0, &fd) || handle_ != nullptr) return NegErrno(env, EINVAL);
    AddonState* state = State();
    PollHandle* h = new PollHandle{};
    int r = uv_poll_init(state->loop, &h->poll, fd);
    if (r < 0) {
      delete h;
      return Napi::Number::New(env, r);  // libuv errors are already -errno
    }
    h->owner = this;
    state->handles.insert(h);
    handle_ = h;
    return Napi::Number::New(env, 0);
  }

  // start(events, callback) -> 0 | -errno; events is a mask of 1 (readable), 2 (writable),
  // 4 (disconnect). Calling it again replaces the mask and the callback.
  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int64_t events;
    if (handle_ == nullptr) return NegErrno(env, EBADF);
    if (!IntArg(info, 0, &events) || events <= 0 || events > (UV_READABLE | UV_WRITABLE | UV_DISCONNECT) ||
        info.Length() < 2 || !info[1].IsFunction())
      return NegErrno(env, EINVAL);
    int r = uv_poll_start(&handle_->poll, static_cast<int>(events), OnPoll);
    if (r < 0) return Napi::Number::New(env, r);
    callback_.Reset(info[1].As<Napi::Function>(), 1);
    if (!started_) {
      Ref();
      started_ = true;
    }
    return Napi::Number::New(env, 0);
  }

  // stop() -> 0. The handle stays open for a later start().
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr) uv_poll_stop(&handle_->poll);
    Unstart();
    return Napi::Number::New(info.Env(), 0);
  }

  // close() -> 0. Idempotent; the Poller cannot be reopened.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Release();
    Unstart();
    return Napi::Number::New(info.Env(), 0);
  }

  void Unstart() {
    callback_.Reset();
    if (started_) {
      started_ = false;
      Unref();
    }
  }

  void Release() {
    if (handle_ == nullptr) return;
    PollHandle* h = handle_;
    handle_ = nullptr;
    ClosePollHandle(State(), h);
  }

  static void OnPoll(uv_poll_t* poll, int status, int events) {
    PollHandle* h = reinterpret_cast<PollHandle*>(poll);
    Poller* self = h->owner;
    if (self == nullptr || self->callback_.IsEmpty()) return;
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    self->callback_.MakeCallback(self->Value(), {Napi::Number::New(env, status), Napi::Number::New(env, events)},
                                 self->context_);
    // Nothing above us can catch it: hand the exception to process 'uncaughtException'.
    if (env.IsExceptionPending()) {
      Napi::Error err = env.GetAndClearPendingException();
      napi_fatal_exception(env, err.Value());
    }
  }

  PollHandle* handle_ = nullptr;
  Napi::FunctionReference callback_;
  Napi::AsyncContext context_;
  bool started_ = false;
};

void ClosePollHandle(AddonState* state, PollHandle* h) {
  state->handles.erase(h);
  h->owner = nullptr;
  uv_poll_stop(&h->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&h->poll),
           [](uv_handle_t* handle) { delete reinterpret_cast<PollHandle*>(handle); });
}

void CloseAllPollHandles(AddonState* state) {
  std::unordered_set<PollHandle*> handles;
  handles.swap(state->handles);
  for (PollHandle* h : handles) {
    if (h->owner != nullptr) h->owner->Detach();
    ClosePollHandle(state, h);
  }
}

void InitPoller(Napi::Env env, Napi::Object exports) {
  exports.Set("Poller", Poller::Define(env));
  Napi::Object events = Napi::Object::New(env);
  events.Set("readable", Napi::Number::New(env, UV_READABLE));
  events.Set("writable", Napi::Number::New(env, UV_WRITABLE));
  events.Set("disconnect", Napi::Number::New(env, UV_DISCONNECT));
  exports.Set("pollEvents", events);
}

}  // namespace ringwire
