// kqueue backend: macOS and the BSDs natively, and Linux through libkqueue (a build
// with MOB_KQUEUE_PREFIX). Event mapping follows mio (src/sys/unix/selector/kqueue.rs).
#if !defined(MOB_USE_KQUEUE)
#error "selector_kqueue.cc needs MOB_USE_KQUEUE (set by binding.gyp / CMakeLists.txt)"
#endif

#include "selector.h"

#include <fcntl.h>
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <type_traits>

#if defined(LIBKQUEUE) && defined(__linux__)
#include <dirent.h>
#include <dlfcn.h>
#include <sys/epoll.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#endif

namespace mob {

namespace {

// udata is a pointer on most systems and an intptr_t on NetBSD. (Templates, so that
// `if constexpr` discards the branch that does not compile for this system's type.)
using Udata = decltype(static_cast<struct kevent*>(nullptr)->udata);

template <typename T = Udata>
T ToUdata(uint64_t token) {
  if constexpr (std::is_pointer_v<T>) {
    return reinterpret_cast<T>(static_cast<uintptr_t>(token));
  } else {
    return static_cast<T>(token);
  }
}

template <typename T = Udata>
uint64_t FromUdata(T udata) {
  if constexpr (std::is_pointer_v<T>) {
    return static_cast<uint64_t>(reinterpret_cast<uintptr_t>(udata));
  } else {
    return static_cast<uint64_t>(udata);
  }
}

void SetChange(struct kevent* change, int fd, int filter, unsigned flags, uint64_t token) {
  *change = {};
  change->ident = static_cast<uintptr_t>(fd);
  change->filter = static_cast<decltype(change->filter)>(filter);
  change->flags = static_cast<decltype(change->flags)>(flags);
  change->udata = ToUdata(token);
}

// Applies changes that all carry EV_RECEIPT and checks every receipt. The receipts are
// written over the changes, and the event list is exactly as long as the change list:
// with room to spare, kevent() would go on to dequeue real events here and they would be
// lost (libkqueue does exactly that). The zero timeout makes sure it never blocks.
int Register(int kq, struct kevent* changes, int count, bool ignore_enoent) {
  const struct timespec zero {};
  int received = kevent(kq, changes, count, changes, count, &zero);
  if (received < 0) {
    // FreeBSD's kevent(2): on EINTR all changes have been applied.
    return errno == EINTR ? 0 : -errno;
  }
  for (int i = 0; i < received; i++) {
    const struct kevent& receipt = changes[i];
    if ((receipt.flags & EV_ERROR) == 0 || receipt.data == 0) continue;
    auto err = receipt.data;
    // Deleting a filter that is not there: the goal (not registered) is met.
    if (ignore_enoent && err == ENOENT) continue;
    // Older macOS reports EPIPE when registering a pipe whose other end is gone, yet
    // the registration is made and reports the hang-up (mio #582).
    if (err == EPIPE) continue;
    return -static_cast<int>(err);
  }
  return 0;
}

unsigned ModeFlags(uint32_t interest) {
  // libkqueue keeps the read and write filters of one fd in one epoll registration, so
  // EV_CLEAR is applied to both filters alike: every change below passes the same mode.
  unsigned flags = EV_RECEIPT;
  if (interest & kInterestEdge) flags |= EV_CLEAR;
  // EV_ONESHOT deletes the filter after one event; EV_DISPATCH only disables it, and the
  // EV_ADD of Modify enables it again (with EV_ENABLE, for kernels that want it said).
  if (interest & kInterestOneshot) flags |= EV_ONESHOT;
  if (interest & kInterestDispatch) flags |= EV_DISPATCH | EV_ENABLE;
  return flags;
}

#if defined(LIBKQUEUE) && defined(__linux__)
// libkqueue's kqueue() returns the write end of a private pipe (so it can notice the
// close), not something that ever becomes readable: polling it from libuv would never
// fire. The events really gather in an epoll descriptor libkqueue creates alongside, and
// registers the pipe's read end in with EPOLLIN. Find that epoll descriptor through
// /proc: an eventpoll fd whose fdinfo lists a target that is the same pipe as `kq` (but
// not `kq` itself) with EPOLLIN in its mask. libkqueue's process-wide close monitor
// watches that pipe too, but for EPOLLHUP only, so the EPOLLIN test tells them apart.
bool ReadLink(int fd, char* buf, size_t size) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, buf, size - 1);
  if (n < 0) return false;
  buf[n] = '\0';
  return true;
}

bool EpollWatchesPipe(int epfd, int kq, const char* pipe_link) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", epfd);
  FILE* info = std::fopen(path, "re");
  if (info == nullptr) return false;
  bool found = false;
  char line[256];
  while (!found && std::fgets(line, sizeof(line), info) != nullptr) {
    int target = -1;
    unsigned events = 0;
    if (std::sscanf(line, "tfd: %d events: %x", &target, &events) != 2) continue;
    if (target == kq || (events & EPOLLIN) == 0) continue;
    char link[128];
    found = ReadLink(target, link, sizeof(link)) && std::strcmp(link, pipe_link) == 0;
  }
  std::fclose(info);
  return found;
}

int FindLibkqueueEpoll(int kq) {
  char pipe_link[128];
  if (!ReadLink(kq, pipe_link, sizeof(pipe_link))) return -errno;
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -errno;
  int result = -ENOTSUP;
  while (struct dirent* entry = readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    char link[128];
    if (!ReadLink(static_cast<int>(fd), link, sizeof(link))) continue;
    if (std::strcmp(link, "anon_inode:[eventpoll]") != 0) continue;
    if (EpollWatchesPipe(static_cast<int>(fd), kq, pipe_link)) {
      result = static_cast<int>(fd);
      break;
    }
  }
  closedir(dir);
  return result;
}
#endif

}  // namespace

const char* Selector::Backend() noexcept { return "kqueue"; }
const char* Selector::CreateSyscall() noexcept { return "kqueue"; }
const char* Selector::ControlSyscall() noexcept { return "kevent"; }
const char* Selector::WaitSyscall() noexcept { return "kevent"; }
// No EPOLLEXCLUSIVE counterpart, and EV_EOF cannot be turned off.
uint32_t Selector::SupportedInterest() noexcept {
  return kInterestMask & ~(kInterestExclusive | kInterestNoRdhup);
}
const char* Selector::OneshotFlag() noexcept { return "EV_ONESHOT"; }
const char* Selector::DispatchFlag() noexcept { return "EV_DISPATCH"; }

int Selector::Open() noexcept {
  if (fd_ >= 0) return 0;
#if defined(LIBKQUEUE) && defined(__linux__)
  // libkqueue starts a process-wide monitor thread with the first kqueue and never stops
  // it. When the last worker that loaded this addon ends, Node unloads the addon, and
  // libkqueue with it unless something pins it: the thread would then run unmapped code
  // (SIGSEGV). RTLD_NOLOAD|RTLD_NODELETE pins the copy already loaded; repeating it is free.
  dlopen("libkqueue.so.0", RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
#endif
  int fd = kqueue();
  if (fd < 0) return -errno;
  // kqueue() has no close-on-exec flag (FreeBSD's kqueuex() is too recent to rely on).
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  fd_ = fd;
  readiness_fd_ = -1;
  return 0;
}

int Selector::ReadinessFd() noexcept {
  if (fd_ < 0) return -EBADF;
  if (readiness_fd_ >= 0) return readiness_fd_;
#if defined(LIBKQUEUE) && defined(__linux__)
  int found = FindLibkqueueEpoll(fd_);
  if (found < 0) return found;
  readiness_fd_ = found;
#else
  // A native kqueue descriptor is itself readable while events are pending.
  readiness_fd_ = fd_;
#endif
  return readiness_fd_;
}

int Selector::Add(int fd, uint64_t token, uint32_t interest) noexcept {
  const char* why = nullptr;
  if (int rc = CheckRegistration(token, interest, &why); rc < 0) return rc;
  const unsigned flags = EV_ADD | ModeFlags(interest);
  struct kevent changes[2];
  int count = 0;
  // One kevent per filter: the read and write filters are independent registrations.
  if (interest & kInterestWritable) SetChange(&changes[count++], fd, EVFILT_WRITE, flags, token);
  if (interest & kInterestReadable) SetChange(&changes[count++], fd, EVFILT_READ, flags, token);
  return Register(fd_, changes, count, false);
}

int Selector::Modify(int fd, uint64_t token, uint32_t interest) noexcept {
  const char* why = nullptr;
  if (int rc = CheckRegistration(token, interest, &why); rc < 0) return rc;
  // kqueue cannot say what is registered, so add the wanted filters and delete the
  // unwanted ones, ignoring ENOENT for those that were not there (mio's reregister).
  // EV_ADD on an existing filter replaces its flags and udata, and re-arms EV_ONESHOT.
#if defined(LIBKQUEUE)
  // libkqueue keeps the old udata when EV_ADD re-enables a level-triggered filter that
  // EV_DISPATCH disabled: the next event would carry the previous token. Start afresh.
  if (interest & kInterestDispatch) {
    if (int rc = Delete(fd); rc < 0) return rc;
  }
#endif
  const unsigned mode = ModeFlags(interest);
  const unsigned add = EV_ADD | mode;
  const unsigned remove = EV_DELETE | (mode & ~EV_ENABLE);
  const unsigned write_flags = interest & kInterestWritable ? add : remove;
  const unsigned read_flags = interest & kInterestReadable ? add : remove;
  struct kevent changes[2];
  SetChange(&changes[0], fd, EVFILT_WRITE, write_flags, token);
  SetChange(&changes[1], fd, EVFILT_READ, read_flags, token);
  return Register(fd_, changes, 2, true);
}

int Selector::Delete(int fd) noexcept {
  struct kevent changes[2];
  SetChange(&changes[0], fd, EVFILT_WRITE, EV_DELETE | EV_RECEIPT, 0);
  SetChange(&changes[1], fd, EVFILT_READ, EV_DELETE | EV_RECEIPT, 0);
  return Register(fd_, changes, 2, true);
}

int Selector::Wait(uint32_t* out, size_t capacity, int timeout_ms) noexcept {
  if (capacity == 0) return -EINVAL;
  if (capacity > kMaxEventsPerWait) capacity = kMaxEventsPerWait;
  if (int rc = Reserve(capacity); rc < 0) return rc;

  struct timespec timeout {};
  const struct timespec* timeout_ptr = nullptr;
  if (timeout_ms >= 0) {
    timeout.tv_sec = timeout_ms / 1000;
    timeout.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000L;
    timeout_ptr = &timeout;
  }

  int count = kevent(fd_, nullptr, 0, scratch_.get(), static_cast<int>(capacity), timeout_ptr);
  if (count < 0) {
    // A signal handler ran: report "no events" rather than retry with a stale timeout.
    return errno == EINTR ? 0 : -errno;
  }
  for (int i = 0; i < count; i++) {
    const struct kevent& event = scratch_[i];
    const uint64_t token = FromUdata(event.udata);
    const unsigned flags = event.flags;
    uint32_t bits = 0;
    if (event.filter == EVFILT_READ) bits |= kEventReadable;
    if (event.filter == EVFILT_WRITE) bits |= kEventWritable;
    // With EV_EOF, fflags carries the socket error (e.g. ECONNRESET), if there is one.
    if ((flags & EV_ERROR) || ((flags & EV_EOF) && event.fflags != 0)) bits |= kEventError;
    // libkqueue may leave EV_EOF off when the last data and the FIN arrive together; the
    // reader still sees read() == 0 after draining, so nothing is lost, only reported late.
    if (event.filter == EVFILT_READ && (flags & EV_EOF)) bits |= kEventReadClosed;
    if (event.filter == EVFILT_WRITE && (flags & EV_EOF)) bits |= kEventWriteClosed;

    // data: bytes readable (EVFILT_READ), send-buffer space on the BSDs or unsent bytes on
    // libkqueue (EVFILT_WRITE), or an errno (EV_ERROR). Clamped to fit one word.
    const auto data = event.data;
    uint32_t data_word = 0;
    if (data > 0) {
      data_word = static_cast<uint64_t>(data) > UINT32_MAX ? UINT32_MAX
                                                           : static_cast<uint32_t>(data);
    }

    uint32_t* word = out + static_cast<size_t>(i) * kEventStride;
    word[0] = static_cast<uint32_t>(token);
    word[1] = static_cast<uint32_t>(token >> 32);
    word[2] = bits;
    word[3] = ((flags & 0xffffu) << 16) | static_cast<uint16_t>(event.filter);
    word[4] = data_word;
  }
  return count;
}

}  // namespace mob
