// AF_UNIX calls: a Unix-domain listener (bind, chmod, listen), the
// handover control socket (connect, listening fds passed as SCM_RIGHTS, the
// peer's credentials) and sd_notify(3). Plain C++: no N-API here.
//
// Each call returns 0 or an errno, with the call it names in `*syscall`;
// a wait that ran out is ETIMEDOUT. No wait is longer than the timeout given.
#ifndef GRACEFUL_LISTENER_UNIX_H_
#define GRACEFUL_LISTENER_UNIX_H_

#include <sys/socket.h>

#include <cstddef>
#include <string>
#include <vector>

namespace graceful_listener {

// A wait that has no timeout of its own (a send the peer is slow to read).
constexpr int kSendTimeoutMs = 5000;

// The most fds one receive takes in one message; more: EMSGSIZE.
constexpr int kMaxReceivedFds = 64;

// Connects a CLOEXEC AF_UNIX stream socket to `path` within `timeoutMs` and
// returns it in `*fd`, non-blocking. A path longer than sun_path: ENAMETOOLONG.
int UnixConnect(const std::string& path, int timeoutMs, int* fd, const char** syscall);

// Sends all of `data` on a connected stream socket (blocking or not), with
// `fds` as one SCM_RIGHTS message on the first bytes. `fds` need at least one
// byte of data to travel with: the caller makes sure there is one.
int SendWithFds(int fd, const char* data, size_t length, const std::vector<int>& fds,
                const char** syscall);

struct Received {
  std::vector<char> data;
  std::vector<int> fds;  // CLOEXEC; the caller's to close
  bool eof = false;
};

// Receives until the data holds a newline, the peer closes (eof) or
// `maxBytes` arrived, within `timeoutMs` in all. Every fd of every
// SCM_RIGHTS message is taken, CLOEXEC. On any error, ETIMEDOUT included, the
// fds received so far are closed and `*out` holds none.
int ReceiveWithFds(int fd, int timeoutMs, size_t maxBytes, Received* out, const char** syscall);

// SO_PEERCRED of a connected AF_UNIX socket.
int PeerCredentials(int fd, int* pid, unsigned* uid, unsigned* gid, const char** syscall);

// A CLOEXEC, non-blocking AF_UNIX stream socket bound to `path` (a leading
// NUL: the abstract namespace), its file chmod'ed to `mode` unless `mode` is
// negative or the name abstract, listening with `backlog`; in `*fd`. On
// failure after bind, the file made is unlinked again. A name longer than
// sun_path: ENAMETOOLONG; a NUL inside a path: EINVAL.
int UnixListen(const std::string& path, int backlog, int mode, int* fd, const char** syscall);

// One datagram, `message`, to the AF_UNIX datagram socket at `path`; a
// leading '@' (or a NUL) names the abstract namespace. sd_notify(3).
int Notify(const std::string& path, const std::string& message, const char** syscall);

}  // namespace graceful_listener

#endif  // GRACEFUL_LISTENER_UNIX_H_
