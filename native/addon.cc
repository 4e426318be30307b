// The module: the ways to get a handle (open a new listening TCP or AF_UNIX
// socket, or adopt someone else's), the check adopt() makes, the constants
// JS needs, and thin wrappers over the AF_UNIX calls of unix.h (handover,
// sd_notify).

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "handle.h"
#include "unix.h"
#include "util.h"

namespace graceful_listener {
namespace {

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
  return NewHandle(env, fd);
}

// openUnix(path, backlog, mode): a listening AF_UNIX stream socket; a
// leading NUL in `path` names the abstract namespace; mode < 0: the umask's.
Napi::Value OpenUnix(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = -1;
  const char* syscall = nullptr;
  int err = UnixListen(path, info[1].As<Napi::Number>().Int32Value(),
                       info[2].As<Napi::Number>().Int32Value(), &fd, &syscall);
  if (err != 0) {
    // Printed as '@name' for an abstract name, as ss and systemd do.
    std::string shown = !path.empty() && path[0] == '\0' ? "@" + path.substr(1) : path;
    SystemError(env, err, syscall, shown).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return NewHandle(env, fd);
}

struct SocketKind {
  bool stream;
  bool inet;
  bool tcp;
  bool listening;
  bool reusePort;
};

// What `fd` is, with no side effect on it. Returns 0 or an errno, with the
// call that reported it in `*syscall`; a file that is not a socket is ENOTSOCK.
int InspectFd(int fd, SocketKind* kind, const char** syscall) {
  *syscall = "fcntl";
  if (fcntl(fd, F_GETFD) < 0) return errno;
  struct stat st;
  *syscall = "fstat";
  if (fstat(fd, &st) != 0) return errno;
  if (!S_ISSOCK(st.st_mode)) return ENOTSOCK;
  int type = 0, domain = 0, protocol = 0, listening = 0, reusePort = 0;
  int* values[] = {&type, &domain, &protocol, &listening, &reusePort};
  const int names[] = {SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN, SO_REUSEPORT};
  *syscall = "getsockopt";
  for (int i = 0; i < 5; i++) {
    socklen_t len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, names[i], values[i], &len) != 0) return errno;
  }
  kind->stream = type == SOCK_STREAM;
  kind->inet = domain == AF_INET || domain == AF_INET6;
  kind->tcp = protocol == IPPROTO_TCP;
  kind->listening = listening != 0;
  kind->reusePort = reusePort != 0;
  return 0;
}

// inspect(fd): { stream, inet, tcp, listening, reusePort }, read without
// touching the fd;
// adopt() in TypeScript uses it to say what an fd it refuses is.
Napi::Value Inspect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  SocketKind kind{};
  const char* syscall = nullptr;
  int err = InspectFd(info[0].As<Napi::Number>().Int32Value(), &kind, &syscall);
  if (err != 0) {
    SystemError(env, err, syscall).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("stream", kind.stream);
  result.Set("inet", kind.inet);
  result.Set("tcp", kind.tcp);
  result.Set("listening", kind.listening);
  result.Set("reusePort", kind.reusePort);
  return result;
}

// adopt(fd): a CLOEXEC duplicate of someone else's listening TCP socket; the
// caller keeps (and may close) the original, the queue lives in the socket
// both refer to. The duplicate is checked before O_NONBLOCK is set: the flag
// belongs to the open file description, shared with the caller's fd and with
// every other process holding the socket, so a refused fd must keep it as it
// was. A socket that passed inspect() but fails here changed in between
// (another thread reused the number): EINVAL.
Napi::Value Adopt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int original = info[0].As<Napi::Number>().Int32Value();
  int fd = fcntl(original, F_DUPFD_CLOEXEC, 3);
  if (fd < 0) {
    SystemError(env, errno, "fcntl").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  SocketKind kind{};
  const char* syscall = nullptr;
  int err = InspectFd(fd, &kind, &syscall);
  if (err == 0 && !(kind.stream && kind.inet && kind.tcp && kind.listening)) err = EINVAL;
  if (err == 0) {
    syscall = "fcntl";
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) err = errno;
  }
  if (err != 0) {
    ::close(fd);
    SystemError(env, err, syscall).ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return NewHandle(env, fd);
}

Napi::Value ThrowSystemError(Napi::Env env, int err, const char* syscall) {
  SystemError(env, err, syscall).ThrowAsJavaScriptException();
  return env.Undefined();
}

// Arguments are validated in TypeScript; these are programming errors.
Napi::Value ThrowTypeError(Napi::Env env, const char* message) {
  Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  return env.Undefined();
}

// unixConnect(path, timeoutMs): fd
Napi::Value UnixConnectJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  int fd = -1;
  const char* syscall = nullptr;
  int err = UnixConnect(path, info[1].As<Napi::Number>().Int32Value(), &fd, &syscall);
  if (err != 0) return ThrowSystemError(env, err, syscall);
  return Napi::Number::New(env, fd);
}

// sendWithFds(fd, data: Buffer, fds: number[])
Napi::Value SendWithFdsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[1].IsBuffer()) return ThrowTypeError(env, "sendWithFds: data must be a Buffer");
  if (!info[2].IsArray()) return ThrowTypeError(env, "sendWithFds: fds must be an array");
  auto data = info[1].As<Napi::Buffer<char>>();
  Napi::Array list = info[2].As<Napi::Array>();
  std::vector<int> fds(list.Length());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value value = list.Get(i);
    if (!value.IsNumber()) return ThrowTypeError(env, "sendWithFds: fds must be numbers");
    fds[i] = value.As<Napi::Number>().Int32Value();
  }
  // SCM_RIGHTS travels with data on a stream socket: with none, nothing is sent.
  if (!fds.empty() && data.Length() == 0) {
    return ThrowTypeError(env, "sendWithFds: fds need at least one byte of data");
  }
  const char* syscall = nullptr;
  int err = SendWithFds(info[0].As<Napi::Number>().Int32Value(), data.Data(), data.Length(), fds,
                        &syscall);
  if (err != 0) return ThrowSystemError(env, err, syscall);
  return env.Undefined();
}

// receiveWithFds(fd, timeoutMs, maxBytes): { data, fds, eof }
Napi::Value ReceiveWithFdsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  double maxBytes = info[2].As<Napi::Number>().DoubleValue();
  Received received;
  const char* syscall = nullptr;
  int err = ReceiveWithFds(info[0].As<Napi::Number>().Int32Value(),
                           info[1].As<Napi::Number>().Int32Value(),
                           maxBytes > 0 ? static_cast<size_t>(maxBytes) : 0, &received, &syscall);
  if (err != 0) return ThrowSystemError(env, err, syscall);
  auto data = Napi::Buffer<char>::Copy(env, received.data.data(), received.data.size());
  if (env.IsExceptionPending()) {
    // No Buffer (out of memory): the fds would reach nobody.
    for (int fd : received.fds) ::close(fd);
    return env.Undefined();
  }
  Napi::Array fds = Napi::Array::New(env, received.fds.size());
  for (size_t i = 0; i < received.fds.size(); i++) fds.Set(i, Napi::Number::New(env, received.fds[i]));
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", data);
  result.Set("fds", fds);
  result.Set("eof", received.eof);
  return result;
}

// peerCredentials(fd): { pid, uid, gid }
Napi::Value PeerCredentialsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int pid = 0;
  unsigned uid = 0, gid = 0;
  const char* syscall = nullptr;
  int err = PeerCredentials(info[0].As<Napi::Number>().Int32Value(), &pid, &uid, &gid, &syscall);
  if (err != 0) return ThrowSystemError(env, err, syscall);
  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, pid));
  result.Set("uid", Napi::Number::New(env, uid));
  result.Set("gid", Napi::Number::New(env, gid));
  return result;
}

// notify(path, message)
Napi::Value NotifyJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const char* syscall = nullptr;
  int err = Notify(info[0].As<Napi::String>().Utf8Value(), info[1].As<Napi::String>().Utf8Value(),
                   &syscall);
  if (err != 0) return ThrowSystemError(env, err, syscall);
  return env.Undefined();
}

}  // namespace
}  // namespace graceful_listener

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace graceful_listener;
  DefineHandle(env);
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  exports.Set("openUnix", Napi::Function::New<OpenUnix>(env, "openUnix"));
  exports.Set("adopt", Napi::Function::New<Adopt>(env, "adopt"));
  exports.Set("inspect", Napi::Function::New<Inspect>(env, "inspect"));
  exports.Set("acceptBatch", Napi::Number::New(env, kAcceptBatch));
  exports.Set("unixConnect", Napi::Function::New<UnixConnectJs>(env, "unixConnect"));
  exports.Set("sendWithFds", Napi::Function::New<SendWithFdsJs>(env, "sendWithFds"));
  exports.Set("receiveWithFds", Napi::Function::New<ReceiveWithFdsJs>(env, "receiveWithFds"));
  exports.Set("peerCredentials", Napi::Function::New<PeerCredentialsJs>(env, "peerCredentials"));
  exports.Set("notify", Napi::Function::New<NotifyJs>(env, "notify"));
  return exports;
}

}  // namespace

NODE_API_MODULE(graceful_listener, Init)
