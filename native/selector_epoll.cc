// Linux backend: epoll. Event mapping follows mio (src/sys/unix/selector/epoll.rs).
#if defined(MOB_USE_KQUEUE)
#error "selector_epoll.cc must not be compiled into a kqueue build"
#endif

#include "selector.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

namespace mob {

namespace {

uint32_t ToEpollEvents(uint32_t interest) {
  uint32_t events = 0;
  // EPOLLRDHUP lets a hang-up be seen as READ_CLOSED together with readability, without
  // a read() returning 0 first; NO_RDHUP leaves it out, to show the difference.
  if (interest & kInterestReadable) events |= EPOLLIN;
  // The kernel refuses EPOLLRDHUP with EPOLLEXCLUSIVE (EINVAL): EXCLUSIVE implies NO_RDHUP.
  if ((interest & kInterestReadable) && !(interest & (kInterestNoRdhup | kInterestExclusive))) {
    events |= EPOLLRDHUP;
  }
  if (interest & kInterestWritable) events |= EPOLLOUT;
  if (interest & kInterestEdge) events |= EPOLLET;
  // EPOLLONESHOT disarms the registration but keeps it, which is what EV_DISPATCH does on
  // kqueue: DISPATCH is its counterpart here, and ONESHOT has no other form on epoll.
  if (interest & (kInterestOneshot | kInterestDispatch)) events |= EPOLLONESHOT;
  // Linux 4.5+: only one of the epoll instances waiting on this fd is woken per event.
  if (interest & kInterestExclusive) events |= EPOLLEXCLUSIVE;
  return events;
}

uint32_t ToEventBits(uint32_t events) {
  uint32_t bits = 0;
  // EPOLLPRI (out-of-band data) is readable too: a reader that ignored it would spin.
  if (events & (EPOLLIN | EPOLLPRI)) bits |= kEventReadable;
  if (events & EPOLLOUT) bits |= kEventWritable;
  if (events & EPOLLERR) bits |= kEventError;
  // A FIN (or our own shutdown(SHUT_RD)) makes read() return 0, so the kernel raises
  // EPOLLRDHUP together with EPOLLIN; like mio, require both.
  if ((events & EPOLLHUP) || ((events & EPOLLIN) && (events & EPOLLRDHUP))) {
    bits |= kEventReadClosed;
  }
  // A lone EPOLLERR is what a refused or reset connect() reports: nothing can be sent.
  if ((events & EPOLLHUP) || ((events & EPOLLOUT) && (events & EPOLLERR)) ||
      events == EPOLLERR) {
    bits |= kEventWriteClosed;
  }
  return bits;
}

int Control(int epfd, int op, int fd, uint64_t token, uint32_t interest) {
  struct epoll_event event {};
  event.events = ToEpollEvents(interest);
  event.data.u64 = token;
  if (epoll_ctl(epfd, op, fd, &event) < 0) return -errno;
  return 0;
}

}  // namespace

const char* Selector::Backend() noexcept { return "epoll"; }
const char* Selector::CreateSyscall() noexcept { return "epoll_create1"; }
const char* Selector::ControlSyscall() noexcept { return "epoll_ctl"; }
const char* Selector::WaitSyscall() noexcept { return "epoll_wait"; }
uint32_t Selector::SupportedInterest() noexcept { return kInterestMask; }
const char* Selector::OneshotFlag() noexcept { return "EPOLLONESHOT"; }
const char* Selector::DispatchFlag() noexcept { return "EPOLLONESHOT"; }

int Selector::Open() noexcept {
  if (fd_ >= 0) return 0;
  int fd = epoll_create1(EPOLL_CLOEXEC);
  if (fd < 0) return -errno;
  fd_ = fd;
  readiness_fd_ = fd;
  return 0;
}

int Selector::ReadinessFd() noexcept { return fd_ >= 0 ? readiness_fd_ : -EBADF; }

int Selector::Add(int fd, uint64_t token, uint32_t interest) noexcept {
  const char* why = nullptr;
  if (int rc = CheckRegistration(token, interest, &why); rc < 0) return rc;
  return Control(fd_, EPOLL_CTL_ADD, fd, token, interest);
}

int Selector::Modify(int fd, uint64_t token, uint32_t interest) noexcept {
  const char* why = nullptr;
  if (int rc = CheckRegistration(token, interest, &why); rc < 0) return rc;
  // EPOLL_CTL_MOD also re-arms a disarmed EPOLLONESHOT registration, and re-evaluates
  // readiness at once: data already waiting is reported by the next wait.
  return Control(fd_, EPOLL_CTL_MOD, fd, token, interest);
}

int Selector::Delete(int fd) noexcept {
  // Kernels before 2.6.9 required a non-null event even for EPOLL_CTL_DEL.
  struct epoll_event event {};
  if (epoll_ctl(fd_, EPOLL_CTL_DEL, fd, &event) < 0) {
    return errno == ENOENT ? 0 : -errno;
  }
  return 0;
}

int Selector::Wait(uint32_t* out, size_t capacity, int timeout_ms) noexcept {
  if (capacity == 0) return -EINVAL;
  if (capacity > kMaxEventsPerWait) capacity = kMaxEventsPerWait;
  if (int rc = Reserve(capacity); rc < 0) return rc;
  if (timeout_ms < -1) timeout_ms = -1;

  int count = epoll_wait(fd_, scratch_.get(), static_cast<int>(capacity), timeout_ms);
  if (count < 0) {
    // A signal handler ran (Node installs some): report "no events" and let the caller
    // decide whether to wait again, rather than restarting with a stale timeout.
    return errno == EINTR ? 0 : -errno;
  }
  for (int i = 0; i < count; i++) {
    const struct epoll_event& event = scratch_[i];
    uint64_t token = event.data.u64;
    uint32_t* word = out + static_cast<size_t>(i) * kEventStride;
    word[0] = static_cast<uint32_t>(token);
    word[1] = static_cast<uint32_t>(token >> 32);
    word[2] = ToEventBits(event.events);
    word[3] = event.events;
    word[4] = 0;
  }
  return count;
}

}  // namespace mob
