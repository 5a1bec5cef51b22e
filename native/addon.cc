// The N-API module: one EnvOwner per environment (main thread or worker), then the socket
// calls (socket_bindings.cc) and the poller (poller.cc). The contract is
// src/native/binding.ts; system work lives in sockets.cc and selector_*.cc.
//
// Built with NAPI_DISABLE_CPP_EXCEPTIONS: every failure leaves a JS exception pending and
// the function returns at once. Hot paths (read, write, writev, writeEach, accept, close,
// Poller.wait and the libuv callback) allocate nothing and create no JS objects: they read
// buffers through one napi_get_typedarray_info call each and return plain numbers.
// Nothing here is static and mutable: each environment has its own state (#12).

#include <napi.h>

#include "env_owner.h"
#include "poller.h"
#include "socket_bindings.h"

namespace mob {
namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  if (!EnvOwner::Install(env)) return exports;
  EnvOwner* owner = EnvOwner::Of(env);
  if (owner == nullptr || !DefinePollerBindings(env, exports) ||
      !DefineSocketBindings(env, exports, owner)) {
    return exports;
  }
  exports.DefineProperty(Napi::PropertyDescriptor::Value(
      "napiVersion", Napi::Number::New(env, NAPI_VERSION), napi_enumerable));
  return exports;
}

}  // namespace
}  // namespace mob

static Napi::Object InitMob(Napi::Env env, Napi::Object exports) {
  return mob::Init(env, exports);
}

NODE_API_MODULE(mob, InitMob)
