// The Poller class: a Selector, driven either by blocking waits (wait) or from Node's own
// loop through a libuv watcher on the selector's descriptor (start). The contract is
// src/native/binding.ts `Poller`.
#pragma once

#include <napi.h>
#include <uv.h>

#include "selector.h"

namespace mob {

class EnvOwner;

// Adds Poller, backend, EVENT_STRIDE, capabilities and kernel to exports. false with an
// exception pending on failure.
bool DefinePollerBindings(Napi::Env env, Napi::Object exports);

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env);

  explicit Poller(const Napi::CallbackInfo& info);
  ~Poller() override;

  // The environment is going away and this poller's finalizer has not run: close the
  // selector. Its libuv watcher, if any, was closed earlier by its own cleanup hook.
  void CloseAtTeardown() noexcept;

 private:
  friend class EnvOwner;
  struct Watch;

  Napi::Value GetFd(const Napi::CallbackInfo& info);
  bool RegistrationArgs(const Napi::CallbackInfo& info, const char* op, int* fd,
                        uint64_t* token, uint32_t* interest);
  bool EnsureOpen(napi_env env);
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value Modify(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value Wait(const Napi::CallbackInfo& info);
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Stop(const Napi::CallbackInfo& info);
  Napi::Value RefHandle(const Napi::CallbackInfo& info);
  Napi::Value UnrefHandle(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  bool OpenWatch(napi_env env);
  void CloseWatch();
  void StopPolling();
  void CloseAll(bool unref_self);
  void Dispatch(int status);

  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnEnvTeardown(napi_async_cleanup_hook_handle hook, void* arg);
  static void OnWatchClosed(uv_handle_t* handle);

  napi_env env_;
  EnvOwner* owner_ = nullptr;
  Poller* next_owned_ = nullptr;  // EnvOwner's list
  Poller* prev_owned_ = nullptr;
  Selector selector_;
  Watch* watch_ = nullptr;  // Freed by uv_close's callback, never directly.
  napi_async_context async_context_ = nullptr;
  Napi::ObjectReference events_;
  Napi::FunctionReference on_events_;
  bool want_ref_ = true;
  bool self_ref_ = false;
};

}  // namespace mob
