// The socket calls of the N-API surface (binding.ts NativeBinding, "sockets"): argument
// checks around sockets.h, and the environment's ownership of every descriptor they make.
#pragma once

#include <napi.h>

namespace mob {

class EnvOwner;

// Adds the socket functions and the errno/sockopt constants to exports. false with an
// exception pending on failure.
bool DefineSocketBindings(Napi::Env env, Napi::Object exports, EnvOwner* owner);

}  // namespace mob
