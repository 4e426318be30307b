#include "syn_gate.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <iterator>
#include <utility>

namespace graceful_listener {
namespace {

// The pure-SYN drop program: the filter sees the TCP header, byte 13 holds the
// flags; SYN without ACK is dropped (the client retransmits, no RST), anything
// else goes on, so queued connections and handshakes in SYN_RECV complete.
// `ret #0` drops; the jump's false branch skips it to what follows.
const sock_filter kDropPureSyn[] = {
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0),
};
// With no filter of the socket's own behind it: pass the whole packet.
const sock_filter kPass = BPF_STMT(BPF_RET | BPF_K, 0xffffffff);
// In front of the socket's own program: classic BPF starts with A = 0 (the
// kernel clears A and X), and that program may rely on it. X is untouched.
const sock_filter kClearA = BPF_STMT(BPF_LD | BPF_W | BPF_IMM, 0);

// The drop program, then `own` (or kPass). Classic jumps are relative and only
// go forward, so `own`'s jumps stay within `own` unchanged.
std::vector<sock_filter> Compose(const std::vector<sock_filter>& own) {
  std::vector<sock_filter> program(std::begin(kDropPureSyn), std::end(kDropPureSyn));
  if (own.empty()) {
    program.push_back(kPass);
  } else {
    program.push_back(kClearA);
    program.insert(program.end(), own.begin(), own.end());
  }
  return program;
}

// The classic program attached to `fd` (empty: none), or an errno. For
// SO_GET_FILTER, optlen counts instructions, not bytes: 0 asks for the count.
int ReadFilter(int fd, std::vector<sock_filter>* out) {
  for (int attempt = 0; attempt < 3; attempt++) {
    socklen_t count = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, nullptr, &count) != 0) return errno;
    out->assign(count, sock_filter{});
    if (count == 0) return 0;
    socklen_t read = count;
    if (getsockopt(fd, SOL_SOCKET, SO_GET_FILTER, out->data(), &read) == 0) {
      out->resize(read);
      return 0;
    }
    // EINVAL: a longer program was attached between the two calls.
    if (errno != EINVAL) return errno;
  }
  return EAGAIN;
}

int AttachFilter(int fd, const std::vector<sock_filter>& program) {
  sock_fprog fprog{static_cast<unsigned short>(program.size()),
                   const_cast<sock_filter*>(program.data())};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof(fprog)) == 0 ? 0 : errno;
}

int DetachFilter(int fd) {
  // SO_DETACH_FILTER wants an int-sized optval; NULL gives EINVAL. ENOENT
  // means no filter was attached, which is already the requested state.
  int unused = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused)) == 0) return 0;
  return errno == ENOENT ? 0 : errno;
}

int Restore(int fd, const std::vector<sock_filter>& own) {
  return own.empty() ? DetachFilter(fd) : AttachFilter(fd, own);
}

bool Same(const std::vector<sock_filter>& a, const std::vector<sock_filter>& b) {
  return a.size() == b.size() && memcmp(a.data(), b.data(), a.size() * sizeof(sock_filter)) == 0;
}

}  // namespace

int SynGate::Attach(int fd, const char** syscall) {
  if (on_) return 0;
  std::vector<sock_filter> own;
  *syscall = "getsockopt";
  int err = ReadFilter(fd, &own);
  if (err != 0) return err;
  std::vector<sock_filter> program = Compose(own);
  *syscall = "setsockopt";
  err = AttachFilter(fd, program);
  if (err != 0) return err;
  own_ = std::move(own);
  attached_ = std::move(program);
  on_ = true;
  childrenMayCarryGate_ = true;
  return 0;
}

int SynGate::Detach(int fd, const char** syscall) {
  if (!on_) return 0;
  std::vector<sock_filter> current;
  *syscall = "getsockopt";
  int err = ReadFilter(fd, &current);
  // EACCES: an eBPF filter replaced the gate; not ours to remove.
  if (err != 0 && err != EACCES) return err;
  if (err == 0 && Same(current, attached_)) {
    *syscall = "setsockopt";
    err = Restore(fd, own_);
    if (err != 0) return err;
  }
  on_ = false;
  attached_.clear();
  return 0;
}

int SynGate::ResetChild(int fd) const { return Restore(fd, own_); }

}  // namespace graceful_listener
