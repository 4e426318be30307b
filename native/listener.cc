// One handle per listening TCP socket: open or adopt, arm/disarm accept(2),
// queue depth, handshakes in progress, SYN gate, shutdown/relisten, close.
// Mechanism only: every decision (states, counts, back-off, timeouts) lives in
// TypeScript.

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

namespace {

// accept4 calls per readable event; the poll is level-triggered, so a full
// batch simply comes back on the next loop iteration instead of starving it.
constexpr int kAcceptBatch = 128;

Napi::Error SystemError(Napi::Env env, int err, const char* syscall,
                        const std::string& address = "", int port = -1) {
  const char* code = uv_err_name(-err);
  std::string message = std::string(syscall) + " " + code + ": " + uv_strerror(-err);
  if (!address.empty()) {
    message += " " + address;
    if (port >= 0) message += ":" + std::to_string(port);
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, -err));
  error.Set("syscall", Napi::String::New(env, syscall));
  if (!address.empty()) error.Set("address", Napi::String::New(env, address));
  if (port >= 0) error.Set("port", Napi::Number::New(env, port));
  return error;
}

bool ParseAddress(int family, const std::string& address, int port,
                  sockaddr_storage* out, socklen_t* len) {
  memset(out, 0, sizeof(*out));
  if (family == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(out);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *len = sizeof(*sin);
    return inet_pton(AF_INET, address.c_str(), &sin->sin_addr) == 1;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(out);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  *len = sizeof(*sin6);
  return inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr) == 1;
}

int PortOf(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)
                                 : ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
}

std::string AddressText(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, text, sizeof(text));
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, text, sizeof(text));
  }
  return text;
}

Napi::Object AddressObject(Napi::Env env, const sockaddr_storage& ss) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("family", ss.ss_family == AF_INET ? "IPv4" : "IPv6");
  result.Set("port", PortOf(ss));
  result.Set("address", AddressText(ss));
  return result;
}

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

class Listener;

// The poll handle outlives its owner until libuv's close callback, which is
// the only place it is freed.
struct Poller {
  uv_poll_t handle;
  Listener* owner;
  napi_async_cleanup_hook_handle cleanup;
};

class Listener : public Napi::ObjectWrap<Listener> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Listener",
                       {
                           InstanceMethod<&Listener::Arm>("arm"),
                           InstanceMethod<&Listener::Disarm>("disarm"),
                           InstanceMethod<&Listener::Sweep>("sweep"),
                           InstanceMethod<&Listener::SetRef>("ref"),
                           InstanceMethod<&Listener::QueueDepth>("queueDepth"),
                           InstanceMethod<&Listener::Handshakes>("handshakes"),
                           InstanceMethod<&Listener::HandshakeRequests>("handshakeRequests"),
                           InstanceMethod<&Listener::Gate>("gate"),
                           InstanceMethod<&Listener::Shutdown>("shutdown"),
                           InstanceMethod<&Listener::Relisten>("listen"),
                           InstanceMethod<&Listener::Address>("address"),
                           InstanceMethod<&Listener::Info>("info"),
                           InstanceMethod<&Listener::Close>("close"),
                           InstanceAccessor<&Listener::Fd>("fd"),
                       });
  }

  // new Listener(fd): takes ownership of an fd that the module functions
  // below created; it is never exposed to JS with a raw fd it did not make.
  explicit Listener(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Listener>(info) {
    fd_ = info[0].As<Napi::Number>().Int32Value();
    // Remembered for listen() after shutdown(); adopt() may wrap a non-socket
    // until its check refuses it, then there is nothing to remember.
    boundLength_ = sizeof(bound_);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&bound_), &boundLength_) != 0) boundLength_ = 0;
    napi_status status =
        napi_add_async_cleanup_hook(info.Env(), OnEnvCleanup, this, &cleanup_);
    if (status != napi_ok) Napi::Error::Fatal("Listener", "napi_add_async_cleanup_hook failed");
  }

  // The finalizer is a safety net for a handle JS forgot to close: it only
  // releases the fd and the poll handle, and never calls into JS.
  ~Listener() override { Release(); }

 private:
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
    auto* self = static_cast<Listener*>(arg);
    self->cleanup_ = nullptr;
    self->ReleaseFromCleanup(hook);
  }

  static void OnPollClosed(uv_handle_t* handle) {
    auto* poller = reinterpret_cast<Poller*>(handle);
    if (poller->cleanup != nullptr) napi_remove_async_cleanup_hook(poller->cleanup);
    delete poller;
  }

  // Closes the poll handle and the fd exactly once. `hook`, when set, is the
  // env cleanup hook in progress: it completes once libuv has closed the poll.
  void ReleaseFromCleanup(napi_async_cleanup_hook_handle hook) {
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
    if (poller_ != nullptr) {
      uv_poll_stop(&poller_->handle);
      poller_->owner = nullptr;
      poller_->cleanup = hook;
      uv_close(reinterpret_cast<uv_handle_t*>(&poller_->handle), OnPollClosed);
      poller_ = nullptr;
    } else if (hook != nullptr) {
      napi_remove_async_cleanup_hook(hook);
    }
  }

  void Release() {
    if (cleanup_ != nullptr) {
      napi_remove_async_cleanup_hook(cleanup_);
      cleanup_ = nullptr;
    }
    ReleaseFromCleanup(nullptr);
  }

  bool CheckOpen(Napi::Env env, const char* syscall) {
    if (fd_ >= 0) return true;
    SystemError(env, EBADF, syscall).ThrowAsJavaScriptException();
    return false;
  }

  Napi::Value Fd(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), fd_);
  }

  // arm(onAccept, onError): onAccept(fds[]) once per batch; onError(err) after
  // a failure that disarmed the poll (EMFILE and friends) — JS decides when to
  // arm again, so a persistent failure can never become a busy loop.
  Napi::Value Arm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "uv_poll_start")) return env.Undefined();
    onAccept_.Reset(info[0].As<Napi::Function>(), 1);
    onError_.Reset(info[1].As<Napi::Function>(), 1);
    batchLimit_ = kAcceptBatch;
    if (info[2].IsNumber()) {
      int limit = info[2].As<Napi::Number>().Int32Value();
      batchLimit_ = limit < 1 ? 1 : limit > kAcceptBatch ? kAcceptBatch : limit;
    }
    if (poller_ == nullptr) {
      uv_loop_t* loop = nullptr;
      if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
        Napi::Error::Fatal("Listener::Arm", "napi_get_uv_event_loop failed");
      }
      auto* poller = new Poller{};
      int err = uv_poll_init_socket(loop, &poller->handle, fd_);
      if (err != 0) {
        delete poller;
        SystemError(env, -err, "uv_poll_init").ThrowAsJavaScriptException();
        return env.Undefined();
      }
      poller->owner = this;
      poller_ = poller;
      if (!referenced_) uv_unref(reinterpret_cast<uv_handle_t*>(&poller_->handle));
    }
    int err = uv_poll_start(&poller_->handle, UV_READABLE, OnReadable);
    if (err != 0) {
      SystemError(env, -err, "uv_poll_start").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    // While armed, JS may hold no reference at all (a server that only
    // listens): keep the wrapper alive so GC cannot close a live listener.
    if (!armed_) {
      Ref();
      armed_ = true;
    }
    return env.Undefined();
  }

  void StopPolling() {
    if (poller_ != nullptr) uv_poll_stop(&poller_->handle);
    if (armed_) {
      armed_ = false;
      Unref();
    }
  }

  // Only an armed handle holds its callbacks. They close over the JS object
  // that owns this handle: held strongly while disarmed, they made that cycle
  // a GC root, so a listener armed once, then disarmed and forgotten, was never
  // finalized and its fd never closed.
  void DropCallbacks() {
    onAccept_.Reset();
    onError_.Reset();
  }

  Napi::Value Disarm(const Napi::CallbackInfo& info) {
    StopPolling();
    DropCallbacks();
    return info.Env().Undefined();
  }

  // ref(bool): whether an armed listener keeps the event loop alive.
  Napi::Value SetRef(const Napi::CallbackInfo& info) {
    referenced_ = info[0].ToBoolean();
    if (poller_ != nullptr) {
      auto* handle = reinterpret_cast<uv_handle_t*>(&poller_->handle);
      if (referenced_) uv_ref(handle); else uv_unref(handle);
    }
    return info.Env().Undefined();
  }

  // sweep(shutdown): accept everything queued, synchronously, until EAGAIN.
  // With shutdown set, shutdown(SHUT_RD) follows in the same step, with no JS
  // in between: a connection that reached the queue after the last accept
  // would be reset by the shutdown. Polling stops too, since a shut-down
  // listener stays readable.
  Napi::Value Sweep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "accept4")) return env.Undefined();
    bool shutdown = info[0].ToBoolean();
    std::vector<int> fds;
    int failure = AcceptInto(&fds, SIZE_MAX);
    const char* failedCall = "accept4";
    if (failure == 0 && shutdown) {
      StopPolling();
      DropCallbacks();
      if (::shutdown(fd_, SHUT_RD) != 0 && errno != ENOTCONN) {
        failure = errno;
        failedCall = "shutdown";
      }
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("fds", FdArray(env, fds));
    // The accepted fds are returned even on failure: they belong to JS now.
    result.Set("error", failure != 0 ? SystemError(env, failure, failedCall).Value() : env.Null());
    return result;
  }

  // accept4 until EAGAIN or `limit` fds; returns 0, or the errno that ended
  // it (the fds accepted before it are in `fds` either way).
  int AcceptInto(std::vector<int>* fds, size_t limit) {
    while (fds->size() < limit) {
      int fd = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        fds->push_back(fd);
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      // The peer gave up between handshake and accept; nothing to hand over.
      if (errno == ECONNABORTED || errno == EINTR || errno == EPROTO) continue;
      return errno;
    }
    return 0;
  }

  static Napi::Array FdArray(Napi::Env env, const std::vector<int>& fds) {
    Napi::Array array = Napi::Array::New(env, fds.size());
    for (size_t i = 0; i < fds.size(); i++) array.Set(i, Napi::Number::New(env, fds[i]));
    return array;
  }

  static void OnReadable(uv_poll_t* handle, int status, int /*events*/) {
    Listener* self = reinterpret_cast<Poller*>(handle)->owner;
    if (self != nullptr) self->AcceptBatch(status);
  }

  void AcceptBatch(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    // Taken first: StopPolling below drops the strong reference, and JS may
    // close and forget the wrapper inside the callbacks.
    Napi::Object self = Value();
    int failure = status < 0 ? -status : 0;
    const char* failedCall = "uv_poll";
    std::vector<int> fds;
    if (failure == 0) {
      failure = AcceptInto(&fds, static_cast<size_t>(batchLimit_));
      failedCall = "accept4";
    }
    if (failure != 0) StopPolling();
    if (!fds.empty()) Deliver(onAccept_, self, FdArray(env, fds));
    if (failure != 0) {
      Deliver(onError_, self, SystemError(env, failure, failedCall).Value());
      // Unless a callback armed again, this handle is disarmed now.
      if (!armed_) DropCallbacks();
    }
  }

  void Deliver(const Napi::FunctionReference& callback, Napi::Object receiver,
               Napi::Value argument) {
    if (callback.IsEmpty()) return;
    napi_env env = receiver.Env();
    napi_value arg = argument;
    napi_value result;
    // A receiver object is required: napi_make_callback with undefined does nothing.
    napi_status status =
        napi_make_callback(env, nullptr, receiver, callback.Value(), 1, &arg, &result);
    // No JS frame sits below a poll callback to catch what the callback threw.
    // Left pending in the env, the error vanished and every later call into
    // JS from this env failed (the next batch's fds were lost, ticks stalled):
    // report it as uncaught instead, as Node does for its own event callbacks.
    if (status == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }

  Napi::Value QueueDepth(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "getsockopt")) return env.Undefined();
    // On a listener, tcpi_unacked is the accept queue length and tcpi_sacked
    // its cap (the same pair ss -ltn shows as Recv-Q / Send-Q).
    tcp_info ti{};
    socklen_t len = sizeof(ti);
    if (getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
      SystemError(env, errno, "getsockopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("queued", Napi::Number::New(env, ti.tcpi_unacked));
    result.Set("backlog", Napi::Number::New(env, ti.tcpi_sacked));
    return result;
  }

  // Counts SYN_RECV requests on this listener's port (and address, unless it
  // is a wildcard) through sock_diag. The kernel walks every socket of the
  // namespace for this: an explicit, expensive call.
  Napi::Value Handshakes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "getsockname")) return env.Undefined();
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      SystemError(env, errno, "getsockname").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int count = 0;
    int err = CountSynRecv(local, AF_INET, &count);
    // A dual-stack IPv6 listener keeps IPv4 clients' requests as AF_INET.
    if (err == 0 && local.ss_family == AF_INET6) err = CountSynRecv(local, AF_INET6, &count);
    if (err != 0) {
      SystemError(env, err, err == EPROTONOSUPPORT ? "socket" : "recv").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, count);
  }

  static bool MatchesLocal(const sockaddr_storage& local, const inet_diag_msg& msg) {
    if (local.ss_family == AF_INET) {
      auto* sin = reinterpret_cast<const sockaddr_in*>(&local);
      return msg.idiag_family == AF_INET &&
             (sin->sin_addr.s_addr == INADDR_ANY || msg.id.idiag_src[0] == sin->sin_addr.s_addr);
    }
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&local);
    if (IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr)) return true;
    if (msg.idiag_family == AF_INET6) return memcmp(msg.id.idiag_src, &sin6->sin6_addr, 16) == 0;
    // IPv4 request on a dual-stack listener bound to a v4-mapped address.
    return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) &&
           memcmp(msg.id.idiag_src, &sin6->sin6_addr.s6_addr[12], 4) == 0;
  }

  struct Request {
    std::string key;
    unsigned retrans;
    unsigned expiresMs;
  };

  Napi::Value HandshakeRequests(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "getsockname")) return env.Undefined();
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      SystemError(env, errno, "getsockname").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int count = 0;
    std::vector<Request> requests;
    int err = CountSynRecv(local, AF_INET, &count, &requests);
    if (err == 0 && local.ss_family == AF_INET6) err = CountSynRecv(local, AF_INET6, &count, &requests);
    if (err != 0) {
      SystemError(env, err, err == EPROTONOSUPPORT ? "socket" : "recv").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::Array result = Napi::Array::New(env, requests.size());
    for (size_t i = 0; i < requests.size(); i++) {
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("key", requests[i].key);
      entry.Set("retrans", requests[i].retrans);
      entry.Set("expiresMs", requests[i].expiresMs);
      result.Set(i, entry);
    }
    return result;
  }

  static int CountSynRecv(const sockaddr_storage& local, int family, int* count,
                          std::vector<Request>* requests = nullptr) {
    if (local.ss_family == AF_INET && family != AF_INET) return 0;
    uint16_t port = local.ss_family == AF_INET
                        ? reinterpret_cast<const sockaddr_in*>(&local)->sin_port
                        : reinterpret_cast<const sockaddr_in6*>(&local)->sin6_port;
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0) return errno;
    struct {
      nlmsghdr header;
      inet_diag_req_v2 request;
    } message{};
    message.header.nlmsg_len = sizeof(message);
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.request.sdiag_family = family;
    message.request.sdiag_protocol = IPPROTO_TCP;
    message.request.idiag_states = 1u << TCP_SYN_RECV;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(nl, &message, sizeof(message), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof(kernel)) < 0) {
      int err = errno;
      ::close(nl);
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
          err = e->error < 0 ? -e->error : EIO;
          done = true;
          break;
        }
        auto* msg = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
        if (msg->idiag_state == TCP_SYN_RECV && msg->id.idiag_sport == port &&
            MatchesLocal(local, *msg)) {
          (*count)++;
          if (requests != nullptr) {
            char src[INET6_ADDRSTRLEN] = "", dst[INET6_ADDRSTRLEN] = "";
            inet_ntop(msg->idiag_family, msg->id.idiag_dst, src, sizeof(src));
            inet_ntop(msg->idiag_family, msg->id.idiag_src, dst, sizeof(dst));
            requests->push_back({std::string(src) + ":" + std::to_string(ntohs(msg->id.idiag_dport)) + ">" +
                                     dst + ":" + std::to_string(ntohs(msg->id.idiag_sport)),
                                 msg->idiag_retrans, msg->idiag_expires});
          }
        }
      }
    }
    ::close(nl);
    return err;
  }

  Napi::Value Gate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "setsockopt")) return env.Undefined();
    int rc;
    if (info[0].ToBoolean()) {
      sock_fprog program{static_cast<unsigned short>(sizeof(kSynGate) / sizeof(kSynGate[0])),
                         kSynGate};
      rc = setsockopt(fd_, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program));
    } else {
      // SO_DETACH_FILTER wants an int-sized optval; NULL gives EINVAL. ENOENT
      // means no filter was attached, which is already the requested state.
      int unused = 0;
      rc = setsockopt(fd_, SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused));
      if (rc != 0 && errno == ENOENT) rc = 0;
    }
    if (rc != 0) SystemError(env, errno, "setsockopt").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // shutdown(SHUT_RD) moves the listener to CLOSE: every connection still
  // queued is reset exactly as by close(), so callers only do this once the
  // queue is swept empty. The fd stays open and listen() re-arms it.
  Napi::Value Shutdown(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "shutdown")) return env.Undefined();
    if (::shutdown(fd_, SHUT_RD) != 0 && errno != ENOTCONN) {
      SystemError(env, errno, "shutdown").ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  Napi::Value Relisten(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "listen")) return env.Undefined();
    // shutdown() moved the socket to CLOSE, and there the kernel unbinds a
    // port it picked itself (only an explicitly bound port is locked;
    // getsockname still shows the old one): listen() would then pick a new
    // port. Bind the old address again first; EINVAL means still bound.
    if (boundLength_ > 0 &&
        bind(fd_, reinterpret_cast<sockaddr*>(&bound_), boundLength_) != 0 && errno != EINVAL) {
      SystemError(env, errno, "bind", AddressText(bound_), PortOf(bound_)).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    if (::listen(fd_, info[0].As<Napi::Number>().Int32Value()) != 0) {
      SystemError(env, errno, "listen").ThrowAsJavaScriptException();
    }
    return env.Undefined();
  }

  Napi::Value Address(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "getsockname")) return env.Undefined();
    sockaddr_storage ss{};
    socklen_t len = sizeof(ss);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
      SystemError(env, errno, "getsockname").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return AddressObject(env, ss);
  }

  // What kind of socket the fd is: adopt() uses it to refuse anything that is
  // not a listening TCP stream socket.
  Napi::Value Info(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "getsockopt")) return env.Undefined();
    int type = 0, domain = 0, protocol = 0, listening = 0;
    socklen_t len = sizeof(int);
    int* values[] = {&type, &domain, &protocol, &listening};
    int names[] = {SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN};
    for (int i = 0; i < 4; i++) {
      len = sizeof(int);
      if (getsockopt(fd_, SOL_SOCKET, names[i], values[i], &len) != 0) {
        SystemError(env, errno, "getsockopt").ThrowAsJavaScriptException();
        return env.Undefined();
      }
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("stream", type == SOCK_STREAM);
    result.Set("inet", domain == AF_INET || domain == AF_INET6);
    result.Set("tcp", protocol == IPPROTO_TCP);
    result.Set("listening", listening != 0);
    return result;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    StopPolling();
    DropCallbacks();
    Release();
    return info.Env().Undefined();
  }

  int fd_ = -1;
  sockaddr_storage bound_{};
  socklen_t boundLength_ = 0;
  int batchLimit_ = kAcceptBatch;
  bool armed_ = false;
  bool referenced_ = true;
  Poller* poller_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_ = nullptr;
  Napi::FunctionReference onAccept_;
  Napi::FunctionReference onError_;
};

Napi::FunctionReference* ListenerClass(Napi::Env env) {
  return env.GetInstanceData<Napi::FunctionReference>();
}

Napi::Value Wrap(Napi::Env env, int fd) {
  return ListenerClass(env)->New({Napi::Number::New(env, fd)});
}

// open(family 4|6, address, port, backlog, reusePort, ipv6Only)
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = info[0].As<Napi::Number>().Int32Value();
  std::string address = info[1].As<Napi::String>().Utf8Value();
  int port = info[2].As<Napi::Number>().Int32Value();
  int backlog = info[3].As<Napi::Number>().Int32Value();
  bool reusePort = info[4].ToBoolean();
  bool ipv6Only = info[5].ToBoolean();

  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddress(family, address, port, &ss, &len)) {
    SystemError(env, EINVAL, "inet_pton", address, port).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_TCP);
  if (fd < 0) {
    SystemError(env, errno, "socket", address, port).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int on = 1;
  int v6only = ipv6Only ? 1 : 0;
  const char* failed = nullptr;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0) {
    failed = "setsockopt";
  } else if (reusePort && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0) {
    failed = "setsockopt";
  } else if (family == 6 &&
             setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only)) != 0) {
    failed = "setsockopt";
  } else if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    failed = "bind";
  } else if (::listen(fd, backlog) != 0) {
    failed = "listen";
  }
  if (failed != nullptr) {
    int err = errno;
    ::close(fd);
    SystemError(env, err, failed, address, port).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Wrap(env, fd);
}

// adopt(fd): a CLOEXEC duplicate of someone else's fd; the caller keeps (and
// may close) the original, the queue lives in the socket both refer to.
Napi::Value Adopt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int original = info[0].As<Napi::Number>().Int32Value();
  int fd = fcntl(original, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    SystemError(env, errno, "fcntl").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    int err = errno;
    ::close(fd);
    SystemError(env, err, "fcntl").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Wrap(env, fd);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  Napi::Function listener = Listener::Define(env);
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(listener)));
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  exports.Set("adopt", Napi::Function::New<Adopt>(env, "adopt"));
  exports.Set("acceptBatch", Napi::Number::New(env, kAcceptBatch));
  return exports;
}

}  // namespace

NODE_API_MODULE(graceful_listener, Init)
