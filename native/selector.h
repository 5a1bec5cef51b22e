// The one poller interface, in the spirit of mio's `Selector`: a registration table in
// the kernel (epoll or kqueue) plus a wait that writes events in the layout that
// src/native/binding.ts describes. Exactly one backend is compiled: selector_epoll.cc or
// selector_kqueue.cc (the build defines MOB_USE_KQUEUE for the latter, for every file),
// plus selector_common.cc for what both do alike. No N-API in here: results are values or
// -errno.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "js_number.h"

#if defined(MOB_USE_KQUEUE)
struct kevent;
#else
struct epoll_event;
#endif

namespace mob {

// Interest bits accepted by Add/Modify (binding.ts InterestBits).
inline constexpr uint32_t kInterestReadable = 1;
inline constexpr uint32_t kInterestWritable = 2;
inline constexpr uint32_t kInterestEdge = 4;
inline constexpr uint32_t kInterestOneshot = 8;
inline constexpr uint32_t kInterestExclusive = 16;
inline constexpr uint32_t kInterestNoRdhup = 32;
inline constexpr uint32_t kInterestDispatch = 64;
inline constexpr uint32_t kInterestMask = 127;

// Readiness bits written by Wait (binding.ts EventBits).
inline constexpr uint32_t kEventReadable = 1;
inline constexpr uint32_t kEventWritable = 2;
inline constexpr uint32_t kEventReadClosed = 4;
inline constexpr uint32_t kEventWriteClosed = 8;
inline constexpr uint32_t kEventError = 16;

// Words per event: [0] token lo, [1] token hi, [2] event bits, [3] raw bits, [4] data.
inline constexpr size_t kEventStride = 5;

// Tokens cross into JS as doubles, so they stop at 2**53 - 1.
inline constexpr uint64_t kMaxToken = kMaxSafeInteger;

// Upper bound on events gathered by one Wait. More than this in one turn only delays the
// caller's other work; whatever is left is reported by the next Wait.
inline constexpr size_t kMaxEventsPerWait = 65536;

// A constant of the kernel's own API, exported so that tools name raw bits from the
// backend's headers instead of re-encoding them (binding.ts `kernel`).
struct KernelConstant {
  const char* name;
  int64_t value;
};

class Selector {
 public:
  Selector() noexcept;
  ~Selector();
  Selector(const Selector&) = delete;
  Selector& operator=(const Selector&) = delete;

  // "epoll" or "kqueue".
  static const char* Backend() noexcept;
  // Syscall names for error messages.
  static const char* CreateSyscall() noexcept;
  static const char* ControlSyscall() noexcept;
  static const char* WaitSyscall() noexcept;

  // The kInterest* bits this backend can honour; Add/Modify refuse others with -ENOTSUP.
  static uint32_t SupportedInterest() noexcept;
  // The kernel flag behind kInterestOneshot / kInterestDispatch ('EPOLLONESHOT', ...).
  static const char* OneshotFlag() noexcept;
  static const char* DispatchFlag() noexcept;
  static std::span<const KernelConstant> KernelConstants() noexcept;

  // Checks a registration before the kernel sees it: 0, -EINVAL (token out of range,
  // unknown bits, neither READABLE nor WRITABLE, ONESHOT with DISPATCH) or -ENOTSUP (a bit
  // this backend cannot honour). *why says which, for error messages.
  static int CheckRegistration(uint64_t token, uint32_t interest, const char** why) noexcept;

  // Creates the kernel object (close-on-exec). 0 or -errno. No-op when already open.
  int Open() noexcept;
  // Closes it. 0 or -errno; the descriptor is gone either way. Idempotent.
  int Close() noexcept;

  int fd() const noexcept { return fd_; }
  bool is_open() const noexcept { return fd_ >= 0; }

  // The descriptor an outer event loop (libuv) must watch for readability to learn that
  // Wait(0) has events. It is fd() for epoll and native kqueue; see selector_kqueue.cc
  // for libkqueue. Returns the descriptor or -errno.
  int ReadinessFd() noexcept;

  // 0 or -errno. token <= kMaxToken; interest is a combination of kInterest* bits with
  // READABLE or WRITABLE among them (an empty interest is refused on both backends: epoll
  // would register and still report hang-ups, kqueue would register nothing).
  int Add(int fd, uint64_t token, uint32_t interest) noexcept;
  int Modify(int fd, uint64_t token, uint32_t interest) noexcept;
  // ENOENT (not registered) is success.
  int Delete(int fd) noexcept;

  // Waits up to timeout_ms (-1: forever, 0: poll) for at most `capacity` events and
  // writes them to out[0 .. count * kEventStride). Returns count (0 on EINTR) or -errno.
  int Wait(uint32_t* out, size_t capacity, int timeout_ms) noexcept;

 private:
#if defined(MOB_USE_KQUEUE)
  using NativeEvent = struct kevent;
#else
  using NativeEvent = struct epoll_event;
#endif

  // Grows the scratch array to at least `capacity` native events. 0 or -ENOMEM.
  int Reserve(size_t capacity) noexcept;

  int fd_ = -1;
  int readiness_fd_ = -1;
  std::unique_ptr<NativeEvent[]> scratch_;
  size_t scratch_capacity_ = 0;
};

}  // namespace mob
