// What one Node environment (the main thread, or one worker thread) owns through this
// addon, and its closing when that environment goes away (#12). Node unloads an addon that
// a worker loaded when the worker ends, so nothing may outlive the environment: every
// descriptor it made (listen, connect, accept, socketpair, dup) is closed here unless JS
// closed or disowned it first, as better-sqlite3 closes every handle an addon instance made.
// Pollers close themselves (their finalizers run before this owner's; see poller.cc for the
// libuv handle). No state is shared between environments: each has its own owner, kept as
// the addon's instance data.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>

namespace mob {

class Poller;

class EnvOwner {
 public:
  // Creates the owner for env and hands it to napi_set_instance_data. false with an
  // exception pending on failure.
  static bool Install(napi_env env);
  // The owner of env (installed at module init), or nullptr with an exception pending.
  static EnvOwner* Of(napi_env env);

  EnvOwner(const EnvOwner&) = delete;
  EnvOwner& operator=(const EnvOwner&) = delete;

  // Marks fd as this environment's: closed at teardown. -ENOMEM if the table cannot grow
  // (the caller still holds the fd and must close it), else 0. One byte per descriptor
  // number, so the accept and close paths cost an index, and growth is rare.
  int Own(int fd) noexcept;
  // Stops owning fd (closed by JS, or handed to another environment). Whether it was owned.
  bool Disown(int fd) noexcept;
  bool Owns(int fd) const noexcept;

  // Pollers alive in this environment, closed at teardown if still open.
  void Attach(Poller* poller) noexcept;
  void Detach(Poller* poller) noexcept;

 private:
  EnvOwner() noexcept = default;
  ~EnvOwner();
  static void Finalize(napi_env env, void* data, void* hint);

  uint8_t* owned_ = nullptr;  // owned_[fd] != 0: close fd at teardown
  size_t capacity_ = 0;
  Poller* pollers_ = nullptr;  // intrusive list through Poller::next_owned_
};

}  // namespace mob
