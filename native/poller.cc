#include "poller.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <new>

#include "args.h"
#include "env_owner.h"
#include "errors.h"

namespace mob {

// The libuv side of a started poller, on the heap apart from the Poller: uv_close frees
// it one loop turn later, possibly after the Poller is gone. Its async cleanup hook is what
// makes that safe in a worker (#12): Node waits for every such hook to be removed before it
// unloads the addon, and the hook is removed only in the close callback, so the callback's
// code is still there when libuv runs it.
struct Poller::Watch {
  uv_poll_t handle;
  Poller* owner;  // nullptr once closing
  napi_async_cleanup_hook_handle hook = nullptr;
};

Napi::Function Poller::Define(Napi::Env env) {
  return DefineClass(env, "Poller",
                     {
                         InstanceAccessor<&Poller::GetFd>("fd"),
                         InstanceMethod<&Poller::Add>("add"),
                         InstanceMethod<&Poller::Modify>("modify"),
                         InstanceMethod<&Poller::Delete>("delete"),
                         InstanceMethod<&Poller::Wait>("wait"),
                         InstanceMethod<&Poller::Start>("start"),
                         InstanceMethod<&Poller::Stop>("stop"),
                         InstanceMethod<&Poller::RefHandle>("ref"),
                         InstanceMethod<&Poller::UnrefHandle>("unref"),
                         InstanceMethod<&Poller::Close>("close"),
                     });
}

Poller::Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info), env_(info.Env()) {
  owner_ = EnvOwner::Of(env_);
  // On failure node-addon-api sees the pending exception, deletes this instance and rethrows.
  if (owner_ == nullptr) return;
  owner_->Attach(this);
  if (int rc = selector_.Open(); rc < 0) ThrowSystemError(env_, rc, Selector::CreateSyscall());
}

Poller::~Poller() {
  // Finalized only while unreferenced, i.e. never while polling: nothing to Unref.
  CloseAll(false);
  if (owner_ != nullptr) owner_->Detach(this);
}

void Poller::CloseAtTeardown() noexcept {
  selector_.Close();
  owner_->Detach(this);
  owner_ = nullptr;
}

Napi::Value Poller::GetFd(const Napi::CallbackInfo& info) {
  return Napi::Value(info.Env(), Int(info.Env(), selector_.fd()));
}

// Shared by add and modify: (fd, token, interest).
bool Poller::RegistrationArgs(const Napi::CallbackInfo& info, const char* op, int* fd,
                              uint64_t* token, uint32_t* interest) {
  napi_env env = info.Env();
  double token_number = 0;
  int32_t interest_bits = 0;
  if (!ToFd(env, info[0], "fd", fd) ||
      !ToInteger(env, info[1], "token", 0, static_cast<double>(kMaxToken), &token_number) ||
      !ToInt32(env, info[2], "interest", 0, static_cast<int32_t>(kInterestMask), &interest_bits)) {
    return false;
  }
  *token = static_cast<uint64_t>(token_number);
  *interest = static_cast<uint32_t>(interest_bits);
  const char* why = nullptr;
  if (int rc = Selector::CheckRegistration(*token, *interest, &why); rc == -EINVAL) {
    char message[160];
    std::snprintf(message, sizeof(message), "The value of \"interest\" is invalid: %s", why);
    ThrowRangeError(env, message);
    return false;
  } else if (rc < 0) {
    char detail[160];
    std::snprintf(detail, sizeof(detail), "(%s fd %d: %s)", op, *fd, why);
    ThrowSystemError(env, rc, Selector::ControlSyscall(), detail);
    return false;
  }
  return EnsureOpen(env);
}

bool Poller::EnsureOpen(napi_env env) {
  if (selector_.is_open()) return true;
  ThrowSystemError(env, EBADF, Selector::ControlSyscall(), "(the poller is closed)");
  return false;
}

namespace {

void ThrowControlError(napi_env env, int rc, const char* op, int fd) {
  char detail[48];
  std::snprintf(detail, sizeof(detail), "(%s fd %d)", op, fd);
  ThrowSystemError(env, rc, Selector::ControlSyscall(), detail);
}

}  // namespace

Napi::Value Poller::Add(const Napi::CallbackInfo& info) {
  int fd = 0;
  uint64_t token = 0;
  uint32_t interest = 0;
  if (!RegistrationArgs(info, "add", &fd, &token, &interest)) return Napi::Value();
  if (int rc = selector_.Add(fd, token, interest); rc < 0) ThrowControlError(info.Env(), rc, "add", fd);
  return Napi::Value();
}

Napi::Value Poller::Modify(const Napi::CallbackInfo& info) {
  int fd = 0;
  uint64_t token = 0;
  uint32_t interest = 0;
  if (!RegistrationArgs(info, "modify", &fd, &token, &interest)) return Napi::Value();
  if (int rc = selector_.Modify(fd, token, interest); rc < 0) {
    ThrowControlError(info.Env(), rc, "modify", fd);
  }
  return Napi::Value();
}

Napi::Value Poller::Delete(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "fd", &fd) || !EnsureOpen(env)) return Napi::Value();
  if (int rc = selector_.Delete(fd); rc < 0) ThrowControlError(env, rc, "delete", fd);
  return Napi::Value();
}

// wait(events, timeoutMs): count
Napi::Value Poller::Wait(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  void* data = nullptr;
  size_t length = 0;
  double timeout = 0;
  if (!ToTypedArray(env, info[0], "events", napi_uint32_array, &data, &length) ||
      !ToInteger(env, info[1], "timeoutMs", -1, static_cast<double>(kMaxSafeInteger), &timeout)) {
    return Napi::Value();
  }
  size_t capacity = length / kEventStride;
  if (capacity == 0) {
    ThrowRangeError(env, "The \"events\" array must hold at least one event (EVENT_STRIDE words)");
    return Napi::Value();
  }
  if (!selector_.is_open()) {
    ThrowSystemError(env, EBADF, Selector::WaitSyscall(), "(the poller is closed)");
    return Napi::Value();
  }
  int timeout_ms = timeout > INT_MAX ? INT_MAX : static_cast<int>(timeout);
  int count = selector_.Wait(static_cast<uint32_t*>(data), capacity, timeout_ms);
  if (count < 0) {
    ThrowSystemError(env, count, Selector::WaitSyscall());
    return Napi::Value();
  }
  return Napi::Value(env, Int(env, count));
}

// A libuv poll handle on the selector's readiness descriptor, with its cleanup hook.
bool Poller::OpenWatch(napi_env env) {
  int watched = selector_.ReadinessFd();
  if (watched < 0) {
    ThrowSystemError(env, watched, "uv_poll_init", "(no pollable descriptor behind this poller)");
    return false;
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return Fail(env);
  auto* watch = new (std::nothrow) Watch{};
  if (watch == nullptr) {
    ThrowSystemError(env, ENOMEM, "uv_poll_init");
    return false;
  }
  // libuv reports errors as negative errno values on Unix.
  if (int rc = uv_poll_init(loop, &watch->handle, watched); rc < 0) {
    delete watch;
    ThrowSystemError(env, rc, "uv_poll_init");
    return false;
  }
  watch->handle.data = watch;
  watch->owner = this;
  watch_ = watch;
  if (napi_add_async_cleanup_hook(env, OnEnvTeardown, watch, &watch->hook) != napi_ok) {
    watch->hook = nullptr;
    CloseWatch();
    return Fail(env);
  }
  if (!want_ref_) uv_unref(reinterpret_cast<uv_handle_t*>(&watch->handle));
  return true;
}

void Poller::CloseWatch() {
  if (watch_ == nullptr) return;
  // Close the handle before the fd: uv_close removes the fd from libuv's own epoll/
  // kqueue set, which needs the descriptor still open.
  uv_poll_stop(&watch_->handle);
  watch_->owner = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&watch_->handle), OnWatchClosed);
  watch_ = nullptr;
}

void Poller::OnWatchClosed(uv_handle_t* handle) {
  auto* watch = static_cast<Watch*>(handle->data);
  // Last use of this addon's code for the watch: from here Node may unload it.
  if (watch->hook != nullptr) napi_remove_async_cleanup_hook(watch->hook);
  delete watch;
}

void Poller::OnEnvTeardown(napi_async_cleanup_hook_handle, void* arg) {
  auto* watch = static_cast<Watch*>(arg);
  // Still open: close it now (the close callback then removes this hook). Already closing:
  // the pending close callback removes it.
  if (watch->owner != nullptr) watch->owner->CloseAll(true);
}

// start(events, onEvents)
Napi::Value Poller::Start(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  void* data = nullptr;
  size_t length = 0;
  if (!ToTypedArray(env, info[0], "events", napi_uint32_array, &data, &length)) {
    return Napi::Value();
  }
  if (length < kEventStride) {
    ThrowRangeError(env, "The \"events\" array must hold at least one event (EVENT_STRIDE words)");
    return Napi::Value();
  }
  if (!info[1].IsFunction()) {
    ThrowTypeError(env, "The \"onEvents\" argument must be of type function");
    return Napi::Value();
  }
  if (!selector_.is_open()) {
    ThrowSystemError(env, EBADF, "uv_poll_start", "(the poller is closed)");
    return Napi::Value();
  }
  if (watch_ == nullptr && !OpenWatch(env)) return Napi::Value();
  if (async_context_ == nullptr) {
    napi_value name = nullptr;
    napi_status status = napi_create_string_utf8(env, "mob.Poller", NAPI_AUTO_LENGTH, &name);
    // No resource object: napi makes an empty one. Passing `this` would keep the
    // Poller reachable for as long as the async context lives.
    if (status == napi_ok) status = napi_async_init(env, nullptr, name, &async_context_);
    if (status != napi_ok) {
      async_context_ = nullptr;
      Fail(env);
      return Napi::Value();
    }
  }

  events_ = Napi::Persistent(info[0].As<Napi::Object>());
  on_events_ = Napi::Persistent(info[1].As<Napi::Function>());
  if (events_.IsEmpty() || on_events_.IsEmpty()) return Napi::Value();  // Pending.
  if (int rc = uv_poll_start(&watch_->handle, UV_READABLE, OnPoll); rc < 0) {
    ThrowSystemError(env, rc, "uv_poll_start");
    return Napi::Value();
  }
  // While polling, the wrapper must not be collected: the uv handle points at it.
  if (!self_ref_) {
    Ref();
    self_ref_ = true;
  }
  return Napi::Value();
}

Napi::Value Poller::Stop(const Napi::CallbackInfo&) {
  StopPolling();
  return Napi::Value();
}

Napi::Value Poller::RefHandle(const Napi::CallbackInfo&) {
  want_ref_ = true;
  if (watch_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&watch_->handle));
  return Napi::Value();
}

Napi::Value Poller::UnrefHandle(const Napi::CallbackInfo&) {
  want_ref_ = false;
  if (watch_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&watch_->handle));
  return Napi::Value();
}

Napi::Value Poller::Close(const Napi::CallbackInfo&) {
  CloseAll(true);
  return Napi::Value();
}

void Poller::StopPolling() {
  if (watch_ != nullptr) uv_poll_stop(&watch_->handle);
  events_.Reset();
  on_events_.Reset();
  if (self_ref_) {
    self_ref_ = false;
    Unref();
  }
}

// Idempotent. `unref_self` is false from the destructor, where the wrapper is going.
void Poller::CloseAll(bool unref_self) {
  CloseWatch();
  events_.Reset();
  on_events_.Reset();
  if (async_context_ != nullptr) {
    napi_async_destroy(env_, async_context_);
    async_context_ = nullptr;
  }
  selector_.Close();
  if (unref_self && self_ref_) {
    self_ref_ = false;
    Unref();
  }
}

void Poller::OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  Poller* self = static_cast<Watch*>(handle->data)->owner;
  if (self == nullptr) return;
  napi_env env = self->env_;
  napi_handle_scope scope = nullptr;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  self->Dispatch(status);
  napi_close_handle_scope(env, scope);
}

namespace {

// Errors found outside any JS call have nowhere to be thrown: hand them to
// process 'uncaughtException', as Node does for its own handles.
void ReportFatal(napi_env env, napi_value error) {
  if (error == nullptr) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
    if (napi_get_and_clear_last_exception(env, &error) != napi_ok) return;
  }
  napi_fatal_exception(env, error);
}

}  // namespace

void Poller::Dispatch(int status) {
  napi_env env = env_;
  if (status < 0) {
    StopPolling();
    ReportFatal(env, MakeSystemError(env, status, "uv_poll", "(Poller.start watcher)"));
    return;
  }
  if (events_.IsEmpty() || on_events_.IsEmpty()) return;
  napi_value events = events_.Value();
  napi_value callback = on_events_.Value();
  napi_value receiver = Value();

  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type = napi_int8_array;
  if (events == nullptr || callback == nullptr || receiver == nullptr ||
      napi_get_typedarray_info(env, events, &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_uint32_array || length < kEventStride || data == nullptr) {
    StopPolling();
    napi_value message = nullptr;
    napi_value error = nullptr;
    if (napi_create_string_utf8(env,
                                "Poller.start: the events array was detached or shrunk; "
                                "the watcher is stopped",
                                NAPI_AUTO_LENGTH, &message) == napi_ok) {
      napi_create_error(env, nullptr, message, &error);
    }
    ReportFatal(env, error);
    return;
  }

  int count = selector_.Wait(static_cast<uint32_t*>(data), length / kEventStride, 0);
  if (count < 0) {
    StopPolling();
    ReportFatal(env, MakeSystemError(env, count, Selector::WaitSyscall(), "(Poller.start watcher)"));
    return;
  }
  if (count == 0) return;  // Spurious wake-up, or libkqueue filtered its own event.

  napi_value argv[1];
  if (napi_create_uint32(env, static_cast<uint32_t>(count), &argv[0]) != napi_ok) return;
  napi_value result = nullptr;
  // MakeCallback (not napi_call_function) so that async hooks see the callback and
  // the microtask and nextTick queues drain after it, as after any libuv callback.
  napi_status call = napi_make_callback(env, async_context_, receiver, callback, 1, argv, &result);
  // From here on `this` may be closed: only env is used.
  if (call != napi_ok) ReportFatal(env, nullptr);
}

}  // namespace mob

namespace mob {
namespace {

// What this backend can honour of InterestBits (binding.ts `capabilities`).
Napi::Object Capabilities(Napi::Env env) {
  Napi::Object object = Napi::Object::New(env);
  if (env.IsExceptionPending()) return object;
  const uint32_t supported = Selector::SupportedInterest();
  bool ok = object.Set("interest", static_cast<double>(supported)) &&
            object.Set("exclusive", (supported & kInterestExclusive) != 0) &&
            object.Set("noRdhup", (supported & kInterestNoRdhup) != 0) &&
            object.Set("dispatch", (supported & kInterestDispatch) != 0) &&
            object.Set("oneshotFlag", Selector::OneshotFlag()) &&
            object.Set("dispatchFlag", Selector::DispatchFlag());
  if (ok) Freeze(env, object);
  return object;
}

Napi::Object KernelConstants(Napi::Env env) {
  Napi::Object object = Napi::Object::New(env);
  if (env.IsExceptionPending()) return object;
  for (const KernelConstant& constant : Selector::KernelConstants()) {
    if (!object.Set(constant.name, static_cast<double>(constant.value))) return object;
  }
  Freeze(env, object);
  return object;
}

}  // namespace

bool DefinePollerBindings(Napi::Env env, Napi::Object exports) {
  using P = Napi::PropertyDescriptor;
  constexpr auto kEnumerable = napi_enumerable;
  Napi::Function poller = Poller::Define(env);
  if (env.IsExceptionPending()) return false;
  Napi::Object capabilities = Capabilities(env);
  if (env.IsExceptionPending()) return false;
  Napi::Object kernel = KernelConstants(env);
  if (env.IsExceptionPending()) return false;
  exports.DefineProperties({
      P::Value("backend", Napi::String::New(env, Selector::Backend()), kEnumerable),
      P::Value("EVENT_STRIDE", Napi::Number::New(env, static_cast<double>(kEventStride)), kEnumerable),
      P::Value("Poller", poller, kEnumerable),
      P::Value("capabilities", capabilities, kEnumerable),
      P::Value("kernel", kernel, kEnumerable),
  });
  return !env.IsExceptionPending();
}

}  // namespace mob
