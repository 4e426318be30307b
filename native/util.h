// Helpers shared by the addon's files: system errors shaped like Node's, and
// socket addresses parsed, printed and handed to JS.
#ifndef GRACEFUL_LISTENER_UTIL_H_
#define GRACEFUL_LISTENER_UTIL_H_

#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <string>

namespace graceful_listener {

// `code`, `errno` (negative, as libuv and Node report it), `syscall`, and
// `address`/`port` when given.
inline Napi::Error SystemError(Napi::Env env, int err, const char* syscall,
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

// family is 4 or 6, as JS passes it.
inline bool ParseAddress(int family, const std::string& address, int port,
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

inline int PortOf(const sockaddr_storage& ss) {
  return ss.ss_family == AF_INET ? ntohs(reinterpret_cast<const sockaddr_in*>(&ss)->sin_port)
                                 : ntohs(reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port);
}

inline std::string AddressText(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr, text, sizeof(text));
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr, text, sizeof(text));
  }
  return text;
}

// { family: 'IPv4' | 'IPv6', port, address }, as net.Server#address().
inline Napi::Object AddressObject(Napi::Env env, const sockaddr_storage& ss) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("family", ss.ss_family == AF_INET ? "IPv4" : "IPv6");
  result.Set("port", PortOf(ss));
  result.Set("address", AddressText(ss));
  return result;
}

}  // namespace graceful_listener

#endif  // GRACEFUL_LISTENER_UTIL_H_
