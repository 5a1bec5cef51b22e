// errno names and SystemError-like JS exceptions.
#pragma once

#include <node_api.h>

#include <string_view>

namespace mob {

// 'ECONNRESET' for ECONNRESET; nullptr if this table does not know the value.
const char* ErrnoName(int errnum);

// Like ErrnoName, but 'E<n>' for unknown values. Writes into buf (at least 16 bytes).
const char* ErrnoNameOr(int errnum, char* buf, size_t size);

// strerror() that is safe to call from any thread (workers have their own envs).
std::string_view ErrnoMessage(int errnum, char* buf, size_t size);

// Throws an Error shaped like Node's SystemError:
//   message `${syscall} ${code}: ${strerror}${detail ? ' ' + detail : ''}`
//   and properties code ('EADDRINUSE'), errno (positive number), syscall ('bind').
// errnum may be given as positive or negative. Leaves the exception pending and returns;
// if building the error itself fails, whatever exception that raised stays pending.
void ThrowSystemError(napi_env env, int errnum, const char* syscall, std::string_view detail = {});

// Builds the same error without throwing it (for napi_fatal_exception). nullptr on failure.
napi_value MakeSystemError(napi_env env, int errnum, const char* syscall, std::string_view detail = {});

// TypeError / RangeError with Node's codes (ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE), so
// callers can tell a misuse from a system failure.
void ThrowTypeError(napi_env env, const char* message);
void ThrowRangeError(napi_env env, const char* message);

}  // namespace mob
