#include "unix.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>

namespace graceful_listener {
namespace {

// The most bytes one recvmsg takes.
constexpr size_t kReceiveChunk = 64 * 1024;

int64_t NowMs() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

int64_t Deadline(int timeoutMs) { return NowMs() + std::max(timeoutMs, 0); }

// sockaddr_un for `path`. A leading NUL names the abstract namespace, as
// does a leading '@' with `abstractAt` (sd_notify(3)): sun_path starts with a
// NUL and the address length, not a terminator, ends the name.
int UnixAddress(const std::string& path, bool abstractAt, sockaddr_un* address, socklen_t* length) {
  memset(address, 0, sizeof(*address));
  address->sun_family = AF_UNIX;
  if (!path.empty() && (path[0] == '\0' || (abstractAt && path[0] == '@'))) {
    if (path.size() > sizeof(address->sun_path)) return ENAMETOOLONG;
    memcpy(address->sun_path + 1, path.data() + 1, path.size() - 1);
    *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
    return 0;
  }
  // A NUL inside would silently name another file.
  if (memchr(path.data(), '\0', path.size()) != nullptr) return EINVAL;
  if (path.size() >= sizeof(address->sun_path)) return ENAMETOOLONG;
  memcpy(address->sun_path, path.data(), path.size());
  *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return 0;
}

// SO_SNDTIMEO, for the AF_UNIX calls that wait inside the kernel (a connect
// to a full backlog, a datagram to a full queue). 0 is no limit, the default.
int SetSendTimeout(int fd, int64_t ms) {
  timeval limit{};
  limit.tv_sec = static_cast<time_t>(ms / 1000);
  limit.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) == 0 ? 0 : errno;
}

// Waits until `fd` reports one of `events` (or an error or hang-up, which
// the next call reports) or `deadline` passes: 0, ETIMEDOUT or poll's errno.
int WaitFor(int fd, short events, int64_t deadline) {
  for (;;) {
    int64_t left = std::max<int64_t>(deadline - NowMs(), 0);
    pollfd entry{fd, events, 0};
    int n = poll(&entry, 1, static_cast<int>(std::min<int64_t>(left, INT_MAX)));
    if (n > 0) return 0;
    if (n == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

void CloseAll(std::vector<int>* fds) {
  for (int fd : *fds) ::close(fd);
  fds->clear();
}

}  // namespace

int UnixConnect(const std::string& path, int timeoutMs, int* out, const char** syscall) {
  sockaddr_un address;
  socklen_t length;
  *syscall = "connect";
  int err = UnixAddress(path, false, &address, &length);
  if (err != 0) return err;
  // Blocking while it connects: a non-blocking AF_UNIX connect to a listener
  // whose backlog is full fails with EAGAIN, never EINPROGRESS, and leaves
  // the socket unconnected — poll() then reports it writable and hung up at
  // once, SO_ERROR 0. Only a blocking connect waits for room in the backlog,
  // for as long as SO_SNDTIMEO allows (then EAGAIN).
  *syscall = "socket";
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  int64_t deadline = Deadline(timeoutMs);
  bool nonBlocking = false;
  for (;;) {
    int64_t left = deadline - NowMs();
    // No time left: one attempt that does not wait.
    if (left <= 0 && !nonBlocking) {
      *syscall = "fcntl";
      if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        err = errno;
        break;
      }
      nonBlocking = true;
    } else if (left > 0 && (err = SetSendTimeout(fd, left)) != 0) {
      *syscall = "setsockopt";
      break;
    }
    *syscall = "connect";
    if (connect(fd, reinterpret_cast<sockaddr*>(&address), length) == 0) {
      err = 0;
      break;
    }
    err = errno;
    // A signal interrupted the wait before the connection was made.
    if (err == EINTR && !nonBlocking) continue;
    // The backlog stayed full.
    if (err == EAGAIN) err = ETIMEDOUT;
    break;
  }
  if (err == 0 && !nonBlocking) {
    if ((err = SetSendTimeout(fd, 0)) != 0) {
      *syscall = "setsockopt";
    } else if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
      err = errno;
      *syscall = "fcntl";
    }
  }
  if (err != 0) {
    ::close(fd);
    return err;
  }
  *out = fd;
  return 0;
}

int SendWithFds(int fd, const char* data, size_t length, const std::vector<int>& fds,
                const char** syscall) {
  std::vector<char> control(fds.empty() ? 0 : CMSG_SPACE(sizeof(int) * fds.size()));
  bool fdsSent = fds.empty();
  int64_t deadline = NowMs() + kSendTimeoutMs;
  size_t sent = 0;
  *syscall = "sendmsg";
  while (sent < length) {
    iovec chunk{const_cast<char*>(data + sent), length - sent};
    msghdr message{};
    message.msg_iov = &chunk;
    message.msg_iovlen = 1;
    if (!fdsSent) {
      message.msg_control = control.data();
      message.msg_controllen = control.size();
      cmsghdr* rights = CMSG_FIRSTHDR(&message);
      rights->cmsg_level = SOL_SOCKET;
      rights->cmsg_type = SCM_RIGHTS;
      rights->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      memcpy(CMSG_DATA(rights), fds.data(), sizeof(int) * fds.size());
    }
    // MSG_DONTWAIT: a blocking fd must not wait past the deadline either.
    ssize_t n = sendmsg(fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      // The fds went with the first bytes sent.
      sent += static_cast<size_t>(n);
      fdsSent = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return errno;
    int err = WaitFor(fd, POLLOUT, deadline);
    if (err != 0) {
      if (err != ETIMEDOUT) *syscall = "poll";
      return err;
    }
  }
  return 0;
}

int ReceiveWithFds(int fd, int timeoutMs, size_t maxBytes, Received* out, const char** syscall) {
  int64_t deadline = Deadline(timeoutMs);
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxReceivedFds)];
  int err = 0;
  while (out->data.size() < maxBytes && !out->eof) {
    err = WaitFor(fd, POLLIN, deadline);
    if (err != 0) {
      *syscall = err == ETIMEDOUT ? "recvmsg" : "poll";
      break;
    }
    size_t have = out->data.size();
    size_t room = std::min(maxBytes - have, kReceiveChunk);
    out->data.resize(have + room);
    iovec chunk{out->data.data() + have, room};
    msghdr message{};
    message.msg_iov = &chunk;
    message.msg_iovlen = 1;
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(fd, &message, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
      out->data.resize(have);
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      err = errno;
      *syscall = "recvmsg";
      break;
    }
    out->data.resize(have + static_cast<size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&message); c != nullptr; c = CMSG_NXTHDR(&message, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      const unsigned char* bytes = CMSG_DATA(c);
      for (size_t i = 0; i < count; i++) {
        int received;
        memcpy(&received, bytes + i * sizeof(int), sizeof(int));
        out->fds.push_back(received);
      }
    }
    // More fds than the buffer holds: the kernel installed what fit and
    // closed the rest, so the set is incomplete.
    if ((message.msg_flags & MSG_CTRUNC) != 0) {
      err = EMSGSIZE;
      *syscall = "recvmsg";
      break;
    }
    if (n == 0) {
      out->eof = true;
    } else if (memchr(out->data.data() + have, '\n', static_cast<size_t>(n)) != nullptr) {
      break;
    }
  }
  if (err != 0) CloseAll(&out->fds);
  return err;
}

int PeerCredentials(int fd, int* pid, unsigned* uid, unsigned* gid, const char** syscall) {
  ucred credentials{};
  socklen_t length = sizeof(credentials);
  *syscall = "getsockopt";
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return errno;
  *pid = credentials.pid;
  *uid = credentials.uid;
  *gid = credentials.gid;
  return 0;
}

int UnixListen(const std::string& path, int backlog, int mode, int* out, const char** syscall) {
  sockaddr_un address;
  socklen_t length;
  *syscall = "bind";
  int err = UnixAddress(path, false, &address, &length);
  if (err != 0) return err;
  *syscall = "socket";
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno;
  // The mode is set between bind and listen: until listen(2), a connect to
  // the new file is refused, so no client gets in under the umask's mode.
  bool abstract = !path.empty() && path[0] == '\0';
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    *syscall = "bind";
  } else if (mode >= 0 && !abstract &&
             fchmodat(AT_FDCWD, path.c_str(), static_cast<mode_t>(mode), AT_SYMLINK_NOFOLLOW) != 0) {
    // Never through a symlink swapped in after the bind: that would set the
    // mode of whatever it points to (the call then fails with EOPNOTSUPP).
    *syscall = "fchmodat";
  } else if (::listen(fd, backlog) != 0) {
    *syscall = "listen";
  } else {
    *out = fd;
    return 0;
  }
  err = errno;
  ::close(fd);
  // A file bound but never listened on would be left behind as a stale socket.
  if (!abstract && strcmp(*syscall, "bind") != 0) unlink(path.c_str());
  return err;
}

int Notify(const std::string& path, const std::string& message, const char** syscall) {
  sockaddr_un address;
  socklen_t length;
  *syscall = "sendto";
  int err = UnixAddress(path, true, &address, &length);
  if (err != 0) return err;
  *syscall = "socket";
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  // Blocking, bounded by SO_SNDTIMEO: a datagram to a receiver whose queue is
  // full waits in the kernel for room. poll() cannot wait for it: on an
  // unconnected socket it does not look at the receiver's queue.
  int64_t deadline = NowMs() + kSendTimeoutMs;
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) {
      err = ETIMEDOUT;
      *syscall = "sendto";
      break;
    }
    if ((err = SetSendTimeout(fd, left)) != 0) {
      *syscall = "setsockopt";
      break;
    }
    *syscall = "sendto";
    if (sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
               reinterpret_cast<sockaddr*>(&address), length) >= 0) {
      err = 0;
      break;
    }
    err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN) err = ETIMEDOUT;
    break;
  }
  ::close(fd);
  return err;
}

}  // namespace graceful_listener
