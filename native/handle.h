// The JS object for one listening TCP socket owned by the addon (NativeHandle
// in src/core/native.ts).
#ifndef GRACEFUL_LISTENER_HANDLE_H_
#define GRACEFUL_LISTENER_HANDLE_H_

#include <napi.h>

namespace graceful_listener {

// accept4 calls per readable event; the poll is level-triggered, so a full
// batch simply comes back on the next loop iteration instead of starving it.
constexpr int kAcceptBatch = 128;

// Defines the class for `env` and keeps it as the env's instance data; once
// per env, at module init.
void DefineHandle(Napi::Env env);

// A new handle that owns `fd`, a listening socket the caller made or checked.
Napi::Value NewHandle(Napi::Env env, int fd);

}  // namespace graceful_listener

#endif  // GRACEFUL_LISTENER_HANDLE_H_
