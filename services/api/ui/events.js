// The server-sent event stream (/api/v1/events): task progress and alert changes, live.

let source = null;
const listeners = { task: new Set(), alert: new Set(), status: new Set() };
let connected = false;

function setConnected(v) {
  if (connected === v) return;
  connected = v;
  listeners.status.forEach((fn) => fn(v));
}

/** Open the stream (once); EventSource reconnects by itself after a network error. */
export function connect() {
  if (source) return;
  source = new EventSource('/api/v1/events');
  source.addEventListener('open', () => setConnected(true));
  source.addEventListener('error', () => setConnected(false));
  for (const kind of ['task', 'alert']) {
    source.addEventListener(kind, (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch {
        return;
      }
      listeners[kind].forEach((fn) => fn(data));
    });
  }
}

/** Close the stream (on sign-out). */
export function disconnect() {
  if (source) source.close();
  source = null;
  setConnected(false);
}

/** Listen for `task`, `alert` or `status` (connected or not); returns the unsubscribe. */
export function on(kind, fn) {
  listeners[kind].add(fn);
  return () => listeners[kind].delete(fn);
}

export const isConnected = () => connected;
