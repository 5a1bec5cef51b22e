// Argument conversion for the N-API functions. Each To* returns false with a TypeError/
// RangeError (or the failing N-API call's exception) pending; the caller returns at once.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace mob {

// For a failed N-API call: keeps the exception it left pending, or throws one carrying
// the call's own error message. Always false.
bool Fail(napi_env env);

bool ToInteger(napi_env env, napi_value value, const char* name, double min, double max,
               double* out);
bool ToInt32(napi_env env, napi_value value, const char* name, int32_t min, int32_t max,
             int32_t* out);
bool ToFd(napi_env env, napi_value value, const char* name, int* out);
bool ToBool(napi_env env, napi_value value, const char* name, bool* out);

// A typed array of exactly `type` (a Buffer is a Uint8Array).
bool ToTypedArray(napi_env env, napi_value value, const char* name, napi_typedarray_type type,
                  void** data, size_t* length);

// buf[offset, offset + length) must lie inside a buffer of `size` bytes.
bool ToRange(napi_env env, napi_value offset_value, napi_value length_value, size_t size,
             size_t* offset, size_t* length);

// Reads an IP literal into buf. *fits is false when it cannot be one (too long, embedded
// NUL): the caller reports that as an invalid literal, like any other unparsable host.
bool ToHost(napi_env env, napi_value value, char* buf, size_t size, bool* fits);

// '[::1]:80' / '127.0.0.1:80' for error messages.
std::string Endpoint(const char* host, int port);

// JS numbers; nullptr with an exception pending on failure.
napi_value Number(napi_env env, double value);
napi_value Int(napi_env env, int32_t value);

// Freezes a constants object; false with an exception pending on failure.
bool Freeze(napi_env env, napi_value object);

}  // namespace mob
