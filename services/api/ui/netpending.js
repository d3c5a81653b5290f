// The network change waiting for confirmation, shown on every page of the shell: the
// countdown to the automatic rollback, Confirm and Roll back now; and, when the change moves
// the management address, following the node to its new address (and back after a
// rollback).

import { api } from './api.js';
import { h } from './dom.js';

const KEY = 'cairn.net-pending';
const POLL_MS = 3000;
const listeners = new Set();

/**
 * What this tab knows of the pending change, or null: `deadline_unix_ms` (on this computer's
 * clock), `rollback_before` (the node's last rollback when it was applied), and when it moves
 * the management address `to` (the new origin) and `from` (the old one).
 */
export function known() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY) || 'null');
  } catch {
    return null;
  }
}

/** Remember (or with null forget) the pending change; every bar redraws. */
export function remember(p) {
  if (p) sessionStorage.setItem(KEY, JSON.stringify(p));
  else sessionStorage.removeItem(KEY);
  listeners.forEach((fn) => fn());
}

/** Seconds left until `deadline_unix_ms`. */
export function secondsLeft(deadline) {
  return Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
}

/** Whether `url` answers at all (any HTTP answer; a cross-origin one is opaque). */
async function reachable(url) {
  const ctl = new AbortController();
  const t = setTimeout(() => ctl.abort(), 2500);
  try {
    await fetch(url, { mode: 'no-cors', cache: 'no-store', signal: ctl.signal });
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(t);
  }
}

/**
 * The bar: empty unless a change is pending. `onChange` is called after Confirm, Roll back
 * now or a rollback seen (the network page reloads its view). Returns `{ el, stop }`.
 */
export function pendingBar({ onChange = () => {} } = {}) {
  const el = h('div', { class: 'net-pending-bar', 'aria-live': 'polite' });
  let rolledBack = null;
  let lastPoll = 0;
  let following = false;
  let unreachableSince = 0;

  async function act(path, what) {
    try {
      await api('POST', path, { body: {}, signedIn: true });
      remember(null);
      rolledBack = what === 'rollback' ? 'The change was rolled back: the previous configuration is back.' : null;
    } catch (err) {
      el.querySelector('.form-error')?.replaceChildren(err.message);
    }
    draw();
    onChange();
  }

  async function poll() {
    const p = known();
    if (!p) return;
    // Waiting for a moved management address: go there once it answers.
    if (p.to && !following && secondsLeft(p.deadline_unix_ms) > 0) {
      if (await reachable(`${p.to}/api/v1/health`)) {
        following = true;
        const from = encodeURIComponent(window.location.origin);
        window.location.href = `${p.to}/#/network?from=${from}`;
        return;
      }
    }
    let view;
    try {
      view = await api('GET', '/api/v1/network', { signedIn: true });
      unreachableSince = 0;
    } catch {
      // The node is not here (the address moved or is being restored). Past the deadline
      // the rollback has brought the old address back: return to it.
      if (!unreachableSince) unreachableSince = Date.now();
      if (p.from && secondsLeft(p.deadline_unix_ms) === 0 && Date.now() - unreachableSince > 5000) {
        window.location.href = `${p.from}/#/network`;
      }
      return;
    }
    if (view.pending) {
      remember({ ...p, deadline_unix_ms: Date.now() + 1000 * view.pending.remaining_s });
      return;
    }
    const rb = view.last_rollback;
    // A rollback other than the one known when the change was applied is this change's.
    rolledBack = rb && rb.at_unix_ms !== (p.rollback_before || 0)
      ? `The change was not confirmed and was rolled back by itself (${rb.reason}).`
      : null;
    remember(null);
    onChange();
  }

  function draw() {
    const p = known();
    if (!p) {
      el.replaceChildren(rolledBack ? h('div', { class: 'net-bar net-bar-info', role: 'status' },
        h('p', {}, rolledBack),
        h('button', { type: 'button', class: 'secondary small', onclick: () => { rolledBack = null; draw(); } }, 'Dismiss')) : '');
      return;
    }
    const left = secondsLeft(p.deadline_unix_ms);
    const where = p.to
      ? h('p', {}, 'The management address moves: the node will be at ', h('a', { href: `${p.to}/#/network` }, p.to),
        '. This page follows it there; sign in there and confirm. If it cannot be reached, the old address comes back.')
      : null;
    el.replaceChildren(h('div', { class: 'net-bar net-bar-warning', role: 'region', 'aria-label': 'Network change waiting for confirmation' },
      h('p', {}, h('strong', {}, 'Network change in try mode. '),
        'It is rolled back automatically in ', h('strong', { class: 'countdown', 'data-seconds': left }, `${left} s`),
        ' unless you confirm it.'),
      where,
      h('div', { class: 'net-bar-actions' },
        h('button', { type: 'button', class: 'primary small', onclick: () => act('/api/v1/network/confirm', 'confirm') }, 'Confirm'),
        h('button', { type: 'button', class: 'secondary small', onclick: () => act('/api/v1/network/rollback', 'rollback') }, 'Roll back now')),
      h('p', { class: 'form-error', role: 'alert' })));
  }

  listeners.add(draw);
  draw();
  const timer = setInterval(() => {
    if (!known()) return;
    draw();
    if (Date.now() - lastPoll >= POLL_MS) {
      lastPoll = Date.now();
      poll();
    }
  }, 1000);
  return {
    el,
    stop() {
      clearInterval(timer);
      listeners.delete(draw);
    },
  };
}
