#include "args.h"

#include <cmath>
#include <cstdio>
#include <cstring>

#include "errors.h"

namespace mob {

bool Fail(napi_env env) {
  // Read the message first: napi_is_exception_pending resets the last-error record.
  const napi_extended_error_info* info = nullptr;
  const char* message = "N-API call failed";
  if (napi_get_last_error_info(env, &info) == napi_ok && info != nullptr &&
      info->error_message != nullptr) {
    message = info->error_message;
  }
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return false;
  napi_throw_error(env, nullptr, message);
  return false;
}

bool ToInteger(napi_env env, napi_value value, const char* name, double min, double max,
               double* out) {
  double number = 0;
  napi_status status = napi_get_value_double(env, value, &number);
  if (status == napi_number_expected) {
    char message[128];
    std::snprintf(message, sizeof(message), "The \"%s\" argument must be of type number", name);
    ThrowTypeError(env, message);
    return false;
  }
  if (status != napi_ok) return Fail(env);
  if (!(number >= min && number <= max) || std::trunc(number) != number) {
    char message[192];
    std::snprintf(message, sizeof(message),
                  "The value of \"%s\" is out of range. It must be an integer >= %.0f and "
                  "<= %.0f. Received %.17g",
                  name, min, max, number);
    ThrowRangeError(env, message);
    return false;
  }
  *out = number;
  return true;
}

bool ToInt32(napi_env env, napi_value value, const char* name, int32_t min, int32_t max,
             int32_t* out) {
  double number = 0;
  if (!ToInteger(env, value, name, min, max, &number)) return false;
  *out = static_cast<int32_t>(number);
  return true;
}

bool ToFd(napi_env env, napi_value value, const char* name, int* out) {
  return ToInt32(env, value, name, 0, INT32_MAX, out);
}

bool ToBool(napi_env env, napi_value value, const char* name, bool* out) {
  napi_status status = napi_get_value_bool(env, value, out);
  if (status == napi_boolean_expected) {
    char message[128];
    std::snprintf(message, sizeof(message), "The \"%s\" argument must be of type boolean", name);
    ThrowTypeError(env, message);
    return false;
  }
  return status == napi_ok || Fail(env);
}

namespace {

const char* TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_uint8_array: return "Uint8Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    default: return "typed array";
  }
}

}  // namespace

bool ToTypedArray(napi_env env, napi_value value, const char* name, napi_typedarray_type type,
                  void** data, size_t* length) {
  napi_typedarray_type actual = napi_int8_array;
  // Fails with napi_invalid_arg (and nothing pending) when value is not a typed array.
  napi_status status = napi_get_typedarray_info(env, value, &actual, length, data, nullptr, nullptr);
  if (status != napi_ok || actual != type) {
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return false;
    char message[128];
    std::snprintf(message, sizeof(message), "The \"%s\" argument must be %s %s", name,
                  type == napi_int32_array ? "an" : "a", TypedArrayName(type));
    ThrowTypeError(env, message);
    return false;
  }
  return true;
}

bool ToRange(napi_env env, napi_value offset_value, napi_value length_value, size_t size,
             size_t* offset, size_t* length) {
  double start = 0;
  double count = 0;
  if (!ToInteger(env, offset_value, "offset", 0, static_cast<double>(size), &start)) return false;
  if (!ToInteger(env, length_value, "length", 0, static_cast<double>(size) - start, &count)) {
    return false;
  }
  *offset = static_cast<size_t>(start);
  *length = static_cast<size_t>(count);
  return true;
}

bool ToHost(napi_env env, napi_value value, char* buf, size_t size, bool* fits) {
  size_t length = 0;
  napi_status status = napi_get_value_string_utf8(env, value, nullptr, 0, &length);
  if (status == napi_string_expected) {
    ThrowTypeError(env, "The \"host\" argument must be of type string");
    return false;
  }
  if (status != napi_ok) return Fail(env);
  *fits = length < size;
  if (!*fits) {
    buf[0] = '\0';
    return true;
  }
  status = napi_get_value_string_utf8(env, value, buf, size, &length);
  if (status != napi_ok) return Fail(env);
  // An embedded NUL would silently shorten the literal.
  *fits = std::strlen(buf) == length;
  return true;
}

std::string Endpoint(const char* host, int port) {
  std::string text;
  bool ipv6 = std::strchr(host, ':') != nullptr;
  if (ipv6) text += '[';
  text += host;
  if (ipv6) text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

napi_value Number(napi_env env, double value) {
  napi_value result = nullptr;
  if (napi_create_double(env, value, &result) != napi_ok) Fail(env);
  return result;
}

napi_value Int(napi_env env, int32_t value) {
  napi_value result = nullptr;
  if (napi_create_int32(env, value, &result) != napi_ok) Fail(env);
  return result;
}

bool Freeze(napi_env env, napi_value object) {
  return napi_object_freeze(env, object) == napi_ok || Fail(env);
}

}  // namespace mob
