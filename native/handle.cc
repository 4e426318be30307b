// One handle per listening socket (TCP, or AF_UNIX: accept, queue depth,
// shutdown, name and close apply to both): arm/disarm accept(2), queue depth,
// handshakes in progress, SYN gate, SO_REUSEPORT steering and group size,
// shutdown/relisten, close. Mechanism only:
// every decision (states, counts, back-off, timeouts) lives in TypeScript.

#include "handle.h"

#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "sock_diag.h"
#include "syn_gate.h"
#include "util.h"

// Linux 5.3; older C library headers may lack the name.
#ifndef SO_DETACH_REUSEPORT_BPF
#define SO_DETACH_REUSEPORT_BPF 68
#endif

namespace graceful_listener {
namespace {

class Handle;

// What each env keeps (its instance data): the class, and the token a
// construct call must carry: an object made here and never handed to JS, so
// JS cannot pass it. A plain object, not an External: Node allocates a native
// wrapper for each External that it frees only when GC collects it, never at
// exit, where valgrind reports it as lost.
struct EnvData {
  Napi::FunctionReference handleClass;
  Napi::ObjectReference constructToken;
};

EnvData* DataOf(Napi::Env env) { return env.GetInstanceData<EnvData>(); }

Napi::Error IllegalConstructor(Napi::Env env) {
  Napi::Error error = Napi::TypeError::New(env, "Illegal constructor: handles come from open() and adopt()");
  error.Set("code", Napi::String::New(env, "ERR_ILLEGAL_CONSTRUCTOR"));
  return error;
}

// The poll handle outlives its owner until libuv's close callback, which is
// the only place it is freed.
struct Poller {
  uv_poll_t handle;
  Handle* owner;
  napi_async_cleanup_hook_handle cleanup;
};

class Handle : public Napi::ObjectWrap<Handle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Handle",
                       {
                           InstanceMethod<&Handle::Arm>("arm"),
                           InstanceMethod<&Handle::Disarm>("disarm"),
                           InstanceMethod<&Handle::Sweep>("sweep"),
                           InstanceMethod<&Handle::SetRef>("ref"),
                           InstanceMethod<&Handle::QueueDepth>("queueDepth"),
                           InstanceMethod<&Handle::Handshakes>("handshakes"),
                           InstanceMethod<&Handle::HandshakeRequests>("handshakeRequests"),
                           InstanceMethod<&Handle::Gate>("gate"),
                           InstanceMethod<&Handle::Steer>("steer"),
                           InstanceMethod<&Handle::ReusePortMembers>("reusePortMembers"),
                           InstanceMethod<&Handle::Shutdown>("shutdown"),
                           InstanceMethod<&Handle::NoDelay>("noDelay"),
                           InstanceMethod<&Handle::Relisten>("listen"),
                           InstanceMethod<&Handle::Address>("address"),
                           InstanceMethod<&Handle::Close>("close"),
                           InstanceAccessor<&Handle::Fd>("fd"),
                       });
  }

  // new Handle(token, fd): takes ownership of an fd that open() or adopt()
  // (addon.cc) made. The class is reachable from JS (handle.constructor), so
  // the first argument must be the env's construct token, which JS never
  // sees; anything else throws before an fd is touched (fd_ stays -1, so the
  // destructor closes nothing).
  explicit Handle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Handle>(info) {
    if (info.Length() != 2 || !info[0].StrictEquals(DataOf(info.Env())->constructToken.Value()) ||
        !info[1].IsNumber()) {
      IllegalConstructor(info.Env()).ThrowAsJavaScriptException();
      return;
    }
    fd_ = info[1].As<Napi::Number>().Int32Value();
    // Remembered for listen() after shutdown().
    boundLength_ = sizeof(bound_);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&bound_), &boundLength_) != 0) boundLength_ = 0;
    napi_status status =
        napi_add_async_cleanup_hook(info.Env(), OnEnvCleanup, this, &cleanup_);
    if (status != napi_ok) Napi::Error::Fatal("Handle", "napi_add_async_cleanup_hook failed");
  }

  // Handle(...) without new.
  static Napi::Value OnCalledAsFunction(const Napi::CallbackInfo& info) {
    IllegalConstructor(info.Env()).ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }

  static Napi::Value New(Napi::Env env, int fd) {
    EnvData* data = DataOf(env);
    return data->handleClass.New({data->constructToken.Value(), Napi::Number::New(env, fd)});
  }

  // The finalizer is a safety net for a handle JS forgot to close: it only
  // releases the fd and the poll handle, and never calls into JS.
  ~Handle() override { Release(); }

 private:
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
    auto* self = static_cast<Handle*>(arg);
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
  //
  // The poll first, the fd after: uv_poll_stop removes the fd from the loop's
  // epoll set (EPOLL_CTL_DEL), which needs the fd number still open. epoll
  // drops a registration by itself only when the file description is
  // released, and an adopted socket's description lives on in its owner's fd:
  // closed first, the DEL fails with EBADF and the registration stays, with
  // epoll_wait reporting an fd number nobody watches while the socket is
  // readable.
  void ReleaseFromCleanup(napi_async_cleanup_hook_handle hook) {
    if (poller_ != nullptr) {
      uv_poll_stop(&poller_->handle);
      poller_->owner = nullptr;
      poller_->cleanup = hook;
      uv_close(reinterpret_cast<uv_handle_t*>(&poller_->handle), OnPollClosed);
      poller_ = nullptr;
    } else if (hook != nullptr) {
      napi_remove_async_cleanup_hook(hook);
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
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
        Napi::Error::Fatal("Handle::Arm", "napi_get_uv_event_loop failed");
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
        // A connection's socket keeps the filter the listener had when it was
        // created. One made under the gate gets the listener's own filter (or
        // none) instead. Should that fail, the gate stays, which only drops
        // SYNs without ACK: nothing an established connection receives.
        if (gate_.ChildrenMayCarryGate()) gate_.ResetChild(fd);
        fds->push_back(fd);
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        gate_.QueueDrained();
        return 0;
      }
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
    Handle* self = reinterpret_cast<Poller*>(handle)->owner;
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
    if (bound_.ss_family == AF_UNIX) return UnixQueueDepth(env);
    // On a listener, tcpi_unacked is the accept queue length and tcpi_sacked
    // its cap (the same pair ss -ltn shows as Recv-Q / Send-Q).
    tcp_info ti{};
    socklen_t len = sizeof(ti);
    if (getsockopt(fd_, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) {
      SystemError(env, errno, "getsockopt").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return QueueObject(env, ti.tcpi_unacked, ti.tcpi_sacked);
  }

  static Napi::Object QueueObject(Napi::Env env, unsigned queued, unsigned backlog) {
    Napi::Object result = Napi::Object::New(env);
    result.Set("queued", Napi::Number::New(env, queued));
    result.Set("backlog", Napi::Number::New(env, backlog));
    return result;
  }

  // An AF_UNIX listener has no TCP_INFO, and SIOCINQ refuses listeners: its
  // queue comes from sock_diag, looked up by the socket's inode.
  Napi::Value UnixQueueDepth(Napi::Env env) {
    struct stat st;
    if (fstat(fd_, &st) != 0) {
      SystemError(env, errno, "fstat").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    unsigned queued = 0, backlog = 0;
    const char* syscall = nullptr;
    int err = UnixQueue(st.st_ino, &queued, &backlog, &syscall);
    if (err != 0) {
      SystemError(env, err, syscall).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return QueueObject(env, queued, backlog);
  }

  // Counts SYN_RECV requests on this listener's port (and address, unless it
  // is a wildcard) through sock_diag. The kernel walks every socket of the
  // namespace for this: an explicit, expensive call.
  Napi::Value Handshakes(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<HandshakeRequest> requests;
    if (!SynRecv(env, &requests)) return env.Undefined();
    return Napi::Number::New(env, static_cast<double>(requests.size()));
  }

  // handshakeRequests(): the same requests, each as { key, retrans,
  // expiresMs }. key is "peer:port>local:port" (IPv6 in brackets): unique
  // while the request lives, the same on every call.
  Napi::Value HandshakeRequests(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    std::vector<HandshakeRequest> requests;
    if (!SynRecv(env, &requests)) return env.Undefined();
    Napi::Array result = Napi::Array::New(env, requests.size());
    for (size_t i = 0; i < requests.size(); i++) {
      const HandshakeRequest& request = requests[i];
      Napi::Object entry = Napi::Object::New(env);
      entry.Set("key", Endpoint(request.family, request.peerAddress, request.peerPort) + ">" +
                           Endpoint(request.family, request.localAddress, request.localPort));
      entry.Set("retrans", Napi::Number::New(env, request.retrans));
      entry.Set("expiresMs", Napi::Number::New(env, request.expiresMs));
      result.Set(i, entry);
    }
    return result;
  }

  static std::string Endpoint(int family, const uint8_t* address, uint16_t port) {
    char text[INET6_ADDRSTRLEN] = "";
    inet_ntop(family, address, text, sizeof(text));
    return family == AF_INET6 ? "[" + std::string(text) + "]:" + std::to_string(port)
                              : std::string(text) + ":" + std::to_string(port);
  }

  bool SynRecv(Napi::Env env, std::vector<HandshakeRequest>* requests) {
    if (!CheckOpen(env, "getsockname")) return false;
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      SystemError(env, errno, "getsockname").ThrowAsJavaScriptException();
      return false;
    }
    const char* syscall = nullptr;
    int err = SynRecvRequests(local, requests, &syscall);
    if (err != 0) {
      SystemError(env, err, syscall).ThrowAsJavaScriptException();
      return false;
    }
    return true;
  }

  // gate(on): the SYN gate (syn_gate.h) on or off.
  Napi::Value Gate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "setsockopt")) return env.Undefined();
    const char* syscall = nullptr;
    int err = info[0].ToBoolean() ? gate_.Attach(fd_, &syscall) : gate_.Detach(fd_, &syscall);
    if (err != 0) SystemError(env, err, syscall).ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // steer(index): a classic BPF program `ret #index` for the socket's whole
  // SO_REUSEPORT group (SO_ATTACH_REUSEPORT_CBPF): the kernel sends each new
  // SYN to the member at that index of the group (listen() order; an index
  // out of range falls back to the hash). A negative index detaches the
  // program (SO_DETACH_REUSEPORT_BPF, int-sized optval); none attached is
  // ENOENT, already the state asked for.
  Napi::Value Steer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "setsockopt")) return env.Undefined();
    int index = info[0].As<Napi::Number>().Int32Value();
    int result;
    if (index >= 0) {
      sock_filter program[] = {BPF_STMT(BPF_RET | BPF_K, static_cast<uint32_t>(index))};
      sock_fprog fprog{1, program};
      result = setsockopt(fd_, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fprog, sizeof(fprog));
    } else {
      int unused = 0;
      result = setsockopt(fd_, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, &unused, sizeof(unused));
      if (result != 0 && errno == ENOENT) result = 0;
    }
    if (result != 0) SystemError(env, errno, "setsockopt").ThrowAsJavaScriptException();
    return env.Undefined();
  }

  // reusePortMembers(): LISTEN sockets on this socket's address and port,
  // this one included, through sock_diag (sock_diag.h ListenersOn).
  Napi::Value ReusePortMembers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "getsockname")) return env.Undefined();
    sockaddr_storage local{};
    socklen_t len = sizeof(local);
    if (getsockname(fd_, reinterpret_cast<sockaddr*>(&local), &len) != 0) {
      SystemError(env, errno, "getsockname").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    int count = 0;
    const char* syscall = nullptr;
    int err = ListenersOn(local, &count, &syscall);
    if (err != 0) {
      SystemError(env, err, syscall).ThrowAsJavaScriptException();
      return env.Undefined();
    }
    return Napi::Number::New(env, count);
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

  // TCP_NODELAY on the listening socket: on Linux, accept(2) copies it to
  // every connection accepted from then on (the child socket is cloned from
  // the listener), which saves a setsockopt per connection.
  Napi::Value NoDelay(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!CheckOpen(env, "setsockopt")) return env.Undefined();
    int on = info[0].As<Napi::Boolean>().Value() ? 1 : 0;
    if (setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0) {
      SystemError(env, errno, "setsockopt").ThrowAsJavaScriptException();
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
    if (ss.ss_family == AF_UNIX) return UnixName(env, ss, len);
    return AddressObject(env, ss);
  }

  // The name an AF_UNIX socket was bound to, as Node spells it: a path, or
  // a leading NUL and the abstract name. A socket renamed since keeps the
  // name it was bound to.
  static Napi::Value UnixName(Napi::Env env, const sockaddr_storage& ss, socklen_t len) {
    const auto* un = reinterpret_cast<const sockaddr_un*>(&ss);
    size_t length = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
    if (length > 0 && un->sun_path[0] != '\0') length = strnlen(un->sun_path, length);
    return Napi::String::New(env, un->sun_path, length);
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
  SynGate gate_;
  napi_async_cleanup_hook_handle cleanup_ = nullptr;
  Napi::FunctionReference onAccept_;
  Napi::FunctionReference onError_;
};

}  // namespace

void DefineHandle(Napi::Env env) {
  auto* data = new EnvData{Napi::Persistent(Handle::Define(env)),
                           Napi::Persistent(Napi::Object::New(env))};
  env.SetInstanceData(data);
}

Napi::Value NewHandle(Napi::Env env, int fd) { return Handle::New(env, fd); }

}  // namespace graceful_listener
