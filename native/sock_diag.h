// A sock_diag (NETLINK_SOCK_DIAG) client, the same source `ss` uses, with no
// privilege needed: TCP requests in SYN_RECV (the handshakes a listener has
// answered with a SYN-ACK that have not completed; they are not in TCP_INFO),
// the LISTEN sockets of an address and port, and the accept queue of an
// AF_UNIX listener. Plain C++: no N-API here.
#ifndef GRACEFUL_LISTENER_SOCK_DIAG_H_
#define GRACEFUL_LISTENER_SOCK_DIAG_H_

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

namespace graceful_listener {

struct HandshakeRequest {
  int family;  // AF_INET or AF_INET6
  // Addresses as inet_diag_sockid holds them: network order, 4 or 16 bytes.
  uint8_t localAddress[16];
  uint8_t peerAddress[16];
  uint16_t localPort;  // host order
  uint16_t peerPort;   // host order
  // idiag_retrans: SYN-ACKs sent again so far, on the request's timer or in
  // answer to a retransmitted SYN.
  unsigned retrans;
  // idiag_expires: ms until the request's timer fires next (the next SYN-ACK
  // retransmit, or the request's expiry after the last one); 0 when due.
  unsigned expiresMs;
};

// Appends every SYN_RECV request of `local`'s family on its port — and
// address, unless it is a wildcard — to `out`. A dual-stack IPv6 listener's
// IPv4 clients are included, as AF_INET6 requests with v4-mapped addresses.
// The kernel walks every socket of the network namespace for this: call it
// sparingly.
//
// Returns 0 or an errno; `*syscall` then names the call that failed.
//
// A request carries no reference to its listener (no inode, no cookie of the
// listener): requests for two SO_REUSEPORT members of one address and port
// cannot be told apart, each member sees the requests of both.
int SynRecvRequests(const sockaddr_storage& local, std::vector<HandshakeRequest>* out,
                    const char** syscall);

// Counts the TCP sockets in LISTEN on `local`'s family, address and port,
// the socket `local` came from included: the members of its SO_REUSEPORT
// group (only members of one group can listen on one address and port).
// The kernel walks only its listening hash for this, not every connection.
//
// Returns 0 or an errno; `*syscall` then names the call that failed.
int ListenersOn(const sockaddr_storage& local, int* count, const char** syscall);

// The accept queue of the AF_UNIX listener whose socket inode (st_ino of
// fstat on its fd) is `inode`: UNIX_DIAG_RQLEN gives the connections queued
// and the backlog of a listening socket (SIOCINQ refuses listeners).
//
// Returns 0 or an errno; `*syscall` then names the call that failed.
int UnixQueue(uint64_t inode, unsigned* queued, unsigned* backlog, const char** syscall);

}  // namespace graceful_listener

#endif  // GRACEFUL_LISTENER_SOCK_DIAG_H_
