// The SYN gate: a classic BPF socket filter on a listener that drops pure
// SYNs, so no new connection enters the accept queue while everything already
// queued or in SYN_RECV still completes. A classic filter the socket already
// had (an adopted socket may come with one) keeps running behind the gate and
// is put back when the gate comes off. Plain C++: no N-API here.
#ifndef GRACEFUL_LISTENER_SYN_GATE_H_
#define GRACEFUL_LISTENER_SYN_GATE_H_

#include <linux/filter.h>

#include <vector>

namespace graceful_listener {

// One listener's gate. Each call returns 0 or an errno, with the call that
// failed in `*syscall`.
class SynGate {
 public:
  bool on() const { return on_; }

  // Reads the socket's classic filter (SO_GET_FILTER) and attaches the gate in
  // front of it. A filter that cannot be read back — eBPF, attached with
  // SO_ATTACH_BPF, has no classic program: EACCES — and a locked filter
  // (SO_LOCK_FILTER: EPERM) fail with the socket left as it was.
  int Attach(int fd, const char** syscall);

  // Puts the socket's own filter back, or detaches the gate when there was
  // none. Not gated: nothing to do. A filter that is no longer the gate
  // (someone replaced it meanwhile) is left alone.
  int Detach(int fd, const char** syscall);

  // Whether a connection in the accept queue may have been created while the
  // gate was on: a connection's socket inherits the listener's filter for its
  // whole life.
  bool ChildrenMayCarryGate() const { return childrenMayCarryGate_; }

  // For an accepted connection: the listener's own filter instead of the
  // gate (or none). Returns 0 or an errno.
  int ResetChild(int fd) const;

  // The accept queue was found empty: when the gate is off, no connection
  // created under it can be waiting any more.
  void QueueDrained() {
    if (!on_) childrenMayCarryGate_ = false;
  }

 private:
  bool on_ = false;
  bool childrenMayCarryGate_ = false;
  // The socket's classic program before the gate (empty: none), and the one
  // the gate attached.
  std::vector<sock_filter> own_;
  std::vector<sock_filter> attached_;
};

}  // namespace graceful_listener

#endif  // GRACEFUL_LISTENER_SYN_GATE_H_
