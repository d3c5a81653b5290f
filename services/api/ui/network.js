// Network: the topology as a picture (NICs → bonds → VLANs → bridges → VMs), a form for each
// kind of interface, routes and DNS; edits gather as pending changes, planned by the node
// (POST /network/plan: what is created, changed, removed), then applied in try mode with the
// countdown (netpending.js) until confirmed. The spec as JSON stays under "Advanced".

import { api, get } from './api.js';
import { badge, emptyState, h } from './dom.js';
import { busy, clearErrors, errorSlot, field, sentence } from './form.js';
import { known, remember } from './netpending.js';

const SVG = 'http://www.w3.org/2000/svg';
const KINDS = { links: 'Link', bonds: 'Bond', vlans: 'VLAN', bridges: 'Bridge' };
const IFACE_KINDS = ['links', 'bonds', 'vlans', 'bridges'];
const MODES = ['active-backup', '802.3ad', 'balance-alb'];
const LACP = ['slow', 'fast'];
const HASH = ['layer2', 'layer2+3', 'layer3+4'];
/** The network roles a node names in its spec (`roles.cluster`, `roles.replication`). */
const ROLES = [
  ['cluster', 'Cluster network', 'etcd and the nodes\' cluster port: every member must reach every other on it.'],
  ['replication', 'Replication network', 'Replicated VM disks and live migration between nodes.'],
];
/** How long the apply of a change that moves the page's address may take to answer. */
const MOVE_ANSWER_MS = 20000;

const clone = (v) => JSON.parse(JSON.stringify(v));
const list = (s) => String(s || '').split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);

/** Every interface of `spec` as `{kind, i, it}`. */
function interfaces(spec) {
  return IFACE_KINDS.flatMap((kind) => (spec[kind] || []).map((it, i) => ({ kind, i, it })));
}

function find(spec, name) {
  return interfaces(spec).find((x) => x.it.name === name) || null;
}

/** The interfaces `name` sits on: bond members, a VLAN's parent, bridge ports. */
function lower(spec, name) {
  const x = find(spec, name);
  if (!x) return [];
  if (x.kind === 'bonds') return x.it.members || [];
  if (x.kind === 'vlans') return [x.it.parent];
  if (x.kind === 'bridges') return x.it.ports || [];
  return [];
}

/** `name` and everything below it. */
function below(spec, name, seen = new Set()) {
  if (seen.has(name)) return seen;
  seen.add(name);
  lower(spec, name).forEach((n) => below(spec, n, seen));
  return seen;
}

/** Who uses `name`: `[{name, how}]` (member of a bond, parent of a VLAN, bridge port, route). */
function usersOf(spec, name) {
  const out = [];
  (spec.bonds || []).forEach((b) => (b.members || []).includes(name) && out.push({ name: b.name, how: 'bond member' }));
  (spec.vlans || []).forEach((v) => v.parent === name && out.push({ name: v.name, how: 'VLAN parent' }));
  (spec.bridges || []).forEach((b) => (b.ports || []).includes(name) && out.push({ name: b.name, how: 'bridge port' }));
  (spec.routes || []).forEach((r) => r.interface === name && out.push({ name: `route to ${r.destination}`, how: 'route' }));
  return out;
}

const managementOf = (spec) => interfaces(spec).filter((x) => x.it.management).map((x) => x.it);

/** The management addresses (without prefix) of `spec`; `dhcp` when it uses DHCP. */
function managementAddrs(spec) {
  return managementOf(spec).flatMap((it) => [...(it.addresses || []).map((a) => a.split('/')[0]), ...(it.dhcp ? ['dhcp'] : [])]);
}

/**
 * Where the node will be after `next` replaces `before`, seen from this page: the new
 * origin when the address this page uses goes away and a static management address takes
 * its place; null otherwise.
 */
export function movedTo(before, next, here = window.location) {
  const host = here.hostname;
  const now = managementAddrs(before);
  const then = managementAddrs(next);
  if (!now.includes(host) || then.includes(host)) return null;
  const addr = then.find((a) => a !== 'dhcp');
  if (!addr) return null;
  const port = here.port ? `:${here.port}` : '';
  return `${here.protocol}//${addr.includes(':') ? `[${addr}]` : addr}${port}`;
}

/** Remove interface `name` from `spec`, and what only made sense with it. */
function removeIface(spec, name) {
  const x = find(spec, name);
  if (!x) return;
  spec[x.kind].splice(x.i, 1);
  (spec.bonds || []).forEach((b) => {
    b.members = (b.members || []).filter((m) => m !== name);
    if (b.primary === name) delete b.primary;
  });
  (spec.bridges || []).forEach((b) => { b.ports = (b.ports || []).filter((p) => p !== name); });
  spec.vlans = (spec.vlans || []).filter((v) => v.parent !== name);
  spec.routes = (spec.routes || []).filter((r) => r.interface !== name);
  if (spec.roles) {
    ROLES.forEach(([role]) => { if (spec.roles[role] === name) delete spec.roles[role]; });
  }
}

/** What removing `name` does, said before it happens; `blocked` when it cannot be done. */
export function removalConsequences(spec, name) {
  const x = find(spec, name);
  const lines = [];
  let blocked = null;
  const others = managementOf(spec).filter((it) => it.name !== name);
  if (x && x.it.management && others.length === 0) {
    blocked = `${name} carries the management address: removing it needs another management address first.`;
  }
  const vlans = (spec.vlans || []).filter((v) => v.parent === name).map((v) => v.name);
  if (vlans.length) lines.push(`The VLAN${vlans.length > 1 ? 's' : ''} ${vlans.join(', ')} on it ${vlans.length > 1 ? 'are' : 'is'} removed too.`);
  usersOf(spec, name).filter((u) => u.how !== 'VLAN parent').forEach((u) => {
    lines.push(u.how === 'route' ? `The ${u.name} is removed too.` : `It leaves ${u.name} (was a ${u.how}).`);
  });
  ROLES.forEach(([role, label]) => {
    if (spec.roles && spec.roles[role] === name) lines.push(`${name} carries the ${label.toLowerCase()}: the node has none until another interface takes that role.`);
  });
  if (x && x.kind === 'bonds' && (x.it.members || []).length) lines.push(`Its members ${x.it.members.join(', ')} become free links.`);
  if (x && x.kind === 'links') lines.push(`${name} is no longer configured by Cairn (it keeps no address).`);
  return { lines, blocked };
}

/** The API field `spec.bonds[0].members[1]` as `{kind, i, field}` (`field` without index). */
export function parseField(apiField) {
  const f = String(apiField || '').replace(/^spec\./, '');
  let m = /^(links|bonds|vlans|bridges|routes)\[(\d+)\](?:\.([a-z_]+))?/.exec(f);
  if (m) return { kind: m[1], i: Number(m[2]), field: m[3] || 'name', path: f };
  m = /^(dns|roles)\.([a-z_]+)/.exec(f);
  if (m) return { kind: m[1], i: 0, field: m[2], path: f };
  return { kind: null, i: 0, field: null, path: f };
}

// ---- form controls ----------------------------------------------------------------------

function select(options, value, extra = {}) {
  return h('select', extra, options.map(([v, label]) => h('option', { value: v, selected: v === value }, label)));
}

function checks(name, legend, options, chosen, hint) {
  // A fieldset of checkboxes with the same error slot as field().
  const error = h('p', { class: 'field-error', role: 'alert', hidden: true });
  return h('fieldset', { class: 'field', 'data-field': name },
    h('legend', {}, legend),
    options.length ? options.map(([v, label, note]) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', name, value: v, checked: chosen.includes(v) }),
      h('span', {}, ' ', label, note ? h('span', { class: 'muted small' }, ` (${note})`) : ''))) : h('p', { class: 'muted' }, 'None to choose from.'),
    hint ? h('p', { class: 'hint' }, hint) : null,
    error);
}

const checked = (form, name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((i) => i.value);
const val = (form, name) => (form.elements.namedItem(name)?.value ?? '').trim();

function num(form, name) {
  const v = val(form, name);
  if (v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : v;
}

/** Addressing, MTU and management: the fields every interface has. */
function ipFields(it) {
  const mode = h('select', {}, ['dhcp', 'static', 'none'].map((v) => h('option', {
    value: v, selected: (it.dhcp ? 'dhcp' : (it.addresses || []).length ? 'static' : 'none') === v,
  }, { dhcp: 'DHCP', static: 'Static addresses', none: 'No address' }[v])));
  const addrs = h('input', { type: 'text', value: (it.addresses || []).join(', '), placeholder: '10.20.0.2/24', autocomplete: 'off' });
  const mtu = h('input', { type: 'text', inputmode: 'numeric', value: it.mtu ?? '', placeholder: '1500', autocomplete: 'off' });
  const mgmt = h('input', { type: 'checkbox', checked: !!it.management });
  const addrField = field('addresses', 'Addresses (CIDR, comma separated)', addrs, 'With DHCP these are added to the leased one.');
  const sync = () => { addrField.hidden = mode.value === 'none'; };
  mode.addEventListener('change', sync);
  sync();
  return [
    h('div', { class: 'field-row' }, field('dhcp', 'Addressing', mode), field('mtu', 'MTU', mtu, '576–9216; empty keeps the default.')),
    addrField,
    h('div', { class: 'field', 'data-field': 'management' },
      h('label', { class: 'check' }, mgmt, h('span', {}, ' Management: the web page and API are reached here')),
      h('p', { class: 'field-error', role: 'alert', hidden: true })),
  ];
}

function readIp(form, it) {
  const mode = form.elements.namedItem('dhcp').value;
  it.dhcp = mode === 'dhcp';
  it.addresses = mode === 'none' ? [] : list(val(form, 'addresses'));
  const mtu = num(form, 'mtu');
  if (mtu === undefined) delete it.mtu; else it.mtu = mtu;
  it.management = form.querySelector('[data-field="management"] input').checked;
  if (!it.dhcp) delete it.dhcp;
  if (!it.management) delete it.management;
  if (!it.addresses.length) delete it.addresses;
}

// ---- the page ---------------------------------------------------------------------------

/** Render the Network section into `main`; returns a cleanup function. */
export async function renderNetwork(main) {
  const picture = h('div', { class: 'topology' }, h('p', { class: 'loading' }, 'Loading…'));
  const editorBox = h('div', { class: 'net-editor' });
  const pendingBox = h('div', {});
  const statusBox = h('div', {});
  const routesBox = h('div', {});
  const dnsBox = h('div', {});
  const rolesBox = h('div', {});
  const advanced = h('div', {});
  const addBar = h('div', { class: 'net-add' },
    ['links', 'bonds', 'vlans', 'bridges'].map((k) => h('button', { type: 'button', class: 'secondary small', onclick: () => openForm(k, null) }, `Add ${KINDS[k].toLowerCase()}`)),
    h('button', { type: 'button', class: 'secondary small', onclick: () => openForm('routes', null) }, 'Add route'));
  main.append(
    h('div', { class: 'section-head' }, h('h1', {}, 'Network')),
    h('section', { class: 'card' }, h('h2', {}, 'Topology'),
      h('p', { class: 'muted small' }, 'Physical NICs, bonds, VLANs, bridges and the VMs on them. The management path is highlighted. Select an element to edit it.'),
      picture, addBar, editorBox),
    pendingBox,
    h('section', { class: 'card' }, h('h2', {}, 'Routes'), routesBox),
    h('section', { class: 'card' }, h('h2', {}, 'DNS'), dnsBox),
    h('section', { class: 'card' }, h('h2', {}, 'Cluster and replication networks'), rolesBox),
    h('section', { class: 'card' }, h('h2', {}, 'Links as the node sees them'), statusBox),
    advanced);

  let view = null;
  let status = null;
  let vms = [];
  let draft = null; // the spec being edited; differs from `base` when changes are pending
  let base = null; // what the node runs: the pending spec in try mode, else the confirmed one
  let preview = null; // the node's plan of `draft`
  let open = null; // { kind, i } of the form shown
  let stopped = false;

  const dirty = () => draft && base && JSON.stringify(draft) !== JSON.stringify(base);

  async function load() {
    try {
      [view, status] = await Promise.all([get('/api/v1/network'), get('/api/v1/network/status')]);
    } catch (err) {
      // Nothing to edit without the node's view (the domain is down or starting).
      if (!draft) addBar.hidden = true;
      picture.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
      return;
    }
    addBar.hidden = false;
    try {
      const v = await get('/api/v1/vms');
      vms = Array.isArray(v) ? v : (v && v.vms) || [];
    } catch {
      vms = [];
    }
    const nowBase = clone(view.pending ? view.pending.spec : view.spec);
    if (!draft || !dirty() || JSON.stringify(nowBase) !== JSON.stringify(base)) {
      draft = clone(nowBase);
      preview = null;
    }
    base = nowBase;
    if (view.pending) {
      // Followed here from the old address (`#/network?from=…`): remember where to return.
      const from = new URLSearchParams(window.location.hash.split('?')[1] || '').get('from');
      // The deadline on this computer's clock (the node's may differ).
      const k = known() || { rollback_before: view.last_rollback ? view.last_rollback.at_unix_ms : 0 };
      remember({ ...k, ...(from && !k.from ? { from } : {}), deadline_unix_ms: Date.now() + 1000 * view.pending.remaining_s });
    }
    drawAll();
  }

  function drawAll() {
    drawPicture();
    drawPending();
    drawRoutes();
    drawDns();
    drawRoles();
    drawStatus();
    drawAdvanced();
  }

  const linkStatus = (name) => status && status.links.find((l) => l.name === name);

  // ---- topology ----
  function drawPicture() {
    const spec = draft;
    const mgmt = new Set();
    managementOf(spec).forEach((it) => below(spec, it.name, mgmt));
    const cols = [
      { title: 'NICs', items: (spec.links || []).map((l) => ({ name: l.name, kind: 'links' })) },
      { title: 'Bonds', items: (spec.bonds || []).map((b) => ({ name: b.name, kind: 'bonds' })) },
      { title: 'VLANs', items: (spec.vlans || []).map((v) => ({ name: v.name, kind: 'vlans' })) },
      { title: 'Bridges', items: (spec.bridges || []).map((b) => ({ name: b.name, kind: 'bridges' })) },
      { title: 'VMs', items: vms.flatMap((vm) => ((vm.nics || vm.spec?.nics || []).some((n) => n.bridge)
        ? [{ name: vm.name, kind: 'vm', bridges: (vm.nics || vm.spec?.nics || []).map((n) => n.bridge).filter(Boolean) }] : [])) },
    ];
    const W = 150;
    const GAP = 40;
    const BOX = 44;
    const VGAP = 14;
    const TOP = 28;
    const pos = {};
    cols.forEach((c, ci) => c.items.forEach((it, ri) => {
      pos[`${it.kind}:${it.name}`] = { x: ci * (W + GAP) + 4, y: TOP + ri * (BOX + VGAP), it };
    }));
    const rows = Math.max(1, ...cols.map((c) => c.items.length));
    const width = cols.length * (W + GAP) - GAP + 8;
    const height = TOP + rows * (BOX + VGAP) + 4;
    const s = (tag, attrs = {}, ...kids) => {
      const el = document.createElementNS(SVG, tag);
      Object.entries(attrs).forEach(([k, v]) => v !== null && v !== undefined && el.setAttribute(k, String(v)));
      kids.forEach((k) => k !== null && el.append(k));
      return el;
    };
    const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, class: 'topology-svg', role: 'group', 'aria-label': 'Network topology' });
    svg.append(s('title', {}, 'Network topology'));
    cols.forEach((c, ci) => svg.append(s('text', { x: ci * (W + GAP) + 4, y: 16, class: 'topo-col' }, c.title)));
    const at = (name) => {
      const x = find(spec, name);
      return x ? pos[`${x.kind}:${name}`] : null;
    };
    const edge = (from, to, hot) => {
      if (!from || !to) return;
      const x1 = from.x + W;
      const y1 = from.y + BOX / 2;
      const x2 = to.x;
      const y2 = to.y + BOX / 2;
      svg.append(s('path', { d: `M${x1},${y1} C${x1 + GAP / 2},${y1} ${x2 - GAP / 2},${y2} ${x2},${y2}`, class: hot ? 'topo-edge mgmt' : 'topo-edge' }));
    };
    (spec.bonds || []).forEach((b) => (b.members || []).forEach((m) => edge(at(m), at(b.name), mgmt.has(b.name) && mgmt.has(m))));
    (spec.vlans || []).forEach((v) => edge(at(v.parent), at(v.name), mgmt.has(v.name)));
    (spec.bridges || []).forEach((b) => (b.ports || []).forEach((p) => edge(at(p), at(b.name), mgmt.has(b.name) && mgmt.has(p))));
    cols[4].items.forEach((vm) => vm.bridges.forEach((br) => edge(at(br), pos[`vm:${vm.name}`], false)));
    Object.values(pos).forEach(({ x, y, it }) => {
      const st = it.kind === 'vm' ? null : linkStatus(it.name);
      const carrier = st ? (st.up && st.carrier ? 'up' : 'down') : 'absent';
      const isMgmt = mgmt.has(it.name) && it.kind !== 'vm';
      const label = it.kind === 'vm' ? `VM ${it.name}` : `${KINDS[it.kind]} ${it.name}`;
      const state = it.kind === 'vm' ? '' : carrier === 'up' ? 'carrier' : carrier === 'down' ? 'no carrier' : 'not created yet';
      const roles = ROLES.filter(([role]) => spec.roles && spec.roles[role] === it.name).map(([role]) => ` · ${role}`).join('');
      const sub = it.kind === 'vm' ? 'VM' : `${state}${isMgmt ? ' · mgmt' : ''}${roles}`;
      const g = s('g', {
        class: `topo-node ${it.kind} carrier-${carrier}${isMgmt ? ' mgmt' : ''}${open && draft[open.kind]?.[open.i]?.name === it.name ? ' selected' : ''}`,
        'data-node': it.name, 'data-kind': it.kind, tabindex: it.kind === 'vm' ? null : 0, role: it.kind === 'vm' ? 'img' : 'button',
        // Its accessible name is its visible text (name, carrier, mgmt); the title says the kind.
      },
      s('title', {}, `${label}${isMgmt ? ', on the management path' : ''}`),
      s('rect', { x, y, width: W, height: BOX, rx: 8 }),
      it.kind === 'vm' ? null : s('circle', { cx: x + 12, cy: y + 15, r: 5, class: 'topo-dot' }),
      s('text', { x: x + 22, y: y + 19, class: 'topo-name' }, it.name),
      s('text', { x: x + 10, y: y + 36, class: 'topo-sub' }, sub));
      if (it.kind !== 'vm') {
        const go = () => {
          const f = find(draft, it.name);
          if (f) openForm(f.kind, f.i);
        };
        g.addEventListener('click', go);
        g.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') {
            e.preventDefault();
            go();
          }
        });
      }
      svg.append(g);
    });
    picture.replaceChildren(h('div', { class: 'topology-scroll' }, svg));
  }

  // ---- forms ----
  function openForm(kind, i) {
    open = { kind, i };
    drawPicture();
    const it = i === null ? null : clone(draft[kind][i]);
    editorBox.replaceChildren(kind === 'routes' ? routeForm(it, i) : ifaceForm(kind, it, i));
    editorBox.querySelector('input:not([type=checkbox]), select')?.focus();
  }

  function closeForm() {
    open = null;
    editorBox.replaceChildren();
    drawPicture();
  }

  /** Links, bonds and VLANs offered as bond members / bridge ports, with where they are used. */
  function candidates(kinds, self) {
    return interfaces(draft).filter((x) => kinds.includes(x.kind) && x.it.name !== self).map((x) => {
      const used = usersOf(draft, x.it.name).filter((u) => u.name !== self && (u.how === 'bond member' || u.how === 'bridge port'));
      return [x.it.name, x.it.name, used.length ? `in ${used.map((u) => u.name).join(', ')}` : (x.it.addresses || []).length || x.it.dhcp ? 'has an address' : null];
    });
  }

  function ifaceForm(kind, it, i) {
    const isNew = it === null;
    it = it || (kind === 'bonds' ? { name: '', mode: 'active-backup', members: [] }
      : kind === 'vlans' ? { name: '', parent: '', id: '' }
        : kind === 'bridges' ? { name: '', ports: [], stp: false } : { name: '' });
    const name = h('input', { type: 'text', value: it.name, autocomplete: 'off', spellcheck: 'false' });
    const fields = [field('name', 'Name', name, kind === 'links' ? 'The kernel name of the NIC (or any name, with its MAC).' : 'Letters, digits, . - _ (at most 15).')];
    if (kind === 'links') {
      fields.push(field('mac', 'MAC address (optional)', h('input', { type: 'text', value: it.mac || '', autocomplete: 'off', placeholder: '52:54:00:12:34:01' }),
        'Finds the NIC by its permanent MAC, whatever the kernel calls it.'));
    }
    if (kind === 'bonds') {
      const mode = select(MODES.map((m) => [m, m]), it.mode);
      const lacp = select([['', 'default'], ...LACP.map((m) => [m, m])], it.lacp_rate || '');
      const hash = select([['', 'default'], ...HASH.map((m) => [m, m])], it.xmit_hash_policy || '');
      const primary = select([['', 'none'], ...interfaces(draft).filter((x) => x.kind === 'links').map((x) => [x.it.name, x.it.name])], it.primary || '');
      const lacpRow = h('div', { class: 'field-row' }, field('lacp_rate', 'LACP rate', lacp), field('xmit_hash_policy', 'Hash policy', hash));
      const primaryField = field('primary', 'Primary member', primary, 'The member used while it is up.');
      const sync = () => {
        lacpRow.hidden = mode.value !== '802.3ad';
        primaryField.hidden = mode.value === '802.3ad';
      };
      mode.addEventListener('change', sync);
      sync();
      fields.push(
        checks('members', 'Members', candidates(['links'], it.name), it.members || [], 'Physical links. A member carries no address of its own: its DHCP or addresses are dropped.'),
        h('div', { class: 'field-row' }, field('mode', 'Mode', mode),
          field('miimon', 'Link check every (ms)', h('input', { type: 'text', inputmode: 'numeric', value: it.miimon ?? 100 }))),
        primaryField, lacpRow);
    }
    if (kind === 'vlans') {
      const parents = interfaces(draft).filter((x) => x.kind !== 'vlans' && x.it.name !== it.name).map((x) => [x.it.name, x.it.name]);
      fields.push(h('div', { class: 'field-row' },
        field('parent', 'Parent', select([['', 'choose…'], ...parents], it.parent)),
        field('id', 'VLAN id', h('input', { type: 'text', inputmode: 'numeric', value: it.id ?? '', placeholder: '1–4094' }))));
    }
    if (kind === 'bridges') {
      fields.push(
        checks('ports', 'Ports', candidates(['links', 'bonds', 'vlans'], it.name), it.ports || [], 'VMs on this bridge reach the network through these. A port\'s own DHCP or addresses are dropped.'),
        h('div', { class: 'field', 'data-field': 'stp' }, h('label', { class: 'check' },
          h('input', { type: 'checkbox', name: 'stp', checked: !!it.stp }), h('span', {}, ' Spanning tree (STP)')),
        h('p', { class: 'field-error', role: 'alert', hidden: true })));
    }
    fields.push(...ipFields(it));
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const save = h('button', { type: 'submit', class: 'primary' }, isNew ? `Add ${KINDS[kind].toLowerCase()}` : 'Save');
    const removeBox = h('div', {});
    const form = h('form', { class: 'card net-form', 'data-kind': kind, novalidate: true, onsubmit: onSave },
      h('h3', {}, isNew ? `New ${KINDS[kind].toLowerCase()}` : `${KINDS[kind]} ${it.name}`),
      fields, err,
      h('div', { class: 'actions' },
        h('div', {}, save, ' ', h('button', { type: 'button', class: 'secondary', onclick: closeForm }, 'Close')),
        isNew ? null : h('button', { type: 'button', class: 'secondary danger', onclick: askRemove }, `Remove ${it.name}`)),
      removeBox);

    function askRemove() {
      const { lines, blocked } = removalConsequences(draft, it.name);
      removeBox.replaceChildren(h('div', { class: 'card confirm', role: 'alert' },
        h('h3', {}, `Remove ${it.name}?`),
        blocked ? h('p', { class: 'form-error' }, blocked) : null,
        lines.map((l) => h('p', {}, l)),
        h('p', { class: 'muted' }, 'Nothing changes on the node until you apply the pending changes.'),
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'secondary', onclick: () => removeBox.replaceChildren() }, 'Keep it'),
          blocked ? null : h('button', { type: 'button', class: 'primary danger', onclick: () => commit(((s) => removeIface(s, it.name)), form, kind, null) }, `Remove ${it.name}`))));
    }

    async function onSave(ev) {
      ev.preventDefault();
      const next = clone(it);
      next.name = val(form, 'name');
      if (kind === 'links') {
        const mac = val(form, 'mac');
        if (mac) next.mac = mac; else delete next.mac;
      }
      if (kind === 'bonds') {
        next.members = checked(form, 'members');
        next.mode = form.elements.namedItem('mode').value;
        next.miimon = num(form, 'miimon') ?? 100;
        const pick = (n) => {
          const v = form.elements.namedItem(n).value;
          if (v && !form.querySelector(`[data-field="${n}"]`).closest('[hidden]')) next[n] = v; else delete next[n];
        };
        ['primary', 'lacp_rate', 'xmit_hash_policy'].forEach(pick);
      }
      if (kind === 'vlans') {
        next.parent = form.elements.namedItem('parent').value;
        next.id = num(form, 'id') ?? '';
        if (!next.name && next.parent && next.id) next.name = `${next.parent}.${next.id}`;
      }
      if (kind === 'bridges') {
        next.ports = checked(form, 'ports');
        next.stp = form.elements.namedItem('stp').checked;
      }
      readIp(form, next);
      // Members and ports carry no addresses of their own: theirs are dropped.
      const under = kind === 'bonds' ? next.members : kind === 'bridges' ? next.ports : [];
      // Checks the node cannot make (the spec's JSON would not even parse).
      if (kind === 'vlans' && typeof next.id !== 'number') {
        return fieldError(form, 'id', 'The VLAN id must be a number from 1 to 4094.');
      }
      if (typeof next.miimon === 'string') return fieldError(form, 'miimon', 'Must be a whole number of milliseconds.');
      if (typeof next.mtu === 'string') return fieldError(form, 'mtu', 'The MTU must be a whole number (576–9216).');
      const renamed = !isNew && next.name !== it.name ? it.name : null;
      await commit((s) => {
        if (isNew) {
          s[kind] = s[kind] || [];
          s[kind].push(next);
        } else {
          s[kind][i] = next;
          if (renamed) renameRefs(s, renamed, next.name);
        }
        under.forEach((n) => {
          const x = find(s, n);
          if (x && x.it !== next) ['dhcp', 'addresses'].forEach((k) => delete x.it[k]);
        });
      }, form, kind, isNew ? (draft[kind] || []).length : i);
    }
    return form;
  }

  function routeForm(r, i) {
    const isNew = r === null;
    r = r || { destination: '', gateway: '' };
    const ifaces = interfaces(draft).map((x) => [x.it.name, x.it.name]);
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { class: 'card net-form', 'data-kind': 'routes', novalidate: true, onsubmit: onSave },
      h('h3', {}, isNew ? 'New route' : `Route to ${r.destination}`),
      h('div', { class: 'field-row' },
        field('destination', 'Destination', h('input', { type: 'text', value: r.destination, placeholder: 'default or 10.99.0.0/16', autocomplete: 'off' })),
        field('gateway', 'Gateway', h('input', { type: 'text', value: r.gateway, placeholder: '10.10.0.1', autocomplete: 'off' }))),
      h('div', { class: 'field-row' },
        field('interface', 'Interface', select([['', 'any'], ...ifaces], r.interface || ''), 'The gateway must be in a subnet of this interface.'),
        field('metric', 'Metric', h('input', { type: 'text', inputmode: 'numeric', value: r.metric ?? '', autocomplete: 'off' }))),
      err,
      h('div', { class: 'actions' },
        h('div', {}, h('button', { type: 'submit', class: 'primary' }, isNew ? 'Add route' : 'Save'), ' ',
          h('button', { type: 'button', class: 'secondary', onclick: closeForm }, 'Close')),
        isNew ? null : h('button', { type: 'button', class: 'secondary danger', onclick: () => commit((s) => s.routes.splice(i, 1), form, 'routes', null) }, 'Remove route')));
    async function onSave(ev) {
      ev.preventDefault();
      const next = { destination: val(form, 'destination'), gateway: val(form, 'gateway') };
      if (val(form, 'interface')) next.interface = val(form, 'interface');
      const metric = num(form, 'metric');
      if (typeof metric === 'string') return fieldError(form, 'metric', 'The metric must be a whole number.');
      if (metric !== undefined) next.metric = metric;
      await commit((s) => {
        s.routes = s.routes || [];
        if (isNew) s.routes.push(next); else s.routes[i] = next;
      }, form, 'routes', isNew ? (draft.routes || []).length : i);
    }
    return form;
  }

  function fieldError(form, name, msg) {
    clearErrors(form);
    const slot = errorSlot(form, name);
    slot.textContent = msg;
    slot.hidden = false;
  }

  /**
   * Apply `change` to a copy of the draft, have the node plan it, and keep it when valid;
   * an error about the element the form edits (`kind`, `index`) goes under its field.
   */
  async function commit(change, form, kind, index) {
    clearErrors(form);
    const next = clone(draft);
    change(next);
    try {
      const p = await api('POST', '/api/v1/network/plan', { body: { spec: next }, signedIn: true });
      draft = next;
      preview = p;
      if (form.closest('.net-editor')) closeForm();
      drawAll();
      return true;
    } catch (err) {
      const f = parseField(err.field);
      const mine = f.kind === kind && (kind === 'dns' || kind === 'roles' || f.i === index);
      const local = mine ? f.field : null;
      const slot = local && form.querySelector(`[data-field="${local}"]`) ? errorSlot(form, local) : form.querySelector('.form-error');
      const where = mine || !f.path ? '' : `${f.path}: `;
      slot.textContent = `${where}${sentence(err.message)}`;
      slot.hidden = false;
      return false;
    }
  }

  // ---- pending changes ----
  function drawPending() {
    if (!dirty()) {
      pendingBox.replaceChildren();
      return;
    }
    const p = preview;
    const to = movedTo(base, draft);
    const timeout = h('input', { type: 'text', inputmode: 'numeric', value: String(view.try_timeout_s), size: 5 });
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const applyBtn = h('button', { type: 'submit', class: 'primary' }, 'Apply in try mode');
    const form = h('form', { novalidate: true, onsubmit: onApply },
      field('timeout_s', 'Seconds to confirm before the node rolls back', timeout),
      err,
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'secondary', onclick: () => { draft = clone(base); preview = null; closeForm(); drawAll(); } }, 'Discard changes'),
        applyBtn));
    const group = (title, names, tone) => (names.length ? h('div', { class: `plan-group plan-${tone}` }, h('h3', {}, title),
      h('ul', {}, names.map((n) => h('li', { class: 'mono' }, n)))) : null);
    pendingBox.replaceChildren(h('section', { class: 'card pending-changes', 'aria-label': 'Pending changes' },
      h('h2', {}, 'Pending changes'),
      p ? h('div', { class: 'plan-groups' },
        group('Created', p.created, 'create'), group('Changed', p.changed, 'change'), group('Removed', p.removed, 'remove'),
        p.routes_changed ? h('div', { class: 'plan-group plan-change' }, h('h3', {}, 'Routes'), h('p', {}, 'Routes are added or removed.')) : null,
        !p.ops.length ? h('p', { class: 'muted' }, 'Only the configuration Cairn keeps changes (DNS, DHCP, management): no link changes.') : null)
        : h('p', { class: 'muted' }, 'Edited by hand: the plan is made when you apply.'),
      p && p.ops.length ? h('details', {}, h('summary', {}, `The ${p.ops.length} operation(s), in order`),
        h('ol', { class: 'mono small' }, p.ops.map((o) => h('li', { class: `op-${o.change}` }, o.op)))) : null,
      to ? h('p', { class: 'notice net-move' }, 'This change moves the management address. The node will be at ',
        h('strong', { class: 'mono' }, to), ': after applying, this page follows it there, and you confirm from the new address. If it cannot be reached, the rollback brings the old address back and this page returns to it.') : null,
      form));

    async function onApply(ev) {
      ev.preventDefault();
      clearErrors(form);
      const body = { spec: draft };
      if (timeout.value.trim()) body.timeout_s = Number(timeout.value.trim());
      const started = Date.now();
      const seconds = body.timeout_s || view.try_timeout_s;
      const follow = {
        rollback_before: view.last_rollback ? view.last_rollback.at_unix_ms : 0,
        ...(to ? { to, from: window.location.origin } : {}),
      };
      try {
        const put = api('PUT', '/api/v1/network', { body, signedIn: true });
        // The answer to a change that moves the address this page uses may never come back
        // (the old address is gone once it is applied): after a while, or when the
        // connection breaks, the change is taken as applied and the page follows the node.
        const res = await busy(applyBtn, 'Applying…', () => (to ? Promise.race([put.catch((e) => {
          if (e.status === 0) return { lost: true };
          throw e;
        }), new Promise((r) => { setTimeout(() => r({ lost: true }), MOVE_ANSWER_MS); })]) : put));
        const left = res.lost ? seconds - Math.ceil((Date.now() - started) / 1000) : res.remaining_s;
        remember({ deadline_unix_ms: Date.now() + 1000 * left, ...follow });
      } catch (e) {
        const f = parseField(e.field);
        if (e.field === 'timeout_s') fieldError(form, 'timeout_s', sentence(e.message));
        else {
          err.textContent = `${f.path ? `${f.path}: ` : ''}${sentence(e.message)}`;
          err.hidden = false;
          if (f.kind && f.kind !== 'dns') openForm(f.kind, f.i);
          const ed = editorBox.querySelector('form');
          if (ed && f.kind) {
            const slot = ed.querySelector(`[data-field="${f.field}"]`) ? errorSlot(ed, f.field) : ed.querySelector('.form-error');
            slot.textContent = sentence(e.message);
            slot.hidden = false;
          }
        }
        return;
      }
      if (!to) await load();
    }
  }

  // ---- routes, DNS ----
  function drawRoutes() {
    const rs = draft.routes || [];
    routesBox.replaceChildren(
      rs.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
        h('thead', {}, h('tr', {}, ['Destination', 'Gateway', 'Interface', 'Metric', 'Edit'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rs.map((r, i) => h('tr', { 'data-route': r.destination },
          h('td', { class: 'mono' }, r.destination), h('td', { class: 'mono' }, r.gateway),
          h('td', { class: 'mono' }, r.interface || 'any'), h('td', { class: 'num' }, r.metric ?? '—'),
          h('td', {}, h('button', { type: 'button', class: 'secondary small', onclick: () => openForm('routes', i) }, 'Edit')))))))
        : h('p', { class: 'muted' }, 'No routes of Cairn\'s (a DHCP interface gets its default route from the lease).'),
      status ? h('details', {}, h('summary', {}, 'Routes in the kernel'),
        h('ul', { class: 'mono small' }, status.routes.map((r) => h('li', {},
          `${r.destination}${r.gateway ? ` via ${r.gateway}` : ''}${r.interface ? ` dev ${r.interface}` : ''} (${r.protocol === 'static' ? 'Cairn' : r.protocol})`)))) : null);
  }

  function drawDns() {
    const dns = draft.dns || {};
    const servers = h('input', { type: 'text', value: (dns.servers || []).join(', '), placeholder: '10.10.0.53', autocomplete: 'off' });
    const search = h('input', { type: 'text', value: (dns.search || []).join(', '), placeholder: 'example.org', autocomplete: 'off' });
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { class: 'net-dns', novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      await commit((s) => { s.dns = { servers: list(servers.value), search: list(search.value) }; }, form, 'dns', 0);
    } },
    h('div', { class: 'field-row' },
      field('servers', 'DNS servers (at most 3)', servers, 'Empty: the servers DHCP gives.'),
      field('search', 'Search domains', search)),
    err,
    h('div', { class: 'actions' }, h('span', {}), h('button', { type: 'submit', class: 'secondary' }, 'Save DNS')));
    dnsBox.replaceChildren(form);
  }

  function drawRoles() {
    const roles = draft.roles || {};
    // Only an interface with an address can carry a role (the node's validation says the same).
    const names = interfaces(draft).filter((x) => x.it.dhcp || (x.it.addresses || []).length).map((x) => x.it.name);
    const selects = ROLES.map(([role]) => select([['', 'None'], ...names.map((n) => [n, n])], roles[role] || '', { name: role }));
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { class: 'net-roles', novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      await commit((s) => {
        const next = {};
        ROLES.forEach(([role], i) => { if (selects[i].value) next[role] = selects[i].value; });
        if (Object.keys(next).length) s.roles = next; else delete s.roles;
      }, form, 'roles', 0);
    } },
    h('p', { class: 'muted small' }, 'Which interface carries each of the node\'s cluster networks. Only interfaces with an address are offered.'),
    h('div', { class: 'field-row' }, ROLES.map(([role, label, hint], i) => field(role, label, selects[i], hint))),
    err,
    h('div', { class: 'actions' }, h('span', {}), h('button', { type: 'submit', class: 'secondary' }, 'Save network roles')));
    rolesBox.replaceChildren(form);
  }

  function drawStatus() {
    const ls = status ? status.links : [];
    statusBox.replaceChildren(ls.length === 0 ? emptyState('No links', 'The node reports no network links.')
      : h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
        h('thead', {}, h('tr', {}, ['Name', 'Kind', 'State', 'MTU', 'Addresses'].map((t) => h('th', {}, t)))),
        h('tbody', {}, ls.map((l) => h('tr', { 'data-link': l.name },
          h('td', { class: 'mono' }, l.name, l.managed ? '' : h('span', { class: 'muted small' }, ' (not managed)')),
          h('td', {}, KINDS[`${l.kind}s`] || (l.kind === 'physical' ? 'Link' : l.kind)),
          h('td', {}, !l.up ? badge('neutral', 'Down') : l.carrier ? badge('ok', 'Up') : badge('warning', 'No carrier')),
          h('td', { class: 'num' }, String(l.mtu)),
          h('td', { class: 'mono small' }, l.addresses.length ? l.addresses.join(' ') : '—')))))));
  }

  function drawAdvanced() {
    const text = h('textarea', { rows: 16, spellcheck: 'false', class: 'mono', 'aria-label': 'Network spec (JSON)' });
    text.value = JSON.stringify(draft, null, 2);
    const err = h('p', { class: 'form-error', role: 'alert', hidden: true });
    const form = h('form', { novalidate: true, onsubmit: async (ev) => {
      ev.preventDefault();
      let spec;
      try {
        spec = JSON.parse(text.value);
      } catch (e) {
        err.textContent = `The spec is not valid JSON: ${e.message}`;
        err.hidden = false;
        return;
      }
      await commit((s) => { Object.keys(s).forEach((k) => delete s[k]); Object.assign(s, spec); }, form, 'json', 0);
    } },
    h('p', { class: 'muted small' }, 'The whole configuration as the API takes it (links, bonds, vlans, bridges, routes, dns). Using it replaces the pending changes.'),
    text, err,
    h('div', { class: 'actions' }, h('span', {}), h('button', { type: 'submit', class: 'secondary' }, 'Use this JSON')));
    const wasOpen = advanced.querySelector('details')?.open;
    advanced.replaceChildren(h('details', { class: 'card advanced', open: !!wasOpen }, h('summary', {}, 'Advanced: the configuration as JSON'), form));
  }

  await load();
  // The node's view is re-read every few seconds (carrier, a rollback) unless a form is open.
  const timer = setInterval(() => {
    if (!stopped && !open && !dirty()) load();
  }, 5000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

/** Rename references to interface `from` (members, ports, parents, primary, routes). */
function renameRefs(spec, from, to) {
  (spec.bonds || []).forEach((b) => {
    b.members = (b.members || []).map((m) => (m === from ? to : m));
    if (b.primary === from) b.primary = to;
  });
  (spec.bridges || []).forEach((b) => { b.ports = (b.ports || []).map((p) => (p === from ? to : p)); });
  (spec.vlans || []).forEach((v) => { if (v.parent === from) v.parent = to; });
  (spec.routes || []).forEach((r) => { if (r.interface === from) r.interface = to; });
}
