// Socket calls as plain functions: each returns its result or -errno, never throws, and
// knows nothing of N-API. Every descriptor they create is non-blocking and close-on-exec,
// and no call here can raise SIGPIPE.
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <climits>
#include <cstddef>
#include <cstdint>

#include "js_number.h"

namespace mob::sockets {

// Buffers one Writev() sends at most: IOV_MAX (1024 on Linux, macOS and the BSDs),
// capped at 1024 so that callers can keep the iovec array on the stack.
#if defined(IOV_MAX) && IOV_MAX < 1024
inline constexpr size_t kMaxIovecs = IOV_MAX;
#else
inline constexpr size_t kMaxIovecs = 1024;
#endif

// Room for any IP literal this module prints or parses, scope id included.
inline constexpr size_t kAddressTextSize = 96;

struct Address {
  char text[kAddressTextSize];  // '127.0.0.1', '::1', 'fe80::1%eth0'
  int port;
  bool ipv6;
};

// Listening TCP socket on an IPv4/IPv6 literal (':' selects IPv6). backlog <= 0 asks for
// the system maximum. Returns the fd, or -errno with *syscall naming the failed call
// ('inet_pton' when host is not an IP literal).
int Listen(const char* host, int port, int backlog, bool reuse_port, const char** syscall) noexcept;

// Non-blocking connect to an IP literal. Returns the fd (the connection may still be in
// progress), or -errno with *syscall set; the socket is closed on failure.
int Connect(const char* host, int port, const char** syscall) noexcept;

int Accept(int listen_fd) noexcept;
// A connected AF_UNIX stream pair in fds[0], fds[1]. 0 or -errno.
int Socketpair(int fds[2]) noexcept;
// Whether fd is an open descriptor (F_GETFD succeeds).
bool IsOpen(int fd) noexcept;

// What a descriptor is, for taking over one made elsewhere (systemd's LISTEN_FDS).
struct SocketKind {
  int family;      // AF_INET, AF_INET6, AF_UNIX, ...
  int type;        // SOCK_STREAM, SOCK_DGRAM, ...
  bool listening;  // SO_ACCEPTCONN
};
// 0 or -errno (-ENOTSOCK for a file or pipe).
int DescribeSocket(int fd, SocketKind* out) noexcept;
ssize_t Read(int fd, void* data, size_t length) noexcept;
ssize_t Write(int fd, const void* data, size_t length) noexcept;
// count must be at most kMaxIovecs.
ssize_t Writev(int fd, const struct iovec* iov, size_t count) noexcept;
// results[i] = bytes written to fds[i] or -errno.
void WriteEach(const int32_t* fds, size_t count, const void* data, size_t length,
               int32_t* results) noexcept;
int Shutdown(int fd, int how) noexcept;
int Close(int fd) noexcept;
int Dup(int fd) noexcept;
// O_NONBLOCK and FD_CLOEXEC on a descriptor made elsewhere (an inherited listener). 0 or -errno.
int SetNonBlocking(int fd) noexcept;
int SetNoDelay(int fd, bool on) noexcept;
int SetLinger(int fd, bool on, int seconds) noexcept;
int SetIntOption(int fd, int level, int option, int value) noexcept;
// Writes the value to *value; returns 0 or -errno.
int GetIntOption(int fd, int level, int option, int* value) noexcept;
// Pending SO_ERROR as a positive errno (0: none), or -errno if it cannot be read.
int SocketError(int fd) noexcept;
int LocalAddress(int fd, Address* out) noexcept;
int PeerAddress(int fd, Address* out) noexcept;
int BytesReadable(int fd) noexcept;
int BytesUnsent(int fd) noexcept;

// RLIMIT_NOFILE; RLIM_INFINITY (and anything above it) reads as kMaxSafeInteger.
int GetFdLimit(uint64_t* soft, uint64_t* hard) noexcept;
// Sets the soft limit, capped at the hard one. Returns the new soft limit or -errno.
int64_t SetFdLimit(uint64_t soft) noexcept;

}  // namespace mob::sockets
