// The N-API surface: argument checks, conversions and the Poller class. The contract is
// src/native/binding.ts. System work lives in selector_*.cc and sockets.cc.
//
// Built with NAPI_DISABLE_CPP_EXCEPTIONS: every failure leaves a JS exception pending and
// the function returns at once. Hot paths (read, write, writev, writeEach, Poller.wait
// and the libuv callback) allocate nothing and create no JS objects: they read buffers
// through one napi_get_typedarray_info call each and return plain numbers.

#include <napi.h>
#include <uv.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "errors.h"
#include "selector.h"
#include "sockets.h"

namespace mob {
namespace {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2**53 - 1

// ---------------------------------------------------------------------------------------
// Argument helpers. Each returns false with a TypeError/RangeError (or the failing
// N-API call's exception) pending.

// For a failed N-API call: keeps the exception it left pending, or throws one carrying
// the call's own error message.
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

const char* TypedArrayName(napi_typedarray_type type) {
  switch (type) {
    case napi_uint8_array: return "Uint8Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    default: return "typed array";
  }
}

// A typed array of exactly `type` (a Buffer is a Uint8Array).
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

// buf[offset, offset + length) must lie inside a buffer of `size` bytes.
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

// Reads an IP literal into buf. Anything too long to be one is reported by the caller
// as an invalid literal, like any other unparsable host.
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
  napi_status status = napi_create_double(env, value, &result);
  if (status != napi_ok) Fail(env);
  return result;
}

napi_value Int(napi_env env, int32_t value) {
  napi_value result = nullptr;
  napi_status status = napi_create_int32(env, value, &result);
  if (status != napi_ok) Fail(env);
  return result;
}

// ---------------------------------------------------------------------------------------
// Sockets

// listen(host, port, backlog, reusePort): fd, throws
Napi::Value Listen(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  char host[sockets::kAddressTextSize];
  bool fits = false;
  int32_t port = 0;
  int32_t backlog = 0;
  bool reuse_port = false;
  if (!ToHost(env, info[0], host, sizeof(host), &fits) ||
      !ToInt32(env, info[1], "port", 0, 65535, &port) ||
      !ToInt32(env, info[2], "backlog", INT32_MIN, INT32_MAX, &backlog) ||
      !ToBool(env, info[3], "reusePort", &reuse_port)) {
    return Napi::Value();
  }
  const char* syscall = "inet_pton";
  int fd = fits ? sockets::Listen(host, port, backlog, reuse_port, &syscall) : -EINVAL;
  if (fd < 0) {
    if (std::strcmp(syscall, "inet_pton") == 0) {
      ThrowSystemError(env, fd, "listen", "(host is not an IPv4 or IPv6 literal)");
    } else {
      ThrowSystemError(env, fd, syscall, Endpoint(host, port));
    }
    return Napi::Value();
  }
  return Napi::Value(env, Int(env, fd));
}

// connect(host, port): fd (maybe still connecting), throws
Napi::Value Connect(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  char host[sockets::kAddressTextSize];
  bool fits = false;
  int32_t port = 0;
  if (!ToHost(env, info[0], host, sizeof(host), &fits) ||
      !ToInt32(env, info[1], "port", 0, 65535, &port)) {
    return Napi::Value();
  }
  const char* syscall = "inet_pton";
  int fd = fits ? sockets::Connect(host, port, &syscall) : -EINVAL;
  if (fd < 0) {
    if (std::strcmp(syscall, "inet_pton") == 0) {
      ThrowSystemError(env, fd, "connect", "(host is not an IPv4 or IPv6 literal)");
    } else {
      ThrowSystemError(env, fd, syscall, Endpoint(host, port));
    }
    return Napi::Value();
  }
  return Napi::Value(env, Int(env, fd));
}

// accept(listenFd): fd or -errno
Napi::Value Accept(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "listenFd", &fd)) return Napi::Value();
  return Napi::Value(env, Int(env, sockets::Accept(fd)));
}

// read(fd, buf, offset, length): bytes, 0 at EOF, or -errno
Napi::Value Read(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  void* data = nullptr;
  size_t size = 0;
  size_t offset = 0;
  size_t length = 0;
  if (!ToFd(env, info[0], "fd", &fd) ||
      !ToTypedArray(env, info[1], "buf", napi_uint8_array, &data, &size) ||
      !ToRange(env, info[2], info[3], size, &offset, &length)) {
    return Napi::Value();
  }
  if (length == 0) {
    // read(2) of 0 bytes returns 0, which the caller would take for end of stream.
    ThrowRangeError(env, "The value of \"length\" is out of range. It must be > 0 for read "
                         "(a 0-byte read is indistinguishable from end of stream)");
    return Napi::Value();
  }
  ssize_t n = sockets::Read(fd, static_cast<uint8_t*>(data) + offset, length);
  return Napi::Value(env, Number(env, static_cast<double>(n)));
}

// write(fd, buf, offset, length): bytes or -errno
Napi::Value Write(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  void* data = nullptr;
  size_t size = 0;
  size_t offset = 0;
  size_t length = 0;
  if (!ToFd(env, info[0], "fd", &fd) ||
      !ToTypedArray(env, info[1], "buf", napi_uint8_array, &data, &size) ||
      !ToRange(env, info[2], info[3], size, &offset, &length)) {
    return Napi::Value();
  }
  ssize_t n = sockets::Write(fd, static_cast<const uint8_t*>(data) + offset, length);
  return Napi::Value(env, Number(env, static_cast<double>(n)));
}

// writev(fd, bufs): bytes or -errno; at most kMaxIovecs buffers go out per call
Napi::Value Writev(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "fd", &fd)) return Napi::Value();
  napi_value array = info[1];
  bool is_array = false;
  if (napi_is_array(env, array, &is_array) != napi_ok || !is_array) {
    ThrowTypeError(env, "The \"bufs\" argument must be an array of Uint8Array");
    return Napi::Value();
  }
  uint32_t total = 0;
  if (napi_get_array_length(env, array, &total) != napi_ok) {
    Fail(env);
    return Napi::Value();
  }
  size_t count = total < sockets::kMaxIovecs ? total : sockets::kMaxIovecs;
  if (count == 0) return Napi::Value(env, Int(env, 0));

  struct iovec iov[sockets::kMaxIovecs];
  for (size_t i = 0; i < count; i++) {
    napi_value element = nullptr;
    if (napi_get_element(env, array, static_cast<uint32_t>(i), &element) != napi_ok) {
      Fail(env);
      return Napi::Value();
    }
    napi_typedarray_type type = napi_int8_array;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(env, element, &type, &length, &data, nullptr, nullptr) !=
            napi_ok ||
        type != napi_uint8_array) {
      bool pending = false;
      if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) {
        char message[96];
        std::snprintf(message, sizeof(message),
                      "The \"bufs[%zu]\" element must be a Uint8Array or Buffer", i);
        ThrowTypeError(env, message);
      }
      return Napi::Value();
    }
    iov[i].iov_base = data;
    iov[i].iov_len = length;
  }
  ssize_t n = sockets::Writev(fd, iov, count);
  return Napi::Value(env, Number(env, static_cast<double>(n)));
}

// writeEach(fds, count, buf, offset, length, results): results[i] = bytes or -errno
Napi::Value WriteEach(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  void* fds = nullptr;
  size_t fds_length = 0;
  double count = 0;
  void* data = nullptr;
  size_t size = 0;
  size_t offset = 0;
  size_t length = 0;
  void* results = nullptr;
  size_t results_length = 0;
  if (!ToTypedArray(env, info[0], "fds", napi_int32_array, &fds, &fds_length) ||
      !ToInteger(env, info[1], "count", 0, static_cast<double>(fds_length), &count) ||
      !ToTypedArray(env, info[2], "buf", napi_uint8_array, &data, &size) ||
      !ToRange(env, info[3], info[4], size, &offset, &length) ||
      !ToTypedArray(env, info[5], "results", napi_int32_array, &results, &results_length)) {
    return Napi::Value();
  }
  if (results_length < count) {
    ThrowRangeError(env, "The \"results\" array must hold at least \"count\" elements");
    return Napi::Value();
  }
  sockets::WriteEach(static_cast<const int32_t*>(fds), static_cast<size_t>(count),
                     static_cast<const uint8_t*>(data) + offset, length,
                     static_cast<int32_t*>(results));
  return Napi::Value();
}

// shutdown(fd, how): 0 or -errno
Napi::Value Shutdown(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  int32_t how = 0;
  if (!ToFd(env, info[0], "fd", &fd) || !ToInt32(env, info[1], "how", 0, 2, &how)) {
    return Napi::Value();
  }
  static constexpr int kHow[] = {SHUT_RD, SHUT_WR, SHUT_RDWR};
  return Napi::Value(env, Int(env, sockets::Shutdown(fd, kHow[how])));
}

// The one-fd calls that return 0/value or -errno.
template <int (*Call)(int) noexcept>
Napi::Value FdCall(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "fd", &fd)) return Napi::Value();
  return Napi::Value(env, Int(env, Call(fd)));
}

Napi::Value SetNoDelay(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  bool on = false;
  if (!ToFd(env, info[0], "fd", &fd) || !ToBool(env, info[1], "on", &on)) return Napi::Value();
  return Napi::Value(env, Int(env, sockets::SetNoDelay(fd, on)));
}

Napi::Value SetLinger(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  bool on = false;
  int32_t seconds = 0;
  if (!ToFd(env, info[0], "fd", &fd) || !ToBool(env, info[1], "on", &on) ||
      !ToInt32(env, info[2], "seconds", 0, INT32_MAX, &seconds)) {
    return Napi::Value();
  }
  return Napi::Value(env, Int(env, sockets::SetLinger(fd, on, seconds)));
}

Napi::Value SetSockOpt(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  int32_t level = 0;
  int32_t option = 0;
  int32_t value = 0;
  if (!ToFd(env, info[0], "fd", &fd) ||
      !ToInt32(env, info[1], "level", INT32_MIN, INT32_MAX, &level) ||
      !ToInt32(env, info[2], "option", INT32_MIN, INT32_MAX, &option) ||
      !ToInt32(env, info[3], "value", INT32_MIN, INT32_MAX, &value)) {
    return Napi::Value();
  }
  return Napi::Value(env, Int(env, sockets::SetIntOption(fd, level, option, value)));
}

Napi::Value GetSockOpt(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  int32_t level = 0;
  int32_t option = 0;
  if (!ToFd(env, info[0], "fd", &fd) ||
      !ToInt32(env, info[1], "level", INT32_MIN, INT32_MAX, &level) ||
      !ToInt32(env, info[2], "option", INT32_MIN, INT32_MAX, &option)) {
    return Napi::Value();
  }
  int value = 0;
  int rc = sockets::GetIntOption(fd, level, option, &value);
  return Napi::Value(env, Int(env, rc < 0 ? rc : value));
}

template <int (*Call)(int, sockets::Address*) noexcept>
Napi::Value AddressCall(const Napi::CallbackInfo& info, const char* syscall) {
  Napi::Env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "fd", &fd)) return Napi::Value();
  sockets::Address address{};
  if (int rc = Call(fd, &address); rc < 0) {
    char detail[32];
    std::snprintf(detail, sizeof(detail), "(fd %d)", fd);
    ThrowSystemError(env, rc, syscall, detail);
    return Napi::Value();
  }
  Napi::Object result = Napi::Object::New(env);
  if (env.IsExceptionPending() || !result.Set("address", address.text) ||
      !result.Set("port", address.port) ||
      !result.Set("family", address.ipv6 ? "IPv6" : "IPv4")) {
    return Napi::Value();
  }
  return result;
}

Napi::Value LocalAddress(const Napi::CallbackInfo& info) {
  return AddressCall<sockets::LocalAddress>(info, "getsockname");
}

Napi::Value PeerAddress(const Napi::CallbackInfo& info) {
  return AddressCall<sockets::PeerAddress>(info, "getpeername");
}

// glibc keeps freed heap memory for reuse instead of returning it: after clients that held
// hundreds of MiB of partial frames leave, RSS stays up until malloc_trim (issue #9).
Napi::Value TrimMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

Napi::Value GetFdLimit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint64_t soft = 0;
  uint64_t hard = 0;
  if (int rc = sockets::GetFdLimit(&soft, &hard); rc < 0) {
    ThrowSystemError(env, rc, "getrlimit", "(RLIMIT_NOFILE)");
    return Napi::Value();
  }
  Napi::Object result = Napi::Object::New(env);
  if (env.IsExceptionPending() || !result.Set("soft", static_cast<double>(soft)) ||
      !result.Set("hard", static_cast<double>(hard))) {
    return Napi::Value();
  }
  return result;
}

Napi::Value SetFdLimit(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  double soft = 0;
  if (!ToInteger(env, info[0], "soft", 0, kMaxSafeInteger, &soft)) return Napi::Value();
  int64_t result = sockets::SetFdLimit(static_cast<uint64_t>(soft));
  return Napi::Value(env, Number(env, static_cast<double>(result)));
}

Napi::Value ErrnoNameOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int32_t errnum = 0;
  if (!ToInt32(env, info[0], "errno", -INT32_MAX, INT32_MAX, &errnum)) return Napi::Value();
  // Accept -EAGAIN as readily as EAGAIN: results in this API are negative errnos.
  char buf[16];
  return Napi::String::New(env, ErrnoNameOr(errnum < 0 ? -errnum : errnum, buf, sizeof(buf)));
}

// ---------------------------------------------------------------------------------------
// Poller

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Define(Napi::Env env) {
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

  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info), env_(info.Env()) {
    if (int rc = selector_.Open(); rc < 0) {
      // node-addon-api sees the pending exception, deletes this instance and rethrows.
      ThrowSystemError(env_, rc, Selector::CreateSyscall());
      return;
    }
    // Worker and env teardown: close the fd and the libuv handle even if JS never did.
    if (napi_add_env_cleanup_hook(env_, OnEnvCleanup, this) != napi_ok) {
      Fail(env_);
      return;
    }
    cleanup_hook_ = true;
  }

  ~Poller() override {
    if (cleanup_hook_) {
      napi_remove_env_cleanup_hook(env_, OnEnvCleanup, this);
      cleanup_hook_ = false;
    }
    // Finalized only while unreferenced, i.e. never while polling: nothing to Unref.
    CloseAll(false);
  }

 private:
  Napi::Value GetFd(const Napi::CallbackInfo& info) {
    return Napi::Value(info.Env(), Int(info.Env(), selector_.fd()));
  }

  // Shared by add and modify: (fd, token, interest).
  bool RegistrationArgs(const Napi::CallbackInfo& info, int* fd, uint64_t* token,
                        uint32_t* interest) {
    napi_env env = info.Env();
    double token_number = 0;
    int32_t interest_bits = 0;
    if (!ToFd(env, info[0], "fd", fd) ||
        !ToInteger(env, info[1], "token", 0, kMaxSafeInteger, &token_number) ||
        !ToInt32(env, info[2], "interest", 0, static_cast<int32_t>(kInterestMask),
                 &interest_bits)) {
      return false;
    }
    *token = static_cast<uint64_t>(token_number);
    *interest = static_cast<uint32_t>(interest_bits);
    return EnsureOpen(env);
  }

  bool EnsureOpen(napi_env env) {
    if (selector_.is_open()) return true;
    ThrowSystemError(env, EBADF, Selector::ControlSyscall(), "(the poller is closed)");
    return false;
  }

  void ThrowControlError(napi_env env, int rc, const char* op, int fd) {
    char detail[48];
    std::snprintf(detail, sizeof(detail), "(%s fd %d)", op, fd);
    ThrowSystemError(env, rc, Selector::ControlSyscall(), detail);
  }

  Napi::Value Add(const Napi::CallbackInfo& info) {
    int fd = 0;
    uint64_t token = 0;
    uint32_t interest = 0;
    if (!RegistrationArgs(info, &fd, &token, &interest)) return Napi::Value();
    if (int rc = selector_.Add(fd, token, interest); rc < 0) ThrowControlError(info.Env(), rc, "add", fd);
    return Napi::Value();
  }

  Napi::Value Modify(const Napi::CallbackInfo& info) {
    int fd = 0;
    uint64_t token = 0;
    uint32_t interest = 0;
    if (!RegistrationArgs(info, &fd, &token, &interest)) return Napi::Value();
    if (int rc = selector_.Modify(fd, token, interest); rc < 0) {
      ThrowControlError(info.Env(), rc, "modify", fd);
    }
    return Napi::Value();
  }

  Napi::Value Delete(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    int fd = 0;
    if (!ToFd(env, info[0], "fd", &fd) || !EnsureOpen(env)) return Napi::Value();
    if (int rc = selector_.Delete(fd); rc < 0) ThrowControlError(env, rc, "delete", fd);
    return Napi::Value();
  }

  // wait(events, timeoutMs): count
  Napi::Value Wait(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    void* data = nullptr;
    size_t length = 0;
    double timeout = 0;
    if (!ToTypedArray(env, info[0], "events", napi_uint32_array, &data, &length) ||
        !ToInteger(env, info[1], "timeoutMs", -1, kMaxSafeInteger, &timeout)) {
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

  // start(events, onEvents)
  Napi::Value Start(const Napi::CallbackInfo& info) {
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

    if (poll_ == nullptr) {
      int watched = selector_.ReadinessFd();
      if (watched < 0) {
        ThrowSystemError(env, watched, "uv_poll_init",
                         "(no pollable descriptor behind this poller)");
        return Napi::Value();
      }
      uv_loop_t* loop = nullptr;
      if (napi_status status = napi_get_uv_event_loop(env, &loop); status != napi_ok) {
        Fail(env);
        return Napi::Value();
      }
      auto* handle = new (std::nothrow) uv_poll_t;
      if (handle == nullptr) {
        ThrowSystemError(env, ENOMEM, "uv_poll_init");
        return Napi::Value();
      }
      // libuv reports errors as negative errno values on Unix.
      if (int rc = uv_poll_init(loop, handle, watched); rc < 0) {
        delete handle;
        ThrowSystemError(env, rc, "uv_poll_init");
        return Napi::Value();
      }
      handle->data = this;
      if (!want_ref_) uv_unref(reinterpret_cast<uv_handle_t*>(handle));
      poll_ = handle;
    }
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
    if (int rc = uv_poll_start(poll_, UV_READABLE, OnPoll); rc < 0) {
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

  Napi::Value Stop(const Napi::CallbackInfo&) {
    StopPolling();
    return Napi::Value();
  }

  Napi::Value RefHandle(const Napi::CallbackInfo&) {
    want_ref_ = true;
    if (poll_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
    return Napi::Value();
  }

  Napi::Value UnrefHandle(const Napi::CallbackInfo&) {
    want_ref_ = false;
    if (poll_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    return Napi::Value();
  }

  Napi::Value Close(const Napi::CallbackInfo&) {
    CloseAll(true);
    return Napi::Value();
  }

  void StopPolling() {
    if (poll_ != nullptr) uv_poll_stop(poll_);
    events_.Reset();
    on_events_.Reset();
    if (self_ref_) {
      self_ref_ = false;
      Unref();
    }
  }

  // Idempotent. `unref_self` is false from the destructor, where the wrapper is going.
  void CloseAll(bool unref_self) {
    if (poll_ != nullptr) {
      // Close the handle before the fd: uv_close removes the fd from libuv's own epoll/
      // kqueue set, which needs the descriptor still open.
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* handle) {
        delete reinterpret_cast<uv_poll_t*>(handle);
      });
      poll_ = nullptr;
    }
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

  static void OnEnvCleanup(void* arg) {
    auto* self = static_cast<Poller*>(arg);
    self->cleanup_hook_ = false;  // Node drops the hook once it has run.
    self->CloseAll(true);
  }

  static void OnPoll(uv_poll_t* handle, int status, int /*events*/) {
    auto* self = static_cast<Poller*>(handle->data);
    if (self == nullptr) return;
    napi_env env = self->env_;
    napi_handle_scope scope = nullptr;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    self->Dispatch(status);
    napi_close_handle_scope(env, scope);
  }

  // Errors found outside any JS call have nowhere to be thrown: hand them to
  // process 'uncaughtException', as Node does for its own handles.
  static void ReportFatal(napi_env env, napi_value error) {
    if (error == nullptr) {
      bool pending = false;
      if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) return;
      if (napi_get_and_clear_last_exception(env, &error) != napi_ok) return;
    }
    napi_fatal_exception(env, error);
  }

  void Dispatch(int status) {
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

  napi_env env_;
  Selector selector_;
  uv_poll_t* poll_ = nullptr;  // Freed by uv_close's callback, never directly.
  napi_async_context async_context_ = nullptr;
  Napi::ObjectReference events_;
  Napi::FunctionReference on_events_;
  bool want_ref_ = true;
  bool self_ref_ = false;
  bool cleanup_hook_ = false;
};

// ---------------------------------------------------------------------------------------
// Module

bool SetInt(Napi::Object object, const char* name, int value) { return object.Set(name, value); }

Napi::Object Freeze(Napi::Env env, Napi::Object object) {
  if (!env.IsExceptionPending()) {
    napi_status status = napi_object_freeze(env, object);
    if (status != napi_ok) Fail(env);
  }
  return object;
}

Napi::Object ErrnoConstants(Napi::Env env) {
  Napi::Object object = Napi::Object::New(env);
  if (env.IsExceptionPending()) return object;
  bool ok = SetInt(object, "EAGAIN", EAGAIN) && SetInt(object, "EINTR", EINTR) &&
            SetInt(object, "ECONNRESET", ECONNRESET) && SetInt(object, "EPIPE", EPIPE) &&
            SetInt(object, "EMFILE", EMFILE) && SetInt(object, "ENFILE", ENFILE) &&
            SetInt(object, "ENOBUFS", ENOBUFS) && SetInt(object, "ENOMEM", ENOMEM) &&
            SetInt(object, "ECONNABORTED", ECONNABORTED) &&
            SetInt(object, "EINPROGRESS", EINPROGRESS) && SetInt(object, "ENOENT", ENOENT) &&
            SetInt(object, "EBADF", EBADF) && SetInt(object, "ENOTCONN", ENOTCONN) &&
            SetInt(object, "ETIMEDOUT", ETIMEDOUT);
  return ok ? Freeze(env, object) : object;
}

Napi::Object SockoptConstants(Napi::Env env) {
  Napi::Object object = Napi::Object::New(env);
  if (env.IsExceptionPending()) return object;
#if defined(SO_REUSEPORT)
  const int reuse_port = SO_REUSEPORT;
#else
  const int reuse_port = -1;  // setsockopt with it fails (-EINVAL / -ENOPROTOOPT).
#endif
  bool ok = SetInt(object, "SOL_SOCKET", SOL_SOCKET) && SetInt(object, "SO_RCVBUF", SO_RCVBUF) &&
            SetInt(object, "SO_SNDBUF", SO_SNDBUF) &&
            SetInt(object, "SO_REUSEADDR", SO_REUSEADDR) &&
            SetInt(object, "SO_REUSEPORT", reuse_port) &&
            SetInt(object, "SO_KEEPALIVE", SO_KEEPALIVE) &&
            SetInt(object, "IPPROTO_TCP", IPPROTO_TCP) &&
            SetInt(object, "TCP_NODELAY", TCP_NODELAY);
  return ok ? Freeze(env, object) : object;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using P = Napi::PropertyDescriptor;
  constexpr auto kEnumerable = napi_enumerable;
  Napi::Function poller = Poller::Define(env);
  if (env.IsExceptionPending()) return exports;
  Napi::Object errno_constants = ErrnoConstants(env);
  if (env.IsExceptionPending()) return exports;
  Napi::Object sockopt_constants = SockoptConstants(env);
  if (env.IsExceptionPending()) return exports;

  exports.DefineProperties({
      P::Value("backend", Napi::String::New(env, Selector::Backend()), kEnumerable),
      P::Value("EVENT_STRIDE", Napi::Number::New(env, static_cast<double>(kEventStride)), kEnumerable),
      P::Value("napiVersion", Napi::Number::New(env, NAPI_VERSION), kEnumerable),
      P::Value("Poller", poller, kEnumerable),
      P::Function(env, exports, "listen", Listen, kEnumerable),
      P::Function(env, exports, "connect", Connect, kEnumerable),
      P::Function(env, exports, "accept", Accept, kEnumerable),
      P::Function(env, exports, "read", Read, kEnumerable),
      P::Function(env, exports, "write", Write, kEnumerable),
      P::Function(env, exports, "writev", Writev, kEnumerable),
      P::Function(env, exports, "writeEach", WriteEach, kEnumerable),
      P::Function(env, exports, "shutdown", Shutdown, kEnumerable),
      P::Function(env, exports, "close", FdCall<sockets::Close>, kEnumerable),
      P::Function(env, exports, "dup", FdCall<sockets::Dup>, kEnumerable),
      P::Function(env, exports, "setNonBlocking", FdCall<sockets::SetNonBlocking>, kEnumerable),
      P::Function(env, exports, "setNoDelay", SetNoDelay, kEnumerable),
      P::Function(env, exports, "setLinger", SetLinger, kEnumerable),
      P::Function(env, exports, "setsockopt", SetSockOpt, kEnumerable),
      P::Function(env, exports, "getsockopt", GetSockOpt, kEnumerable),
      P::Function(env, exports, "socketError", FdCall<sockets::SocketError>, kEnumerable),
      P::Function(env, exports, "localAddress", LocalAddress, kEnumerable),
      P::Function(env, exports, "peerAddress", PeerAddress, kEnumerable),
      P::Function(env, exports, "bytesReadable", FdCall<sockets::BytesReadable>, kEnumerable),
      P::Function(env, exports, "bytesUnsent", FdCall<sockets::BytesUnsent>, kEnumerable),
      P::Function(env, exports, "getFdLimit", GetFdLimit, kEnumerable),
      P::Function(env, exports, "trimMemory", TrimMemory, kEnumerable),
      P::Function(env, exports, "setFdLimit", SetFdLimit, kEnumerable),
      P::Function(env, exports, "errnoName", ErrnoNameOf, kEnumerable),
      P::Value("errno", errno_constants, kEnumerable),
      P::Value("sockopt", sockopt_constants, kEnumerable),
  });
  return exports;
}

}  // namespace
}  // namespace mob

static Napi::Object InitMob(Napi::Env env, Napi::Object exports) {
  return mob::Init(env, exports);
}

NODE_API_MODULE(mob, InitMob)
