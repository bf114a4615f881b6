// A stand-in for a socket.io-client socket: records what the transport emits (with its ack still to give) and lets a
// test play the relay's side, event by event, disconnects and reconnects included.

export function fakeSocket() {
  const listeners = new Map();
  const calls = []; // {event, payload, ack(value), fail(error)}
  const socket = {
    connected: true,
    active: true,
    connects: 0,
    on(event, fn) {
      listeners.set(event, [...(listeners.get(event) ?? []), fn]);
      return socket;
    },
    off(event, fn) {
      listeners.set(event, (listeners.get(event) ?? []).filter((f) => f !== fn));
      return socket;
    },
    listeners: (event) => listeners.get(event) ?? [],
    connect() {
      socket.connects += 1;
      socket.active = true;
    },
    timeout() {
      return {
        emitWithAck: (event, payload) => new Promise((resolve, reject) => {
          calls.push({ event, payload, ack: resolve, fail: reject });
        }),
      };
    },
  };
  const fire = (event, ...args) => {
    for (const fn of listeners.get(event) ?? []) fn(...args);
  };
  return {
    socket,
    calls,
    fire,
    /** The last call of `event`, waiting for its ack. */
    last: (event) => calls.findLast((c) => c.event === event),
    /** Until the transport has emitted `count` calls of `event` (its emits come after awaits). */
    async emitted(event, count = 1) {
      for (let i = 0; i < 100 && calls.filter((c) => c.event === event).length < count; i++) {
        await new Promise((r) => setTimeout(r, 0));
      }
      const found = calls.filter((c) => c.event === event);
      if (found.length < count) throw new Error(`${event} emitted ${found.length} times, not ${count}`);
      return found[count - 1];
    },
    dropConnection({ forGood = false } = {}) {
      socket.connected = false;
      socket.active = !forGood;
      fire("disconnect", forGood ? "io server disconnect" : "transport close");
    },
    reconnect() {
      socket.connected = true;
      fire("connect");
    },
  };
}
