#include "syn_gate.h"

#include <errno.h>
#include <linux/filter.h>
#include <sys/socket.h>

namespace graceful_listener {
namespace {

// The pure-SYN drop program: the filter sees the TCP header, byte 13 holds the
// flags; SYN without ACK is dropped (the client retransmits, no RST), anything
// else passes, so queued connections and handshakes in SYN_RECV still complete.
sock_filter kSynGate[] = {
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 13),
    BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0x12),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x02, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, 0),
    BPF_STMT(BPF_RET | BPF_K, 0xffffffff),
};

}  // namespace

int AttachSynGate(int fd) {
  sock_fprog program{static_cast<unsigned short>(sizeof(kSynGate) / sizeof(kSynGate[0])),
                     kSynGate};
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program)) == 0 ? 0 : errno;
}

int DetachSynGate(int fd) {
  // SO_DETACH_FILTER wants an int-sized optval; NULL gives EINVAL. ENOENT
  // means no filter was attached, which is already the requested state.
  int unused = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused)) == 0) return 0;
  return errno == ENOENT ? 0 : errno;
}

}  // namespace graceful_listener
