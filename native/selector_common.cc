// What the epoll and kqueue selectors do alike.
#include "selector.h"

#include <unistd.h>

#include <cerrno>
#include <new>

#if defined(MOB_USE_KQUEUE)
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#else
#include <sys/epoll.h>
#endif

namespace mob {

Selector::Selector() noexcept = default;

Selector::~Selector() { Close(); }

int Selector::Close() noexcept {
  if (fd_ < 0) return 0;
  int fd = fd_;
  fd_ = -1;
  readiness_fd_ = -1;
  // EINTR: Linux (epoll, libkqueue) releases the descriptor anyway, and retrying could
  // close one another thread has just been given; macOS/BSD leave it in an unspecified
  // state that retrying cannot fix. Treat it as closed, as libuv does.
  if (close(fd) < 0 && errno != EINTR) return -errno;
  return 0;
}

int Selector::Reserve(size_t capacity) noexcept {
  if (capacity <= scratch_capacity_) return 0;
  std::unique_ptr<NativeEvent[]> grown(new (std::nothrow) NativeEvent[capacity]);
  if (!grown) return -ENOMEM;
  scratch_ = std::move(grown);
  scratch_capacity_ = capacity;
  return 0;
}

int Selector::CheckRegistration(uint64_t token, uint32_t interest, const char** why) noexcept {
  if (token > kMaxToken || token > static_cast<uint64_t>(UINTPTR_MAX)) {
    *why = "the token is out of range";
    return -EINVAL;
  }
  if ((interest & ~kInterestMask) != 0) {
    *why = "unknown interest bits";
    return -EINVAL;
  }
  if ((interest & (kInterestReadable | kInterestWritable)) == 0) {
    *why = "the interest has neither READABLE nor WRITABLE";
    return -EINVAL;
  }
  if ((interest & kInterestOneshot) && (interest & kInterestDispatch)) {
    *why = "ONESHOT and DISPATCH exclude each other";
    return -EINVAL;
  }
  if ((interest & kInterestExclusive) && (interest & (kInterestOneshot | kInterestDispatch))) {
    *why = "EXCLUSIVE excludes ONESHOT and DISPATCH (epoll refuses the pair)";
    return -EINVAL;
  }
  const uint32_t unsupported = interest & ~SupportedInterest();
  if (unsupported & kInterestExclusive) {
    *why = "EXCLUSIVE is not available on this backend (see capabilities)";
    return -ENOTSUP;
  }
  if (unsupported & kInterestNoRdhup) {
    *why = "NO_RDHUP is not available on this backend: EV_EOF always comes (see capabilities)";
    return -ENOTSUP;
  }
  if (unsupported != 0) {
    *why = "an interest bit is not available on this backend (see capabilities)";
    return -ENOTSUP;
  }
  *why = nullptr;
  return 0;
}

std::span<const KernelConstant> Selector::KernelConstants() noexcept {
#define MOB_CONSTANT(name) KernelConstant{#name, static_cast<int64_t>(name)}
#if defined(MOB_USE_KQUEUE)
  static constexpr KernelConstant kConstants[] = {
      MOB_CONSTANT(EV_ADD),      MOB_CONSTANT(EV_DELETE),  MOB_CONSTANT(EV_ENABLE),
      MOB_CONSTANT(EV_DISABLE),  MOB_CONSTANT(EV_ONESHOT), MOB_CONSTANT(EV_CLEAR),
      MOB_CONSTANT(EV_RECEIPT),  MOB_CONSTANT(EV_DISPATCH), MOB_CONSTANT(EV_ERROR),
      MOB_CONSTANT(EV_EOF),      MOB_CONSTANT(EVFILT_READ), MOB_CONSTANT(EVFILT_WRITE),
  };
#else
  static constexpr KernelConstant kConstants[] = {
      MOB_CONSTANT(EPOLLIN),      MOB_CONSTANT(EPOLLPRI),       MOB_CONSTANT(EPOLLOUT),
      MOB_CONSTANT(EPOLLERR),     MOB_CONSTANT(EPOLLHUP),       MOB_CONSTANT(EPOLLRDNORM),
      MOB_CONSTANT(EPOLLRDBAND),  MOB_CONSTANT(EPOLLWRNORM),    MOB_CONSTANT(EPOLLWRBAND),
      MOB_CONSTANT(EPOLLMSG),     MOB_CONSTANT(EPOLLRDHUP),     MOB_CONSTANT(EPOLLEXCLUSIVE),
      MOB_CONSTANT(EPOLLWAKEUP),  MOB_CONSTANT(EPOLLONESHOT),   MOB_CONSTANT(EPOLLET),
  };
#endif
#undef MOB_CONSTANT
  return kConstants;
}

}  // namespace mob
