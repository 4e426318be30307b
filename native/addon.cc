// The module: the two ways to get a handle (open a new listening socket, or
// adopt someone else's), the check adopt() makes, and the constants JS needs.

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "handle.h"
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

struct SocketKind {
  bool stream;
  bool inet;
  bool tcp;
  bool listening;
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
  int type = 0, domain = 0, protocol = 0, listening = 0;
  int* values[] = {&type, &domain, &protocol, &listening};
  const int names[] = {SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ACCEPTCONN};
  *syscall = "getsockopt";
  for (int i = 0; i < 4; i++) {
    socklen_t len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, names[i], values[i], &len) != 0) return errno;
  }
  kind->stream = type == SOCK_STREAM;
  kind->inet = domain == AF_INET || domain == AF_INET6;
  kind->tcp = protocol == IPPROTO_TCP;
  kind->listening = listening != 0;
  return 0;
}

// inspect(fd): { stream, inet, tcp, listening }, read without touching the fd;
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

}  // namespace
}  // namespace graceful_listener

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace graceful_listener;
  DefineHandle(env);
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  exports.Set("adopt", Napi::Function::New<Adopt>(env, "adopt"));
  exports.Set("inspect", Napi::Function::New<Inspect>(env, "inspect"));
  exports.Set("acceptBatch", Napi::Number::New(env, kAcceptBatch));
  return exports;
}

}  // namespace

NODE_API_MODULE(graceful_listener, Init)
