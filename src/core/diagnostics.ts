import diagnostics from 'node:diagnostics_channel';

/**
 * The lifecycle channels on `node:diagnostics_channel`. A publisher checks
 * `hasSubscribers` first, so that nothing is built when nobody listens.
 * The payloads are documented with {@link ListenerChannels} in listener.ts.
 */
export const channels = {
  listen: diagnostics.channel('graceful-listener:listen'),
  pause: diagnostics.channel('graceful-listener:pause'),
  resume: diagnostics.channel('graceful-listener:resume'),
  draining: diagnostics.channel('graceful-listener:draining'),
  close: diagnostics.channel('graceful-listener:close'),
  replace: diagnostics.channel('graceful-listener:replace'),
  handover: diagnostics.channel('graceful-listener:handover'),
} as const;
