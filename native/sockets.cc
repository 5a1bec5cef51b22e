#include "sockets.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__linux__)
#include <linux/sockios.h>  // SIOCOUTQ
#endif

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mob::sockets {

namespace {

// Writing to a socket whose peer has gone raises SIGPIPE, which kills a Node process
// that has not ignored it. MSG_NOSIGNAL turns that into EPIPE per call where it exists;
// elsewhere (macOS) each socket gets SO_NOSIGPIPE instead (see SuppressSigpipe).
#if defined(MSG_NOSIGNAL)
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;
#endif

#if defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__)
#define MOB_HAVE_ACCEPT4 1
#endif

int SuppressSigpipe([[maybe_unused]] int fd) {
#if defined(SO_NOSIGPIPE)
  // Set wherever it exists, not only where MSG_NOSIGNAL is missing: macOS SDKs differ
  // in whether they expose MSG_NOSIGNAL, and the option costs nothing.
  int on = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof(on)) < 0) return -errno;
#endif
  return 0;
}

int SetNonblockCloexec(int fd) {
  int status = fcntl(fd, F_GETFL);
  if (status < 0) return -errno;
  if ((status & O_NONBLOCK) == 0 && fcntl(fd, F_SETFL, status | O_NONBLOCK) < 0) return -errno;
  int fd_flags = fcntl(fd, F_GETFD);
  if (fd_flags < 0) return -errno;
  if ((fd_flags & FD_CLOEXEC) == 0 && fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) < 0) return -errno;
  return 0;
}

// Finishes setting up a descriptor the kernel just gave us; closes it on failure.
int Adopt(int fd, bool flags_already_set) {
  int rc = flags_already_set ? 0 : SetNonblockCloexec(fd);
  if (rc == 0) rc = SuppressSigpipe(fd);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int NewTcpSocket(int family) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  // Atomic flags: no window in which a fork+exec elsewhere inherits the descriptor.
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  return Adopt(fd, true);
#else
  int fd = socket(family, SOCK_STREAM, 0);
  if (fd < 0) return -errno;
  return Adopt(fd, false);
#endif
}

// Parses an IP literal. An IPv6 literal may carry a zone ('fe80::1%eth0' or '%2').
int ParseAddress(const char* host, int port, struct sockaddr_storage* storage, socklen_t* length) {
  std::memset(storage, 0, sizeof(*storage));
  if (std::strchr(host, ':') == nullptr) {
    auto* addr = reinterpret_cast<struct sockaddr_in*>(storage);
    addr->sin_family = AF_INET;
    addr->sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) return -EINVAL;
    *length = sizeof(*addr);
    return 0;
  }

  char literal[kAddressTextSize];
  if (std::strlen(host) >= sizeof(literal)) return -EINVAL;
  std::strcpy(literal, host);
  const char* zone = nullptr;
  if (char* percent = std::strchr(literal, '%')) {
    *percent = '\0';
    zone = percent + 1;
  }
  auto* addr = reinterpret_cast<struct sockaddr_in6*>(storage);
  addr->sin6_family = AF_INET6;
  addr->sin6_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET6, literal, &addr->sin6_addr) != 1) return -EINVAL;
  if (zone != nullptr) {
    char* end = nullptr;
    unsigned long index = std::strtoul(zone, &end, 10);
    if (*zone == '\0' || *end != '\0') index = if_nametoindex(zone);
    if (index == 0 || index > UINT32_MAX) return -EINVAL;
    addr->sin6_scope_id = static_cast<uint32_t>(index);
  }
  *length = sizeof(*addr);
  return 0;
}

int FormatAddress(const struct sockaddr_storage& storage, Address* out) {
  if (storage.ss_family == AF_INET) {
    const auto* addr = reinterpret_cast<const struct sockaddr_in*>(&storage);
    if (inet_ntop(AF_INET, &addr->sin_addr, out->text, sizeof(out->text)) == nullptr) {
      return -errno;
    }
    out->port = ntohs(addr->sin_port);
    out->ipv6 = false;
    return 0;
  }
  if (storage.ss_family == AF_INET6) {
    const auto* addr = reinterpret_cast<const struct sockaddr_in6*>(&storage);
    if (inet_ntop(AF_INET6, &addr->sin6_addr, out->text, sizeof(out->text)) == nullptr) {
      return -errno;
    }
    if (addr->sin6_scope_id != 0) {
      size_t used = std::strlen(out->text);
      char name[IF_NAMESIZE];
      if (if_indextoname(addr->sin6_scope_id, name) != nullptr) {
        std::snprintf(out->text + used, sizeof(out->text) - used, "%%%s", name);
      } else {
        std::snprintf(out->text + used, sizeof(out->text) - used, "%%%u",
                      static_cast<unsigned>(addr->sin6_scope_id));
      }
    }
    out->port = ntohs(addr->sin6_port);
    out->ipv6 = true;
    return 0;
  }
  return -EAFNOSUPPORT;
}

uint64_t FromRlim(rlim_t value) {
  if (value == RLIM_INFINITY || static_cast<uint64_t>(value) > kMaxSafeInteger) {
    return kMaxSafeInteger;
  }
  return static_cast<uint64_t>(value);
}

}  // namespace

int Listen(const char* host, int port, int backlog, bool reuse_port, const char** syscall) noexcept {
  struct sockaddr_storage storage;
  socklen_t length = 0;
  *syscall = "inet_pton";
  if (int rc = ParseAddress(host, port, &storage, &length); rc < 0) return rc;

  *syscall = "socket";
  int fd = NewTcpSocket(storage.ss_family);
  if (fd < 0) return fd;

  int on = 1;
  // SO_REUSEADDR: restart while old connections sit in TIME_WAIT.
  *syscall = "setsockopt";
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0) goto fail;
  if (reuse_port) {
#if defined(SO_REUSEPORT)
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0) goto fail;
#else
    errno = ENOTSUP;
    goto fail;
#endif
  }

  *syscall = "bind";
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&storage), length) < 0) goto fail;

  // "The system maximum": Linux and the BSDs silently clamp a backlog above somaxconn
  // (net.core.somaxconn / kern.ipc.somaxconn) to it, so INT_MAX always means "as much
  // as allowed" and keeps tracking the sysctl, where the SOMAXCONN macro (128 on many
  // systems) would not.
  *syscall = "listen";
  if (listen(fd, backlog <= 0 ? INT_MAX : backlog) < 0) goto fail;
  return fd;

fail:
  int err = errno;
  close(fd);
  return -err;
}

int Connect(const char* host, int port, const char** syscall) noexcept {
  struct sockaddr_storage storage;
  socklen_t length = 0;
  *syscall = "inet_pton";
  if (int rc = ParseAddress(host, port, &storage, &length); rc < 0) return rc;

  *syscall = "socket";
  int fd = NewTcpSocket(storage.ss_family);
  if (fd < 0) return fd;

  *syscall = "connect";
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&storage), length) < 0) {
    int err = errno;
    // EINTR on a non-blocking connect: the handshake goes on in the background, exactly
    // as with EINPROGRESS; writability and SO_ERROR tell the outcome.
    if (err == EINPROGRESS || err == EINTR) return fd;
    close(fd);
    return -err;
  }
  return fd;
}

int Socketpair(int fds[2]) noexcept {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0) return -errno;
  const bool flags_set = true;
#else
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) < 0) return -errno;
  const bool flags_set = false;
#endif
  int first = Adopt(fds[0], flags_set);
  if (first < 0) {
    close(fds[1]);
    return first;
  }
  int second = Adopt(fds[1], flags_set);
  if (second < 0) {
    close(fds[0]);
    return second;
  }
  return 0;
}

bool IsOpen(int fd) noexcept { return fcntl(fd, F_GETFD) >= 0; }

int DescribeSocket(int fd, SocketKind* out) noexcept {
  struct sockaddr_storage storage {};
  socklen_t length = sizeof(storage);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&storage), &length) < 0) return -errno;
  int type = 0;
  if (int rc = GetIntOption(fd, SOL_SOCKET, SO_TYPE, &type); rc < 0) return rc;
  int listening = 0;
  if (int rc = GetIntOption(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening); rc < 0) return rc;
  out->family = storage.ss_family;
  out->type = type;
  out->listening = listening != 0;
  return 0;
}

int Accept(int listen_fd) noexcept {
  for (;;) {
#if defined(MOB_HAVE_ACCEPT4)
    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    const bool flags_set = true;
#else
    // macOS has no accept4, and accepted sockets do not inherit O_NONBLOCK on the BSDs.
    int fd = accept(listen_fd, nullptr, nullptr);
    const bool flags_set = false;
#endif
    if (fd < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    return Adopt(fd, flags_set);
  }
}

ssize_t Read(int fd, void* data, size_t length) noexcept {
  for (;;) {
    ssize_t n = read(fd, data, length);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t Write(int fd, const void* data, size_t length) noexcept {
  for (;;) {
    ssize_t n = send(fd, data, length, kSendFlags);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

ssize_t Writev(int fd, const struct iovec* iov, size_t count) noexcept {
  struct msghdr message {};
  message.msg_iov = const_cast<struct iovec*>(iov);
  message.msg_iovlen = static_cast<decltype(message.msg_iovlen)>(count);
  for (;;) {
    // sendmsg rather than writev(2): only the send family takes MSG_NOSIGNAL.
    ssize_t n = sendmsg(fd, &message, kSendFlags);
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

void WriteEach(const int32_t* fds, size_t count, const void* data, size_t length,
               int32_t* results) noexcept {
  for (size_t i = 0; i < count; i++) {
    ssize_t n = Write(fds[i], data, length);
    results[i] = n > INT32_MAX ? INT32_MAX : static_cast<int32_t>(n);
  }
}

int Shutdown(int fd, int how) noexcept {
  return shutdown(fd, how) < 0 ? -errno : 0;
}

int Close(int fd) noexcept {
  // Never retry: Linux releases the descriptor even when close() fails with EINTR, and
  // a retry could close a descriptor another thread was just given. macOS/BSD may report
  // EINTR or EINPROGRESS while the close completes in the background. Either way the
  // descriptor is gone, as libuv also assumes.
  if (close(fd) < 0 && errno != EINTR && errno != EINPROGRESS) return -errno;
  return 0;
}

int SetNonBlocking(int fd) noexcept { return SetNonblockCloexec(fd); }

int Dup(int fd) noexcept {
  int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return copy < 0 ? -errno : copy;
}

int SetNoDelay(int fd, bool on) noexcept {
  return SetIntOption(fd, IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
}

int SetLinger(int fd, bool on, int seconds) noexcept {
  struct linger linger {};
  linger.l_onoff = on ? 1 : 0;
  linger.l_linger = seconds;
#if defined(SO_LINGER_SEC)
  // macOS measures SO_LINGER in clock ticks; SO_LINGER_SEC takes seconds.
  const int option = SO_LINGER_SEC;
#else
  const int option = SO_LINGER;
#endif
  return setsockopt(fd, SOL_SOCKET, option, &linger, sizeof(linger)) < 0 ? -errno : 0;
}

int SetIntOption(int fd, int level, int option, int value) noexcept {
  return setsockopt(fd, level, option, &value, sizeof(value)) < 0 ? -errno : 0;
}

int GetIntOption(int fd, int level, int option, int* value) noexcept {
  int result = 0;
  socklen_t length = sizeof(result);
  if (getsockopt(fd, level, option, &result, &length) < 0) return -errno;
  *value = result;
  return 0;
}

int SocketError(int fd) noexcept {
  int error = 0;
  int rc = GetIntOption(fd, SOL_SOCKET, SO_ERROR, &error);
  return rc < 0 ? rc : error;
}

int LocalAddress(int fd, Address* out) noexcept {
  struct sockaddr_storage storage {};
  socklen_t length = sizeof(storage);
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&storage), &length) < 0) return -errno;
  return FormatAddress(storage, out);
}

int PeerAddress(int fd, Address* out) noexcept {
  struct sockaddr_storage storage {};
  socklen_t length = sizeof(storage);
  if (getpeername(fd, reinterpret_cast<struct sockaddr*>(&storage), &length) < 0) return -errno;
  return FormatAddress(storage, out);
}

int BytesReadable(int fd) noexcept {
  int bytes = 0;
  return ioctl(fd, FIONREAD, &bytes) < 0 ? -errno : bytes;
}

int BytesUnsent([[maybe_unused]] int fd) noexcept {
  int bytes = 0;
#if defined(__linux__)
  // SIOCOUTQ: bytes queued but not yet acknowledged by the peer.
  if (ioctl(fd, SIOCOUTQ, &bytes) < 0) return -errno;
  return bytes;
#elif defined(__APPLE__) && defined(SO_NWRITE)
  socklen_t length = sizeof(bytes);
  if (getsockopt(fd, SOL_SOCKET, SO_NWRITE, &bytes, &length) < 0) return -errno;
  return bytes;
#elif defined(FIONWRITE)
  if (ioctl(fd, FIONWRITE, &bytes) < 0) return -errno;
  return bytes;
#else
  (void)bytes;
  return -ENOTSUP;
#endif
}

int GetFdLimit(uint64_t* soft, uint64_t* hard) noexcept {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) < 0) return -errno;
  *soft = FromRlim(limit.rlim_cur);
  *hard = FromRlim(limit.rlim_max);
  return 0;
}

int64_t SetFdLimit(uint64_t soft) noexcept {
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) < 0) return -errno;
  rlim_t wanted = soft >= kMaxSafeInteger ? RLIM_INFINITY : static_cast<rlim_t>(soft);
  if (limit.rlim_max != RLIM_INFINITY && (wanted == RLIM_INFINITY || wanted > limit.rlim_max)) {
    wanted = limit.rlim_max;
  }
  limit.rlim_cur = wanted;
  if (setrlimit(RLIMIT_NOFILE, &limit) < 0) {
#if defined(__APPLE__) && defined(OPEN_MAX)
    // macOS rejects a soft limit above OPEN_MAX even when the hard limit is unlimited.
    if (errno == EINVAL && (wanted == RLIM_INFINITY || wanted > OPEN_MAX)) {
      limit.rlim_cur = OPEN_MAX;
      if (setrlimit(RLIMIT_NOFILE, &limit) < 0) return -errno;
    } else {
      return -errno;
    }
#else
    return -errno;
#endif
  }
  if (getrlimit(RLIMIT_NOFILE, &limit) < 0) return -errno;
  return static_cast<int64_t>(FromRlim(limit.rlim_cur));
}

}  // namespace mob::sockets
