// The module: the two ways to get a handle (open a new listening socket, or
// adopt someone else's) and the constants JS needs.

#include <napi.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
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
  return NewHandle(env, fd);
}

}  // namespace
}  // namespace graceful_listener

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  using namespace graceful_listener;
  env.SetInstanceData(new Napi::FunctionReference(Napi::Persistent(DefineHandle(env))));
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  exports.Set("adopt", Napi::Function::New<Adopt>(env, "adopt"));
  exports.Set("acceptBatch", Napi::Number::New(env, kAcceptBatch));
  return exports;
}

}  // namespace

NODE_API_MODULE(graceful_listener, Init)
