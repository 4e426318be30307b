// Calls into user code (event listeners, hooks) from the close and accept
// paths. A user bug must never stop a close, strand a batch or leave a
// promise pending: the error is reported on its own tick, as an uncaught
// exception, the way Node reports a throwing listener of an event it emits
// from its own I/O callbacks.

/** Rethrows `error` on its own tick. */
export function reportUncaught(error: unknown): void {
  process.nextTick(() => {
    throw error;
  });
}

/** Runs `callout`; what it throws is reported by {@link reportUncaught}, never propagated. */
export function guarded(callout: () => void): void {
  try {
    callout();
  } catch (error) {
    reportUncaught(error);
  }
}

/**
 * An event listener that hands `handler` the emitter (EventEmitter calls a
 * listener with it as `this`): one function shared by every emitter, no
 * closure per connection or request.
 */
export function withEmitter<E>(handler: (emitter: E) => void): (this: E) => void {
  return function (this: E): void {
    handler(this);
  };
}
