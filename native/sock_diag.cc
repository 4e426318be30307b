#include "sock_diag.h"

#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

namespace graceful_listener {
namespace {

bool MatchesLocal(const sockaddr_storage& local, const inet_diag_msg& msg) {
  if (msg.idiag_family != local.ss_family) return false;
  if (local.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&local);
    return sin->sin_addr.s_addr == INADDR_ANY || msg.id.idiag_src[0] == sin->sin_addr.s_addr;
  }
  auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&local);
  return IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr) ||
         memcmp(msg.id.idiag_src, &sin6->sin6_addr, 16) == 0;
}

HandshakeRequest ToRequest(const inet_diag_msg& msg) {
  HandshakeRequest request{};
  request.family = msg.idiag_family;
  size_t length = msg.idiag_family == AF_INET ? 4 : 16;
  memcpy(request.localAddress, msg.id.idiag_src, length);
  memcpy(request.peerAddress, msg.id.idiag_dst, length);
  request.localPort = ntohs(msg.id.idiag_sport);
  request.peerPort = ntohs(msg.id.idiag_dport);
  request.retrans = msg.idiag_retrans;
  request.expiresMs = msg.idiag_expires;
  return request;
}

uint16_t NetworkPort(const sockaddr_storage& local) {
  return local.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in*>(&local)->sin_port
                                    : reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port;
}

// Sends one sock_diag request and passes every reply message to `visit`
// until the kernel is done: NLMSG_DONE ends a dump, an acknowledgement
// (NLMSG_ERROR with error 0, asked for by NLM_F_ACK) ends a single query.
template <typename Request, typename Visit>
int Exchange(Request* message, Visit visit, const char** syscall) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) {
    *syscall = "socket";
    return errno;
  }
  message->header.nlmsg_len = sizeof(*message);
  message->header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl, message, sizeof(*message), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    int err = errno;
    ::close(nl);
    *syscall = "sendto";
    return err;
  }
  std::vector<char> buffer(32768);
  int err = 0;
  for (bool done = false; !done;) {
    ssize_t n = recv(nl, buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (n == 0) break;
    int remaining = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, remaining);
         h = NLMSG_NEXT(h, remaining)) {
      if (h->nlmsg_type == NLMSG_DONE) {
        done = true;
        break;
      }
      if (h->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
        err = e->error < 0 ? -e->error : 0;
        done = true;
        break;
      }
      visit(h);
    }
  }
  ::close(nl);
  if (err != 0) *syscall = "recv";
  return err;
}

// One SOCK_DIAG_BY_FAMILY dump of `family` TCP sockets in `states` (a mask
// of 1 << TCP_*): `visit` sees each inet_diag_msg.
template <typename Visit>
int Dump(int family, uint32_t states, Visit visit, const char** syscall) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = family;
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = states;
  return Exchange(
      &message, [&](nlmsghdr* h) { visit(*static_cast<inet_diag_msg*>(NLMSG_DATA(h))); }, syscall);
}

}  // namespace

int SynRecvRequests(const sockaddr_storage& local, std::vector<HandshakeRequest>* out,
                    const char** syscall) {
  // A request has its listener's family (inet_reqsk_alloc: ireq_family =
  // sk_listener->sk_family): a dual-stack IPv6 listener's IPv4 clients are
  // AF_INET6 requests with v4-mapped addresses, so one dump is enough.
  uint16_t port = NetworkPort(local);
  return Dump(
      local.ss_family, 1u << TCP_SYN_RECV,
      [&](const inet_diag_msg& msg) {
        if (msg.idiag_state == TCP_SYN_RECV && msg.id.idiag_sport == port &&
            MatchesLocal(local, msg)) {
          out->push_back(ToRequest(msg));
        }
      },
      syscall);
}

int ListenersOn(const sockaddr_storage& local, int* count, const char** syscall) {
  // Members of one group share the family (a v4 socket and a v6 one never
  // join one group), so one dump is enough here too. The address is compared
  // as is: a wildcard matches only a wildcard.
  uint16_t port = NetworkPort(local);
  size_t length = local.ss_family == AF_INET ? 4 : 16;
  const void* address =
      local.ss_family == AF_INET
          ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(&local)->sin_addr)
          : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(&local)->sin6_addr);
  *count = 0;
  return Dump(
      local.ss_family, 1u << TCP_LISTEN,
      [&](const inet_diag_msg& msg) {
        if (msg.idiag_state == TCP_LISTEN && msg.idiag_family == local.ss_family &&
            msg.id.idiag_sport == port && memcmp(msg.id.idiag_src, address, length) == 0) {
          ++*count;
        }
      },
      syscall);
}

}  // namespace graceful_listener

namespace graceful_listener {

int UnixQueue(uint64_t inode, unsigned* queued, unsigned* backlog, const char** syscall) {
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } message{};
  // One socket, looked up by inode (no cookie to check): the kernel walks
  // the namespace's AF_UNIX sockets, not its TCP connections.
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  message.request.sdiag_family = AF_UNIX;
  message.request.udiag_ino = static_cast<uint32_t>(inode);
  message.request.udiag_show = UDIAG_SHOW_RQLEN;
  message.request.udiag_cookie[0] = INET_DIAG_NOCOOKIE;
  message.request.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
  bool found = false;
  int err = Exchange(
      &message,
      [&](nlmsghdr* h) {
        auto* msg = static_cast<unix_diag_msg*>(NLMSG_DATA(h));
        if (msg->udiag_ino != static_cast<uint32_t>(inode)) return;
        int length = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(*msg)));
        for (auto* a = reinterpret_cast<rtattr*>(msg + 1); RTA_OK(a, length); a = RTA_NEXT(a, length)) {
          if (a->rta_type != UNIX_DIAG_RQLEN) continue;
          // On a listener: the connections queued for accept(2), and the
          // backlog listen(2) set (capped at somaxconn).
          auto* rqlen = static_cast<unix_diag_rqlen*>(RTA_DATA(a));
          *queued = rqlen->udiag_rqueue;
          *backlog = rqlen->udiag_wqueue;
          found = true;
        }
      },
      syscall);
  if (err == 0 && !found) {
    *syscall = "recv";
    err = ENOENT;
  }
  return err;
}

}  // namespace graceful_listener
