// Network: links, bonds, bridges and VLANs as the node sees them, the confirmed config, an
// editor that applies a change in try mode, and the pending change with its countdown.

import { api, get } from './api.js';
import { badge, emptyState, h } from './dom.js';

const KIND = { physical: 'Link', bond: 'Bond', bridge: 'Bridge', vlan: 'VLAN' };

function detail(l) {
  const parts = [];
  if (l.master) parts.push(h('span', { class: 'muted' }, `in ${l.master}`));
  if (l.bond) {
    parts.push(h('span', {}, `${l.bond.mode}, active ${l.bond.active || 'none'}`));
    parts.push(h('span', { class: 'members' }, l.bond.members.map((m) =>
      badge(m.mii_status === 'up' ? 'ok' : 'critical', `${m.name}${m.active ? ' ★' : ''} ${m.mii_status}`))));
  }
  if (l.bridge_ports && l.bridge_ports.length) parts.push(h('span', {}, `ports ${l.bridge_ports.join(', ')}`));
  if (l.vlan_id != null) parts.push(h('span', {}, `VLAN ${l.vlan_id} on ${l.vlan_parent}`));
  return parts.length ? parts.flatMap((p, i) => (i ? [' · ', p] : [p])) : [h('span', { class: 'muted' }, '—')];
}

function linkRow(l) {
  const state = !l.up ? badge('neutral', 'Down') : l.carrier ? badge('ok', 'Up') : badge('warning', 'No carrier');
  const speed = l.speed_mbps ? `${l.speed_mbps >= 1000 ? `${l.speed_mbps / 1000} G` : `${l.speed_mbps} M`}${l.duplex ? ` ${l.duplex}` : ''}` : '—';
  return h('tr', { class: l.up && !l.carrier && l.managed ? 'row-warning' : '' },
    h('td', {}, h('span', { class: 'mono' }, l.name), l.managed ? '' : h('span', { class: 'muted small' }, ' (not managed)')),
    h('td', {}, KIND[l.kind] || l.kind),
    h('td', {}, state),
    h('td', { class: 'num' }, speed),
    h('td', { class: 'num' }, String(l.mtu)),
    h('td', { class: 'mono small' }, l.addresses.length ? l.addresses.join('\n') : '—'),
    h('td', {}, detail(l)));
}

/** Render the Network section into `main`; returns a cleanup function. */
export async function renderNetwork(main) {
  const pendingBox = h('div', {});
  const links = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const routes = h('div', {});
  const editor = h('textarea', { rows: 18, spellcheck: 'false', class: 'mono', 'aria-label': 'Network spec (JSON)' });
  const timeout = h('input', { type: 'text', inputmode: 'numeric', size: 5, 'aria-label': 'Seconds to confirm' });
  const formError = h('p', { class: 'form-error', hidden: true, role: 'alert' });
  const applied = h('div', {});
  const configured = h('p', { class: 'muted' });
  const applyBtn = h('button', { type: 'submit', class: 'primary' }, 'Apply in try mode');
  const form = h('form', { onsubmit: onApply },
    configured,
    h('label', { class: 'field' }, h('span', {}, 'Network spec (JSON: links, bonds, bridges, vlans, routes, dns)'), editor),
    h('label', { class: 'field inline' }, h('span', {}, 'Seconds to confirm before rollback'), timeout),
    formError,
    h('div', { class: 'actions' }, applyBtn),
    applied);
  main.append(
    h('div', { class: 'section-head' }, h('h1', {}, 'Network')),
    pendingBox,
    h('section', { class: 'card' }, h('h2', {}, 'Links'), links),
    h('section', { class: 'card' }, h('h2', {}, 'Routes'), routes),
    h('section', { class: 'card' }, h('h2', {}, 'Configuration'), form));

  let view = null;
  let editorLoaded = false;
  let stopped = false;

  function showPending() {
    const p = view && view.pending;
    if (!p) {
      const rb = view && view.last_rollback;
      pendingBox.replaceChildren(rb
        ? h('section', { class: 'card alert-info' }, h('p', {}, `The last change was rolled back: ${rb.reason}.`))
        : '');
      return;
    }
    const left = Math.max(0, Math.ceil((p.deadline_unix_ms - Date.now()) / 1000));
    const confirm = h('button', { type: 'button', class: 'primary', onclick: () => act('/api/v1/network/confirm') }, 'Keep this change');
    const revert = h('button', { type: 'button', class: 'secondary', onclick: () => act('/api/v1/network/rollback') }, 'Revert now');
    pendingBox.replaceChildren(h('section', { class: 'card alert-warning', 'aria-live': 'polite' },
      h('h2', {}, 'A network change is waiting for you'),
      h('p', {}, 'If this page still works, the node is reachable with the new settings. Keep the change, or it is reverted automatically in ',
        h('strong', { class: 'countdown' }, `${left} s`), '.'),
      h('div', { class: 'actions' }, confirm, revert)));
  }

  async function act(path) {
    try {
      await api('POST', path, { body: {}, signedIn: true });
    } catch (err) {
      formError.hidden = false;
      formError.textContent = err.message;
    }
    await load();
  }

  async function load() {
    let st;
    try {
      [view, st] = await Promise.all([get('/api/v1/network'), get('/api/v1/network/status')]);
    } catch (err) {
      links.replaceChildren(h('p', { class: 'form-error' }, err.message));
      return;
    }
    if (!editorLoaded) {
      editor.value = JSON.stringify(view.spec, null, 2);
      timeout.value = String(view.try_timeout_s);
      editorLoaded = true;
    }
    configured.textContent = view.configured
      ? 'This is the confirmed configuration: the node boots with it.'
      : 'Not configured yet: every link uses DHCP (factory default). Edit and apply to change it.';
    showPending();
    links.replaceChildren(st.links.length === 0 ? emptyState('No links', 'The node reports no network links.')
      : h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Kind', 'State', 'Speed', 'MTU', 'Addresses', 'Detail'].map((t) => h('th', {}, t)))),
        h('tbody', {}, st.links.map(linkRow)))));
    routes.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
      h('thead', {}, h('tr', {}, ['Destination', 'Gateway', 'Interface', 'Source'].map((t) => h('th', {}, t)))),
      h('tbody', {}, st.routes.map((r) => h('tr', {},
        h('td', { class: 'mono' }, r.destination), h('td', { class: 'mono' }, r.gateway || '—'),
        h('td', { class: 'mono' }, r.interface || '—'), h('td', {}, r.protocol === 'static' ? 'Cairn' : r.protocol)))))));
  }

  async function onApply(ev) {
    ev.preventDefault();
    formError.hidden = true;
    applied.replaceChildren();
    let spec;
    try {
      spec = JSON.parse(editor.value);
    } catch (err) {
      formError.hidden = false;
      formError.textContent = `The spec is not valid JSON: ${err.message}`;
      return;
    }
    const body = { spec };
    if (timeout.value.trim()) body.timeout_s = Number(timeout.value.trim());
    applyBtn.disabled = true;
    try {
      const p = await api('PUT', '/api/v1/network', { body, signedIn: true });
      applied.replaceChildren(h('p', { class: 'muted' }, `Applied ${p.apply.ops.length} change(s) in ${p.apply.total_ms} ms.`),
        p.apply.ops.length ? h('ul', { class: 'mono small' }, p.apply.ops.map((o) => h('li', {}, o))) : '');
    } catch (err) {
      formError.hidden = false;
      formError.textContent = err.field ? `${err.field}: ${err.message}` : err.message;
    } finally {
      applyBtn.disabled = false;
    }
    await load();
  }

  await load();
  // The countdown ticks every second; the node's view is re-read every few seconds.
  let n = 0;
  const timer = setInterval(() => {
    if (stopped) return;
    n += 1;
    if (n % 3 === 0) load();
    else showPending();
  }, 1000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
