#include "errors.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace mob {

const char* ErrnoName(int errnum) {
  switch (errnum) {
#define X(name) \
  case name:    \
    return #name;
    X(EPERM)
    X(ENOENT)
    X(ESRCH)
    X(EINTR)
    X(EIO)
    X(ENXIO)
    X(E2BIG)
    X(ENOEXEC)
    X(EBADF)
    X(ECHILD)
    X(EAGAIN)
    X(ENOMEM)
    X(EACCES)
    X(EFAULT)
#ifdef ENOTBLK
    X(ENOTBLK)
#endif
    X(EBUSY)
    X(EEXIST)
    X(EXDEV)
    X(ENODEV)
    X(ENOTDIR)
    X(EISDIR)
    X(EINVAL)
    X(ENFILE)
    X(EMFILE)
    X(ENOTTY)
    X(ETXTBSY)
    X(EFBIG)
    X(ENOSPC)
    X(ESPIPE)
    X(EROFS)
    X(EMLINK)
    X(EPIPE)
    X(EDOM)
    X(ERANGE)
    X(EDEADLK)
    X(ENAMETOOLONG)
    X(ENOLCK)
    X(ENOSYS)
    X(ENOTEMPTY)
    X(ELOOP)
#ifdef ENOMSG
    X(ENOMSG)
#endif
#ifdef EIDRM
    X(EIDRM)
#endif
#ifdef ENOSTR
    X(ENOSTR)
#endif
#ifdef ENODATA
    X(ENODATA)
#endif
#ifdef ETIME
    X(ETIME)
#endif
#ifdef ENOSR
    X(ENOSR)
#endif
#ifdef EREMOTE
    X(EREMOTE)
#endif
#ifdef ENOLINK
    X(ENOLINK)
#endif
    X(EPROTO)
#ifdef EMULTIHOP
    X(EMULTIHOP)
#endif
    X(EBADMSG)
    X(EOVERFLOW)
    X(EILSEQ)
#ifdef EUSERS
    X(EUSERS)
#endif
    X(ENOTSOCK)
    X(EDESTADDRREQ)
    X(EMSGSIZE)
    X(EPROTOTYPE)
    X(ENOPROTOOPT)
    X(EPROTONOSUPPORT)
#ifdef ESOCKTNOSUPPORT
    X(ESOCKTNOSUPPORT)
#endif
    // Linux has one value for ENOTSUP and EOPNOTSUPP; name it ENOTSUP as libuv/Node do.
    X(ENOTSUP)
#if EOPNOTSUPP != ENOTSUP
    X(EOPNOTSUPP)
#endif
#ifdef EPFNOSUPPORT
    X(EPFNOSUPPORT)
#endif
    X(EAFNOSUPPORT)
    X(EADDRINUSE)
    X(EADDRNOTAVAIL)
    X(ENETDOWN)
    X(ENETUNREACH)
    X(ENETRESET)
    X(ECONNABORTED)
    X(ECONNRESET)
    X(ENOBUFS)
    X(EISCONN)
    X(ENOTCONN)
    X(ESHUTDOWN)
#ifdef ETOOMANYREFS
    X(ETOOMANYREFS)
#endif
    X(ETIMEDOUT)
    X(ECONNREFUSED)
#ifdef EHOSTDOWN
    X(EHOSTDOWN)
#endif
    X(EHOSTUNREACH)
    X(EALREADY)
    X(EINPROGRESS)
#ifdef ESTALE
    X(ESTALE)
#endif
#ifdef EDQUOT
    X(EDQUOT)
#endif
    X(ECANCELED)
#ifdef EOWNERDEAD
    X(EOWNERDEAD)
#endif
#ifdef ENOTRECOVERABLE
    X(ENOTRECOVERABLE)
#endif
    // Aliases that share a value with a name above on some systems: a duplicate case
    // label would not compile, so each is only listed where it is distinct.
#if defined(EWOULDBLOCK) && EWOULDBLOCK != EAGAIN
    X(EWOULDBLOCK)
#endif
#if defined(EDEADLOCK) && EDEADLOCK != EDEADLK
    X(EDEADLOCK)
#endif
#undef X
    default:
      return nullptr;
  }
}

const char* ErrnoNameOr(int errnum, char* buf, size_t size) {
  if (const char* name = ErrnoName(errnum)) return name;
  std::snprintf(buf, size, "E%d", errnum);
  return buf;
}

namespace {

// strerror_r comes in two shapes: XSI returns int and fills buf, GNU returns the string
// (which may or may not be buf). Overloads pick whichever this libc declared.
[[maybe_unused]] const char* StrerrorResult(int rc, const char* buf) {
  return rc == 0 ? buf : nullptr;
}
[[maybe_unused]] const char* StrerrorResult(const char* rc, const char*) { return rc; }

}  // namespace

std::string_view ErrnoMessage(int errnum, char* buf, size_t size) {
  buf[0] = '\0';
  const char* message = StrerrorResult(strerror_r(errnum, buf, size), buf);
  if (message == nullptr || message[0] == '\0') {
    std::snprintf(buf, size, "Unknown error %d", errnum);
    message = buf;
  }
  return message;
}

napi_value MakeSystemError(napi_env env, int errnum, const char* syscall, std::string_view detail) {
  if (errnum < 0) errnum = -errnum;
  char name_buf[16];
  char message_buf[256];
  const char* code = ErrnoNameOr(errnum, name_buf, sizeof(name_buf));
  std::string_view text = ErrnoMessage(errnum, message_buf, sizeof(message_buf));

  std::string message;
  message.reserve(64 + text.size() + detail.size());
  message.append(syscall).append(" ").append(code).append(": ").append(text);
  if (!detail.empty()) message.append(" ").append(detail);

  napi_value js_message, js_code, js_errno, js_syscall, error;
  if (napi_create_string_utf8(env, message.data(), message.size(), &js_message) != napi_ok ||
      napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &js_code) != napi_ok ||
      napi_create_int32(env, errnum, &js_errno) != napi_ok ||
      napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &js_syscall) != napi_ok ||
      napi_create_error(env, nullptr, js_message, &error) != napi_ok ||
      napi_set_named_property(env, error, "code", js_code) != napi_ok ||
      napi_set_named_property(env, error, "errno", js_errno) != napi_ok ||
      napi_set_named_property(env, error, "syscall", js_syscall) != napi_ok) {
    return nullptr;
  }
  return error;
}

void ThrowSystemError(napi_env env, int errnum, const char* syscall, std::string_view detail) {
  napi_value error = MakeSystemError(env, errnum, syscall, detail);
  if (error != nullptr) {
    napi_throw(env, error);
    return;
  }
  // Building the error failed; never return to JS with the failure silently swallowed.
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) {
    napi_throw_error(env, nullptr, syscall);
  }
}

void ThrowTypeError(napi_env env, const char* message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
}

void ThrowRangeError(napi_env env, const char* message) {
  napi_throw_range_error(env, "ERR_OUT_OF_RANGE", message);
}

}  // namespace mob
