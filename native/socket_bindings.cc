#include "socket_bindings.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "args.h"
#include "env_owner.h"
#include "errors.h"
#include "sockets.h"

namespace mob {
namespace {

EnvOwner* OwnerOf(const Napi::CallbackInfo& info) { return static_cast<EnvOwner*>(info.Data()); }

// A descriptor just made for JS becomes this environment's, or is closed again.
int Owned(EnvOwner* owner, int fd) {
  if (fd < 0) return fd;
  if (int rc = owner->Own(fd); rc < 0) {
    sockets::Close(fd);
    return rc;
  }
  return fd;
}

// listen and connect: (host, port, ...) in, the fd or one SystemError out.
bool EndpointArgs(const Napi::CallbackInfo& info, char* host, size_t size, bool* fits, int32_t* port) {
  napi_env env = info.Env();
  return ToHost(env, info[0], host, size, fits) && ToInt32(env, info[1], "port", 0, 65535, port);
}

Napi::Value EndpointResult(const Napi::CallbackInfo& info, int fd, const char* op,
                           const char* syscall, const char* host, int port) {
  napi_env env = info.Env();
  fd = Owned(OwnerOf(info), fd);
  if (fd >= 0) return Napi::Value(env, Int(env, fd));
  if (std::strcmp(syscall, "inet_pton") == 0) {
    ThrowSystemError(env, fd, op, "(host is not an IPv4 or IPv6 literal)");
  } else {
    ThrowSystemError(env, fd, syscall, Endpoint(host, port));
  }
  return Napi::Value();
}

// listen(host, port, backlog, reusePort): fd, throws
Napi::Value Listen(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  char host[sockets::kAddressTextSize];
  bool fits = false;
  int32_t port = 0;
  int32_t backlog = 0;
  bool reuse_port = false;
  if (!EndpointArgs(info, host, sizeof(host), &fits, &port) ||
      !ToInt32(env, info[2], "backlog", INT32_MIN, INT32_MAX, &backlog) ||
      !ToBool(env, info[3], "reusePort", &reuse_port)) {
    return Napi::Value();
  }
  const char* syscall = "inet_pton";
  int fd = fits ? sockets::Listen(host, port, backlog, reuse_port, &syscall) : -EINVAL;
  return EndpointResult(info, fd, "listen", syscall, host, port);
}

// connect(host, port): fd (maybe still connecting), throws
Napi::Value Connect(const Napi::CallbackInfo& info) {
  char host[sockets::kAddressTextSize];
  bool fits = false;
  int32_t port = 0;
  if (!EndpointArgs(info, host, sizeof(host), &fits, &port)) return Napi::Value();
  const char* syscall = "inet_pton";
  int fd = fits ? sockets::Connect(host, port, &syscall) : -EINVAL;
  return EndpointResult(info, fd, "connect", syscall, host, port);
}

// socketpair(): [fd, fd], throws
Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fds[2] = {-1, -1};
  if (int rc = sockets::Socketpair(fds); rc < 0) {
    ThrowSystemError(env, rc, "socketpair", "(AF_UNIX, SOCK_STREAM)");
    return Napi::Value();
  }
  EnvOwner* owner = OwnerOf(info);
  int first = Owned(owner, fds[0]);
  int second = first < 0 ? first : Owned(owner, fds[1]);
  if (second < 0) {
    if (first >= 0) {
      owner->Disown(first);
      sockets::Close(first);
    } else {
      sockets::Close(fds[1]);
    }
    ThrowSystemError(env, second, "socketpair");
    return Napi::Value();
  }
  Napi::Array pair = Napi::Array::New(env, 2);
  if (env.IsExceptionPending() || !pair.Set(0u, first) || !pair.Set(1u, second)) return Napi::Value();
  return pair;
}

// (fd, buf, offset, length): shared by read and write. bytes points at buf[offset].
struct BufferArgs {
  int fd = 0;
  uint8_t* bytes = nullptr;
  size_t length = 0;

  bool Parse(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    void* data = nullptr;
    size_t size = 0;
    size_t offset = 0;
    if (!ToFd(env, info[0], "fd", &fd) ||
        !ToTypedArray(env, info[1], "buf", napi_uint8_array, &data, &size) ||
        !ToRange(env, info[2], info[3], size, &offset, &length)) {
      return false;
    }
    bytes = static_cast<uint8_t*>(data) + offset;
    return true;
  }
};

// read(fd, buf, offset, length): bytes, 0 at EOF, or -errno
Napi::Value Read(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  BufferArgs args;
  if (!args.Parse(info)) return Napi::Value();
  if (args.length == 0) {
    // read(2) of 0 bytes returns 0, which the caller would take for end of stream.
    ThrowRangeError(env, "The value of \"length\" is out of range. It must be > 0 for read "
                         "(a 0-byte read is indistinguishable from end of stream)");
    return Napi::Value();
  }
  ssize_t n = sockets::Read(args.fd, args.bytes, args.length);
  return Napi::Value(env, Number(env, static_cast<double>(n)));
}

// write(fd, buf, offset, length): bytes or -errno
Napi::Value Write(const Napi::CallbackInfo& info) {
  BufferArgs args;
  if (!args.Parse(info)) return Napi::Value();
  ssize_t n = sockets::Write(args.fd, args.bytes, args.length);
  return Napi::Value(info.Env(), Number(info.Env(), static_cast<double>(n)));
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

// What a one-fd call does to this environment's ownership.
enum class Ownership {
  kNone,
  kOwnsResult,       // accept, dup: the new descriptor is this environment's
  kReleasesArgument  // close: the descriptor is this environment's no more, either way
};

constexpr char kFd[] = "fd";
constexpr char kListenFd[] = "listenFd";

// The one-fd calls that return 0/value or -errno.
template <int (*Call)(int) noexcept, Ownership kOwnership = Ownership::kNone, const char* kName = kFd>
Napi::Value FdCall(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], kName, &fd)) return Napi::Value();
  if constexpr (kOwnership == Ownership::kReleasesArgument) OwnerOf(info)->Disown(fd);
  int result = Call(fd);
  if constexpr (kOwnership == Ownership::kOwnsResult) result = Owned(OwnerOf(info), result);
  return Napi::Value(env, Int(env, result));
}

// accept(listenFd), dup(fd): the new fd, this environment's, or -errno.
// close(fd): 0 or -errno; the descriptor is gone (and not owned) either way.
constexpr auto AcceptCall = FdCall<sockets::Accept, Ownership::kOwnsResult, kListenFd>;
constexpr auto DupCall = FdCall<sockets::Dup, Ownership::kOwnsResult>;
constexpr auto CloseCall = FdCall<sockets::Close, Ownership::kReleasesArgument>;

// adopt(fd): this environment owns fd from now on (closes it at teardown); throws EBADF
// if it is not open.
Napi::Value Adopt(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "fd", &fd)) return Napi::Value();
  if (!sockets::IsOpen(fd)) {
    char detail[48];
    std::snprintf(detail, sizeof(detail), "(adopt fd %d: not an open descriptor)", fd);
    ThrowSystemError(env, EBADF, "fcntl", detail);
    return Napi::Value();
  }
  if (int rc = OwnerOf(info)->Own(fd); rc < 0) ThrowSystemError(env, rc, "adopt");
  return Napi::Value();
}

// disown(fd): whether this environment owned fd; it does not any more.
Napi::Value Disown(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "fd", &fd)) return Napi::Value();
  return Napi::Boolean::New(env, OwnerOf(info)->Disown(fd));
}

const char* FamilyName(int family) {
  switch (family) {
    case AF_INET: return "IPv4";
    case AF_INET6: return "IPv6";
    case AF_UNIX: return "unix";
    default: return "other";
  }
}

const char* TypeName(int type) {
  switch (type) {
    case SOCK_STREAM: return "stream";
    case SOCK_DGRAM: return "datagram";
    default: return "other";
  }
}

// describeSocket(fd): { family, type, listening }, throws (ENOTSOCK, EBADF)
Napi::Value DescribeSocket(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = 0;
  if (!ToFd(env, info[0], "fd", &fd)) return Napi::Value();
  sockets::SocketKind kind{};
  if (int rc = sockets::DescribeSocket(fd, &kind); rc < 0) {
    char detail[32];
    std::snprintf(detail, sizeof(detail), "(fd %d)", fd);
    ThrowSystemError(env, rc, "getsockopt", detail);
    return Napi::Value();
  }
  Napi::Object result = Napi::Object::New(env);
  if (env.IsExceptionPending() || !result.Set("family", FamilyName(kind.family)) ||
      !result.Set("type", TypeName(kind.type)) || !result.Set("listening", kind.listening)) {
    return Napi::Value();
  }
  return result;
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

// (fd, level, option): shared by setsockopt and getsockopt.
bool OptionArgs(const Napi::CallbackInfo& info, int* fd, int32_t* level, int32_t* option) {
  napi_env env = info.Env();
  return ToFd(env, info[0], "fd", fd) &&
         ToInt32(env, info[1], "level", INT32_MIN, INT32_MAX, level) &&
         ToInt32(env, info[2], "option", INT32_MIN, INT32_MAX, option);
}

Napi::Value SetSockOpt(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  int32_t level = 0;
  int32_t option = 0;
  int32_t value = 0;
  if (!OptionArgs(info, &fd, &level, &option) ||
      !ToInt32(env, info[3], "value", INT32_MIN, INT32_MAX, &value)) {
    return Napi::Value();
  }
  return Napi::Value(env, Int(env, sockets::SetIntOption(fd, level, option, value)));
}

// getsockopt(fd, level, option): the value, which may be negative; throws on failure.
Napi::Value GetSockOpt(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  int fd = 0;
  int32_t level = 0;
  int32_t option = 0;
  if (!OptionArgs(info, &fd, &level, &option)) return Napi::Value();
  int value = 0;
  if (int rc = sockets::GetIntOption(fd, level, option, &value); rc < 0) {
    char detail[64];
    std::snprintf(detail, sizeof(detail), "(fd %d, level %d, option %d)", fd, level, option);
    ThrowSystemError(env, rc, "getsockopt", detail);
    return Napi::Value();
  }
  return Napi::Value(env, Int(env, value));
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
  if (!ToInteger(env, info[0], "soft", 0, static_cast<double>(kMaxSafeInteger), &soft)) {
    return Napi::Value();
  }
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

bool SetInt(Napi::Object object, const char* name, int value) { return object.Set(name, value); }

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
            SetInt(object, "ETIMEDOUT", ETIMEDOUT) && SetInt(object, "ENOTSUP", ENOTSUP) &&
            SetInt(object, "EINVAL", EINVAL) && SetInt(object, "ECONNREFUSED", ECONNREFUSED);
  if (ok) Freeze(env, object);
  return object;
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
            SetInt(object, "SO_ACCEPTCONN", SO_ACCEPTCONN) &&
            SetInt(object, "SO_TYPE", SO_TYPE) &&
            SetInt(object, "IPPROTO_TCP", IPPROTO_TCP) &&
            SetInt(object, "TCP_NODELAY", TCP_NODELAY);
  if (ok) Freeze(env, object);
  return object;
}

}  // namespace

bool DefineSocketBindings(Napi::Env env, Napi::Object exports, EnvOwner* owner) {
  using P = Napi::PropertyDescriptor;
  constexpr auto kEnumerable = napi_enumerable;
  Napi::Object errno_constants = ErrnoConstants(env);
  if (env.IsExceptionPending()) return false;
  Napi::Object sockopt_constants = SockoptConstants(env);
  if (env.IsExceptionPending()) return false;
  // The calls that make or close descriptors carry the environment's owner as their data.
  exports.DefineProperties({
      P::Function(env, exports, "listen", Listen, kEnumerable, owner),
      P::Function(env, exports, "connect", Connect, kEnumerable, owner),
      P::Function(env, exports, "accept", AcceptCall, kEnumerable, owner),
      P::Function(env, exports, "socketpair", Socketpair, kEnumerable, owner),
      P::Function(env, exports, "read", Read, kEnumerable),
      P::Function(env, exports, "write", Write, kEnumerable),
      P::Function(env, exports, "writev", Writev, kEnumerable),
      P::Function(env, exports, "writeEach", WriteEach, kEnumerable),
      P::Function(env, exports, "shutdown", Shutdown, kEnumerable),
      P::Function(env, exports, "close", CloseCall, kEnumerable, owner),
      P::Function(env, exports, "dup", DupCall, kEnumerable, owner),
      P::Function(env, exports, "adopt", Adopt, kEnumerable, owner),
      P::Function(env, exports, "disown", Disown, kEnumerable, owner),
      P::Function(env, exports, "setNonBlocking", FdCall<sockets::SetNonBlocking>, kEnumerable),
      P::Function(env, exports, "describeSocket", DescribeSocket, kEnumerable),
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
  return !env.IsExceptionPending();
}

}  // namespace mob
