// The SYN gate: a classic BPF socket filter on a listener that drops pure
// SYNs, so no new connection enters the accept queue while everything already
// queued or in SYN_RECV still completes. Plain C++: no N-API here.
#ifndef GRACEFUL_LISTENER_SYN_GATE_H_
#define GRACEFUL_LISTENER_SYN_GATE_H_

namespace graceful_listener {

// Each returns 0 or an errno (of setsockopt).
int AttachSynGate(int fd);
int DetachSynGate(int fd);

}  // namespace graceful_listener

#endif  // GRACEFUL_LISTENER_SYN_GATE_H_
