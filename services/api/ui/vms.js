// VMs: the list with state badges, live statistics (CPU, memory, pool space) and resource
// bars, a create wizard (with an optional installer from the pool's image library), actions
// with progress (tasks), a live serial console (server-sent events), and replicated disks
// (issue 18): turning replication on (the replica node chosen, the initial sync followed as a
// task), each replicated disk's DRBD state, re-read while it is shown, moving the other copy
// to another node (the whole disk copied there; a task, the VM may run), and turning
// replication off (this node's copy kept, the other node's deleted; a task).

import { api, get } from './api.js';
import { badge, emptyState, h, progressBar, replace } from './dom.js';
import { clearErrors, field, formError, sentence, showError } from './form.js';
import { bytes } from './format.js';
import { on } from './events.js';
import { taskLine } from './tasks.js';
import { LIBRARY_SHARE, listImages } from './images.js';

const STATE = {
  running: ['ok', 'Running'],
  paused: ['warning', 'Paused'],
  shutting_down: ['info', 'Shutting down'],
  shut_off: ['neutral', 'Off'],
  crashed: ['critical', 'Crashed'],
  suspended: ['warning', 'Suspended'],
  unknown: ['neutral', 'Unknown'],
};

const GIB = 1024 * 1024 * 1024;

/** How often an open replication view re-reads the disks' state. */
const REPLICATION_POLL_MS = 3000;
/** How long the cluster's status (member or not) is reused before it is read again. */
const CLUSTER_TTL_MS = 10000;
/** DRBD connection states of a sync (or one about to start) in either direction. */
const SYNCING = /^(SyncSource|SyncTarget|PausedSync[ST]|StartingSync[ST]|WFBitMap[ST]|WFSyncUUID)$/;

/**
 * What a replicated disk's state means, as [tone, status words]: not up here, I/O frozen,
 * a sync running, both copies current, the other copy away (only this copy current, or not
 * even this one), or one copy behind.
 */
export function replicationStatus(d) {
  if (d.role == null) return ['warning', 'Not up on this node'];
  if (d.io_frozen) return ['critical', 'I/O frozen: waiting for the cluster'];
  if (d.sync_percent != null || SYNCING.test(d.connection || '')) {
    return ['info', d.sync_percent == null ? 'Syncing' : `Syncing ${Math.floor(d.sync_percent)} %`];
  }
  if (d.healthy) return ['ok', 'Both copies up to date'];
  if (d.connection !== 'Connected') {
    return d.disk_state === 'UpToDate'
      ? ['warning', 'Other copy not connected — only this copy is current']
      : ['critical', 'Other copy not connected — this copy is not current either'];
  }
  if (d.disk_state === 'Diskless') return ['critical', 'This copy has no disk'];
  if (d.disk_state !== 'UpToDate') return ['warning', `This copy is not up to date (${d.disk_state})`];
  return ['warning', `The other copy is not up to date (${d.peer_disk_state || 'unknown'})`];
}

/**
 * Each replicated disk of VM `vm` with its state on this node, as a table (its box scrolls
 * sideways on a narrow screen, so it takes the keyboard's focus).
 */
function replicationTable(vm, disks) {
  const dash = (v) => (v == null ? '—' : v);
  const head = ['Disk', 'Status', 'Replica node', 'Role here', 'Connection', 'This copy', 'Other copy', 'Sync', 'Out of sync'];
  const row = (d) => {
    const [tone, words] = replicationStatus(d);
    return h('tr', { 'data-disk': d.disk, 'data-healthy': String(d.healthy), class: tone === 'critical' || tone === 'warning' ? `row-${tone}` : null },
      h('td', {}, d.disk, h('span', { class: 'muted small mono', title: `DRBD resource ${d.resource}` }, ` ${d.resource}`)),
      h('td', { 'data-status': tone }, badge(tone, words)),
      h('td', { class: 'mono' }, d.replica),
      h('td', {}, dash(d.role)),
      h('td', {}, dash(d.connection)),
      h('td', {}, dash(d.disk_state)),
      h('td', {}, dash(d.peer_disk_state)),
      h('td', { class: 'num' }, d.sync_percent == null ? '—' : `${d.sync_percent.toFixed(1)} %`),
      h('td', { class: 'num', title: `${d.out_of_sync_bytes} bytes` }, bytes(d.out_of_sync_bytes)));
  };
  return h('div', { class: 'table-wrap', tabindex: 0, role: 'region', 'aria-label': `State of the replicated disks of ${vm}` },
    h('table', { class: 'data-table replication' },
      h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, disks.map(row))));
}

/**
 * A VM's live use (the node samples running VMs every 2 s): CPU in percent of its vCPUs, the
 * memory its QEMU process holds on the node (else the guest's memory), and the pool space its
 * disks have allocated. A VM that is not running has no live statistics.
 */
function usage(vm) {
  const st = vm.stats;
  const item = (key, label, value, title) => h('span', { 'data-stat': key, title }, `${label} ${value}`);
  const parts = [];
  if (st) {
    parts.push(item('cpu', 'CPU', st.cpu_percent == null ? '…' : `${st.cpu_percent.toFixed(1)} %`,
      `of ${st.vcpus} vCPU${st.vcpus === 1 ? '' : 's'}, over the last 2 s`));
    const rss = st.memory_rss_bytes;
    parts.push(item('memory', 'memory', rss == null ? bytes(st.memory_bytes) : `${bytes(rss)} used`,
      `guest memory ${bytes(st.memory_bytes)}${rss == null ? '' : `; its QEMU process holds ${bytes(rss)} on the node`}`));
  } else if (['running', 'paused', 'shutting_down'].includes(vm.state)) {
    parts.push(item('cpu', 'CPU', '…', 'the first sample comes within 2 s of the start'));
  } else {
    parts.push(h('span', { 'data-stat': 'cpu' }, 'not running'));
  }
  if (vm.disk_allocated_bytes != null) {
    parts.push(item('disk', 'disk', `${bytes(vm.disk_allocated_bytes)} allocated`, 'pool space its thin disks use'));
  }
  const out = [];
  parts.forEach((p, i) => { if (i) out.push(' · '); out.push(p); });
  return h('p', { class: 'small', 'data-stats': true }, ...out);
}

function stateBadge(s) {
  const [tone, label] = STATE[s] || ['neutral', s];
  return badge(tone, label);
}

/** A labelled resource bar: `used` of `total` with a unit. */
function meter(label, used, total, unit) {
  const pct = total > 0 ? Math.round((used * 100) / total) : 0;
  return h('div', { class: 'task-progress', 'data-meter': label },
    h('span', { class: 'small' }, label),
    progressBar(pct, pct > 90 ? 'critical' : 'info', false, label),
    h('span', { class: 'pct' }, `${used} / ${total} ${unit}`));
}

/** The wizard's steps; `fields` are the API's names of the fields each step holds. */
const WIZARD = [
  { id: 'machine', title: 'Machine', fields: ['name', 'vcpus', 'memory_mib', 'machine', 'autostart'] },
  { id: 'disk', title: 'Disk', fields: ['disks[0].pool', 'disks[0].size_bytes', 'disks[0].bus'] },
  { id: 'installer', title: 'Installer', fields: ['disks[1].file', 'disks[1].pool', 'disks[1].share', 'disks[1].bus', 'boot'] },
  { id: 'network', title: 'Network', fields: ['nics[0].bridge'] },
  { id: 'review', title: 'Review', fields: [] },
];

/**
 * The create wizard: machine (name, vCPUs, memory, type, autostart) → one new thin disk on a
 * pool → optionally an installer from that pool's image library (a CD-ROM, SATA on q35 and
 * IDE on pc, booted first) → an optional NIC on a bridge → review and create. Fields carry the API's names
 * (`disks[0].size_bytes`), so a 422 from the node goes back to the step and field it names;
 * required fields are checked before leaving a step. `pools` are the node's pool names.
 */
function createWizard(pools, onDone) {
  const name = h('input', { type: 'text', maxlength: 24, autocomplete: 'off', spellcheck: 'false' });
  const vcpus = h('input', { type: 'number', min: 1, value: 1 });
  const memory = h('input', { type: 'number', min: 16, value: 512 });
  const machine = h('select', {}, h('option', { value: 'q35' }, 'q35 (PCIe)'), h('option', { value: 'pc' }, 'pc (i440fx, IDE)'));
  const autostart = h('input', { type: 'checkbox' });
  const pool = pools.length
    ? h('select', {}, pools.map((p) => h('option', { value: p }, p)))
    : h('input', { type: 'text', value: 'tank', autocomplete: 'off' });
  const size = h('input', { type: 'number', min: 1, step: 'any', value: 10 });
  const bus = h('select', {}, ['virtio', 'sata', 'ide'].map((b) => h('option', { value: b }, b)));
  const bridge = h('input', { type: 'text', placeholder: 'none', autocomplete: 'off' });
  const NO_ISO = 'None: boot from the new disk';
  const iso = h('select', {}, h('option', { value: '' }, NO_ISO));
  const isoNote = h('p', { class: 'muted small', 'data-library-note': true });
  const sections = {
    machine: [
      field('name', 'Name', name, 'Lowercase letters, digits and -, starting with a letter.'),
      field('vcpus', 'vCPUs', vcpus),
      field('memory_mib', 'Memory (MiB)', memory),
      field('machine', 'Machine', machine),
      field('autostart', 'Start when the node boots', autostart)],
    disk: [
      field('disks[0].pool', 'Pool', pool, pools.length ? null : 'No pool is listed: create one under Disks & pools.'),
      field('disks[0].size_bytes', 'Disk size (GiB)', size, 'Thin: uses pool space only when the guest writes.'),
      field('disks[0].bus', 'Disk bus', bus)],
    installer: [field('disks[1].file', 'Boot an installer from the image library', iso), isoNote],
    network: [field('nics[0].bridge', 'Bridge for a NIC', bridge, 'Leave empty for no network.')],
    review: [h('dl', { class: 'review' })],
  };
  const steps = WIZARD.map((st) => h('fieldset', { class: 'wizard-step', 'data-step': st.id, hidden: true },
    h('legend', { class: 'visually-hidden' }, st.title), ...sections[st.id]));
  const stepper = h('ol', { class: 'stepper', 'aria-label': 'New VM steps' });
  const counter = h('p', { class: 'step-count' });
  const back = h('button', { type: 'button', class: 'secondary' }, 'Back');
  const next = h('button', { type: 'submit', class: 'primary' }, 'Next');
  const cancel = h('button', { type: 'button', class: 'link small' }, 'Cancel');
  const form = h('form', { class: 'card wizard', 'data-form': 'vm-create', novalidate: true },
    h('div', { class: 'section-head' }, h('h2', {}, 'New VM'), cancel),
    stepper, counter, ...steps, formError(),
    h('div', { class: 'actions' }, back, next));
  let at = 0;

  const spec = () => {
    const s = {
      name: name.value.trim(),
      vcpus: Number(vcpus.value),
      memory_mib: Number(memory.value),
      machine: machine.value,
      autostart: autostart.checked,
      disks: [{ source: 'new', pool: pool.value.trim(), size_bytes: Math.round(Number(size.value) * GIB / 512) * 512, bus: bus.value }],
      nics: bridge.value.trim() ? [{ bridge: bridge.value.trim() }] : [],
    };
    if (iso.value) {
      // A CD-ROM needs SATA or IDE (IDE only on pc); it boots first, then the disk.
      s.disks.push({ source: 'iso', pool: s.disks[0].pool, share: LIBRARY_SHARE, file: iso.value, bus: s.machine === 'pc' ? 'ide' : 'sata' });
      s.boot = ['cdrom', 'disk'];
    }
    return s;
  };

  /** Offer the images of the pool chosen on the disk step (reloaded when it changed). */
  let isoPool = null;
  async function loadImages() {
    const p = pool.value.trim();
    if (p === isoPool) return;
    isoPool = p;
    const keep = iso.value;
    replace(iso, h('option', { value: '' }, NO_ISO));
    isoNote.textContent = `Loading the image library of pool ${p}…`;
    try {
      const lib = await listImages(p);
      if (isoPool !== p) return;
      lib.images.forEach((img) => iso.append(h('option', { value: img.name }, `${img.name} (${bytes(img.size_bytes)})`)));
      if (lib.images.some((img) => img.name === keep)) iso.value = keep;
      replace(isoNote, lib.images.length
        ? `The images of pool ${p}'s library: the one chosen is attached as a CD-ROM and boots first.`
        : [`Pool ${p}'s image library is empty: upload an installer on the `, h('a', { href: '#/images' }, 'Images'), ' page, or go on without one.']);
    } catch (err) {
      isoPool = null;
      isoNote.textContent = sentence(err.message);
    }
  }

  function go(i) {
    at = i;
    steps.forEach((el, j) => { el.hidden = j !== i; });
    replace(stepper, WIZARD.map((st, j) => h('li', {
      class: j < i ? 'done' : j === i ? 'current' : '',
      'aria-current': j === i ? 'step' : null,
    }, h('span', { class: 'dot' }, j < i ? '✓' : String(j + 1)), h('span', { class: 'label' }, st.title))));
    counter.textContent = `Step ${i + 1} of ${WIZARD.length} · ${WIZARD[i].title}`;
    back.hidden = i === 0;
    next.textContent = i === WIZARD.length - 1 ? 'Create VM' : 'Next';
    if (WIZARD[i].id === 'review') {
      const v = spec();
      const row = (label, value, step) => h('div', { class: 'review-row' }, h('dt', {}, label),
        h('dd', {}, h('span', {}, value), h('button', { type: 'button', class: 'link', onclick: () => go(step) }, 'Change')));
      replace(steps[i].querySelector('dl'),
        row('Name', v.name, 0),
        row('Machine', `${v.vcpus} vCPU · ${v.memory_mib} MiB · ${v.machine}${v.autostart ? ' · autostart' : ''}`, 0),
        row('Disk', `${size.value} GiB on pool ${v.disks[0].pool} (${v.disks[0].bus})`, 1),
        row('Installer', v.disks[1] ? `${v.disks[1].file} as a CD-ROM (${v.disks[1].bus}), booted first` : 'none', 2),
        row('Network', v.nics.length ? `a NIC on ${v.nics[0].bridge}` : 'none', 3));
    }
    if (WIZARD[i].id === 'installer') loadImages();
    steps[i].querySelector('input, select')?.focus();
  }

  /** The step holding API field `f` (exact, else the first field under it: `disks` → the disk step). */
  function stepOf(f) {
    const i = WIZARD.findIndex((st) => st.fields.includes(f));
    if (i >= 0) return [i, f];
    const j = WIZARD.findIndex((st) => st.fields.some((x) => x.startsWith(`${f}[`) || x.startsWith(`${f}.`)));
    return j >= 0 ? [j, WIZARD[j].fields.find((x) => x.startsWith(f))] : [WIZARD.length - 1, null];
  }

  function fail(f, message) {
    const [i, target] = f ? stepOf(f) : [at, null];
    go(i);
    showError(form, { message, field: target });
  }

  /** What the current step still needs before Next (the node checks the rest). */
  function missing() {
    const id = WIZARD[at].id;
    if (id === 'machine') {
      if (!name.value.trim()) return ['name', 'A name is required'];
      if (!(Number(vcpus.value) >= 1)) return ['vcpus', 'At least 1 vCPU'];
      if (!(Number(memory.value) >= 16)) return ['memory_mib', 'At least 16 MiB'];
    }
    if (id === 'disk') {
      if (!pool.value.trim()) return ['disks[0].pool', 'Choose a pool'];
      if (!(Number(size.value) > 0)) return ['disks[0].size_bytes', 'A size in GiB above 0'];
    }
    return null;
  }

  back.addEventListener('click', () => { clearErrors(form); go(Math.max(0, at - 1)); });
  cancel.addEventListener('click', () => form.remove());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const gap = missing();
    if (gap) {
      fail(...gap);
      return;
    }
    if (at < WIZARD.length - 1) {
      go(at + 1);
      return;
    }
    next.disabled = true;
    try {
      const task = await api('POST', '/api/v1/vms', { body: spec(), signedIn: true });
      form.replaceWith(taskLine(task, onDone));
    } catch (err) {
      next.disabled = false;
      if (err.field) fail(err.field, err.message);
      else showError(form, err);
    }
  });
  go(0);
  return form;
}

/** The live console of `vm` in a <pre>; returns [element, close]. */
function consoleView(vm) {
  const pre = h('pre', { class: 'console', 'data-console': vm, 'aria-live': 'off', tabindex: 0 });
  const src = new EventSource(`/api/v1/vms/${encodeURIComponent(vm)}/console/stream`);
  src.addEventListener('console', (ev) => {
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(ev.data);
    // Keep at most ~64 KiB on the page.
    if (pre.textContent.length > 65536) pre.textContent = pre.textContent.slice(-65536);
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  });
  return [pre, () => src.close()];
}

/** Render the VMs section into `main`; returns a cleanup function. */
export async function renderVms(main) {
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  const newButton = h('button', { type: 'button', class: 'primary small' }, 'New VM');
  const slot = h('div', {});
  main.append(h('div', { class: 'section-head' }, h('h1', {}, 'VMs'), newButton), slot, body);
  let closeConsole = null;
  let openConsole = null;
  // Each VM's action line (a task's progress, the clone or delete form, the console) lives
  // across reloads: the list is redrawn every 3 s and must not drop them.
  const lines = new Map();
  const lineOf = (name) => {
    if (!lines.has(name)) lines.set(name, h('div', { class: 'vm-line' }));
    return lines.get(name);
  };

  // Whether this node is a cluster member (replication needs one): read with the list, at
  // most every CLUSTER_TTL_MS. `{ mode }`, or `{ error }` when the cluster cannot be asked.
  let cluster = null;
  let clusterAt = 0;
  async function clusterStatus() {
    if (cluster && Date.now() - clusterAt < CLUSTER_TTL_MS) return cluster;
    try {
      cluster = { mode: (await get('/api/v1/cluster')).mode };
    } catch (err) {
      cluster = { error: sentence(err.message) };
    }
    clusterAt = Date.now();
    return cluster;
  }
  // The VMs whose replication is being turned on, off, and whose replica is being moved
  // (their task runs in their line).
  const replicating = new Set();
  const unreplicating = new Set();
  const moving = new Set();
  // Each VM as the list last read it, by name (a replication view follows its VM's state).
  const latest = new Map();
  // The open replication views, by VM: each re-reads its VM's state until closed.
  const views = new Map();
  const closeView = (name) => {
    views.get(name)?.stop();
    views.delete(name);
  };

  newButton.addEventListener('click', async () => {
    let pools = [];
    try {
      pools = (await get('/api/v1/pools')).pools.map((p) => p.name);
    } catch {
      // No storage service: the wizard asks for the pool by name.
    }
    slot.replaceChildren(createWizard(pools, () => load()));
  });

  async function act(vm, line, method, path, bodyJson, isTask) {
    try {
      const r = await api(method, path, { body: bodyJson, signedIn: true });
      if (openConsole === vm.name && isTask) {
        closeConsole();
        closeConsole = null;
        openConsole = null;
      }
      if (isTask) line.replaceChildren(taskLine(r, () => load()));
      else load();
    } catch (err) {
      line.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
    }
  }

  /**
   * The state of `vm`'s replicated disks in its line (after `keep`, e.g. the task that turned
   * replication on), re-read every REPLICATION_POLL_MS while it is shown: Close, another
   * action in the line, the VM gone or the page left stop it.
   */
  function openReplication(vm, line, keep = []) {
    closeView(vm);
    const state = h('div', { 'aria-live': 'polite' }, h('p', { class: 'loading' }, 'Reading the state of the copies…'));
    const close = h('button', { type: 'button', class: 'link small', 'data-action': 'Close replication' }, 'Close');
    // Moving the replica and turning replication off: each disabled with the reason while it
    // cannot be (the VM runs, for turning it off…), following the VM's state as the list is
    // read again.
    const move = h('button', { type: 'button', class: 'secondary small', 'data-action': 'Move replica…' }, 'Move replica…');
    const moveWhy = h('p', { class: 'muted small', id: `move-replica-why-${vm}`, 'data-move-why': vm, hidden: true });
    const off = h('button', { type: 'button', class: 'secondary danger small', 'data-action': 'Turn replication off…' }, 'Turn replication off…');
    const offWhy = h('p', { class: 'muted small', id: `unreplicate-why-${vm}`, 'data-unreplicate-why': vm, hidden: true });
    const gate = (button, why, reason) => {
      button.disabled = Boolean(reason);
      why.textContent = reason || '';
      why.hidden = !reason;
      if (reason) button.setAttribute('aria-describedby', why.id);
      else button.removeAttribute('aria-describedby');
    };
    const follow = (v) => {
      gate(move, moveWhy, v ? cannotMove(v) : 'The VM is being read again.');
      gate(off, offWhy, v ? cannotUnreplicate(v) : 'The VM is being read again.');
    };
    move.addEventListener('click', () => {
      const v = latest.get(vm);
      if (v && !cannotMove(v)) openMoveReplica(v, line);
    });
    off.addEventListener('click', () => {
      const v = latest.get(vm);
      if (v && !cannotUnreplicate(v)) openUnreplicate(v, line);
    });
    follow(latest.get(vm));
    const view = h('section', { class: 'vm-replication', 'data-replication': vm, 'aria-label': `Replicated disks of ${vm}` },
      h('div', { class: 'console-head' },
        h('p', { class: 'muted small' }, `Replicated disks of ${vm}: their state on this node, read again every ${REPLICATION_POLL_MS / 1000} s`),
        close),
      state,
      h('div', { class: 'row-actions vm-actions' }, move, off),
      moveWhy,
      offWhy);
    let timer = null;
    let stopped = false;
    const stop = () => {
      stopped = true;
      clearTimeout(timer);
    };
    const read = async () => {
      // Replaced by another action, or the page was left: stop without being told.
      if (stopped || !view.isConnected) {
        if (views.get(vm)?.view === view) closeView(vm);
        return;
      }
      try {
        const r = await get(`/api/v1/vms/${encodeURIComponent(vm)}/replication`);
        if (stopped) return;
        replace(state, r.disks.length ? replicationTable(vm, r.disks)
          : h('p', { class: 'muted' }, `No disk of ${vm} is replicated.`));
      } catch (err) {
        if (stopped) return;
        replace(state, h('p', { class: 'form-error' }, sentence(err.message)));
      }
      timer = setTimeout(read, REPLICATION_POLL_MS);
    };
    close.addEventListener('click', () => {
      closeView(vm);
      line.replaceChildren();
    });
    views.set(vm, { stop, view, follow });
    line.replaceChildren(...keep, view);
    read();
  }

  /**
   * The Turn replication off dialog of shut-off VM `vm` in its line: which copy stays (this
   * node's, the one that can be kept now; the other holder's disabled with the reason), what
   * happens, then DELETE {keep} and the task's progress; once it ended, the list is read again
   * (the badges and the Replication action go).
   */
  async function openUnreplicate(vm, line) {
    const base = `/api/v1/vms/${encodeURIComponent(vm.name)}`;
    closeView(vm.name);
    line.replaceChildren(h('p', { class: 'loading' }, 'Asking the cluster which node this is…'));
    let me;
    try {
      me = (await get('/api/v1/cluster')).this_node;
    } catch (err) {
      line.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
      return;
    }
    if (!me) {
      line.replaceChildren(h('p', { class: 'form-error' }, 'This node is not a cluster member: replication can be turned off on a member only.'));
      return;
    }
    const replicated = [];
    vm.disks.forEach((d, i) => { if (d.replication) replicated.push({ ...d, name: `disk${i}` }); });
    const others = [...new Set(replicated.map((d) => d.replication.replica))].filter((n) => n !== me);
    const other = others.join(' and ') || 'the other node';
    const holder = (node, note, can) => h('label', { class: 'check', 'data-keep': node },
      h('input', { type: 'radio', name: 'keep', value: node, checked: can, disabled: !can }),
      h('span', {}, h('strong', {}, `${node}:`), h('span', { class: 'hint' }, ` ${note}`)));
    const holders = h('fieldset', { class: 'field', 'data-field': 'keep' },
      h('legend', {}, 'Copy to keep'),
      holder(me, 'keep this node\'s copy: the VM stays here', true),
      others.map((n) => holder(n, `keeping ${n}'s copy would move the VM there: not possible yet`, false)),
      h('p', { class: 'field-error', role: 'alert', hidden: true }));
    const submit = h('button', { type: 'submit', class: 'primary danger small' }, 'Turn replication off');
    const cancel = h('button', { type: 'button', class: 'secondary small' }, 'Cancel');
    const list = replicated.map((d) => `${d.name} (${d.pool}/${d.volume})`).join(', ');
    const form = h('form', { class: 'card mini-form', 'data-form': 'unreplicate', novalidate: true },
      h('h3', {}, `Turn replication off for ${vm.name}`),
      h('p', { 'data-consequence': true }, `The copy on ${other} of ${replicated.length === 1 ? 'its replicated disk' : `each of its ${replicated.length} replicated disks`} `
        + `(${list}) is deleted. From then on, ${vm.name} runs from this node's copy alone: with no second copy, `
        + `it cannot fail over to another node if ${me} fails. The VM stays shut down until this is done; `
        + 'replication can be turned on again later (with a new initial sync).'),
      holders,
      formError(),
      h('div', { class: 'actions' }, submit, cancel));
    cancel.addEventListener('click', () => openReplication(vm.name, line));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const keep = holders.querySelector('input:checked')?.value || me;
      submit.disabled = true;
      try {
        const task = await api('DELETE', `${base}/replication`, { body: { keep }, signedIn: true });
        unreplicating.add(vm.name);
        // Called once the task ended (a microtask later: it may have ended already).
        const finished = () => {
          unreplicating.delete(vm.name);
          load();
        };
        const progress = taskLine(task, () => Promise.resolve().then(finished));
        line.replaceChildren(progress);
        load();
      } catch (err) {
        submit.disabled = false;
        showError(form, err);
      }
    });
    line.replaceChildren(form);
    (holders.querySelector('input:checked') || cancel).focus();
  }

  /**
   * The Move replica dialog of VM `vm` (it may run) in its line: the node to hold the other
   * copy from now on, among /targets (the node holding it now disabled with that said, the
   * ineligible ones disabled with the node's reason), what happens, then POST {to} and the
   * task's progress (the whole disk copied to the new node); once it succeeded, the disks'
   * state under its last line, and the list read again (the badges name the new node).
   */
  async function openMoveReplica(vm, line) {
    const base = `/api/v1/vms/${encodeURIComponent(vm.name)}`;
    closeView(vm.name);
    line.replaceChildren(h('p', { class: 'loading' }, 'Asking the cluster which nodes can take the copy…'));
    let t;
    try {
      t = await get(`${base}/targets`);
    } catch (err) {
      line.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
      return;
    }
    const replicated = [];
    vm.disks.forEach((d, i) => { if (d.replication) replicated.push({ ...d, name: `disk${i}` }); });
    // The node(s) holding the other copy now: listed (first, if /targets leaves one out), never
    // a choice.
    const holders = [...new Set(replicated.map((d) => d.replication.replica))];
    const from = holders.join(' and ') || 'the other node';
    const listed = [...holders.filter((n) => !t.targets.some((x) => x.node === n)).map((n) => ({ node: n, eligible: false })),
      ...t.targets];
    const eligible = listed.filter((n) => n.eligible && !holders.includes(n.node));
    const choice = (n) => {
      const now = holders.includes(n.node);
      const can = n.eligible && !now;
      const note = now ? 'holds the other copy now' : can ? 'can take the copy' : n.reason;
      return h('label', { class: 'check', 'data-to': n.node },
        h('input', { type: 'radio', name: 'to', value: n.node, checked: can && eligible.length === 1, disabled: !can }),
        h('span', {}, h('strong', {}, `${n.node}:`), note ? h('span', { class: 'hint' }, ` ${note}`) : null));
    };
    const nodes = h('fieldset', { class: 'field', 'data-field': 'to' },
      h('legend', {}, 'New replica node'),
      listed.map(choice),
      h('p', { class: 'field-error', role: 'alert', hidden: true }));
    const submit = h('button', { type: 'submit', class: 'primary small', disabled: !eligible.length }, 'Move replica');
    const cancel = h('button', { type: 'button', class: 'secondary small' }, 'Cancel');
    const none = listed.some((n) => !holders.includes(n.node))
      ? 'No other node can take the copy now: the reason is given for each.'
      : 'This cluster has no other node to move the copy to: add one on the Cluster page first.';
    const list = replicated.map((d) => `${d.name} (${d.pool}/${d.volume})`).join(', ');
    const form = h('form', { class: 'card mini-form', 'data-form': 'move-replica', novalidate: true },
      h('h3', {}, `Move the replica of ${vm.name}`),
      h('p', { 'data-consequence': true }, `The other copy of ${replicated.length === 1 ? 'its replicated disk' : `each of its ${replicated.length} replicated disks`} `
        + `(${list}) moves from ${from} to the chosen node: the whole disk is copied there over the replication network. `
        + 'Until that copy ends only this node\'s copy is current: no failover meanwhile, so if this node fails, '
        + `${vm.name} cannot start on another node. ${from}'s copy is not kept as a fallback: it is deleted as the move starts. `
        + `${vm.name} may keep running.`),
      nodes,
      eligible.length ? null : h('p', { class: 'notice', 'data-no-target': true }, none),
      formError(),
      h('div', { class: 'actions' }, submit, cancel));
    // An error about the choice marks the choices that can be made, and focuses one.
    const markChoices = () => {
      nodes.querySelectorAll('input').forEach((i) => { if (i.disabled) i.removeAttribute('aria-invalid'); else i.setAttribute('aria-invalid', 'true'); });
      (nodes.querySelector('input:checked') || nodes.querySelector('input:not(:disabled)'))?.focus();
    };
    cancel.addEventListener('click', () => openReplication(vm.name, line));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const to = nodes.querySelector('input:checked')?.value;
      if (!to) {
        showError(form, { field: 'to', message: 'choose the node to move the copy to' });
        markChoices();
        return;
      }
      submit.disabled = true;
      try {
        const task = await api('POST', `${base}/replication/move`, { body: { to }, signedIn: true });
        moving.add(vm.name);
        // Called once the task ended (a microtask later: it may have ended already).
        const finished = (done) => {
          moving.delete(vm.name);
          // Moved: the disks' state (syncing to the new node, or done) under the task's last line.
          if (done.state === 'succeeded' && progress.isConnected) openReplication(vm.name, line, [progress]);
          load();
        };
        const progress = taskLine(task, (done) => Promise.resolve().then(() => finished(done)));
        line.replaceChildren(progress);
        load();
      } catch (err) {
        submit.disabled = false;
        showError(form, err);
        if (err.field === 'to') markChoices();
      }
    });
    line.replaceChildren(form);
    (nodes.querySelector('input:checked') || nodes.querySelector('input:not(:disabled)') || cancel).focus();
  }

  /**
   * The Replicate… dialog of shut-off VM `vm` in its line: the replica node (automatic, or an
   * eligible node of /targets; the others shown disabled with the reason), what happens, then
   * POST and the task's progress; once done, the disks' state.
   */
  async function openReplicate(vm, line) {
    const base = `/api/v1/vms/${encodeURIComponent(vm.name)}`;
    closeView(vm.name);
    line.replaceChildren(h('p', { class: 'loading' }, 'Asking the cluster which nodes can hold the copies…'));
    let t;
    try {
      t = await get(`${base}/targets`);
    } catch (err) {
      line.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
      return;
    }
    const eligible = t.targets.filter((n) => n.eligible);
    const choice = (value, label, note, disabled) => h('label', { class: 'check', 'data-replica': value || 'automatic' },
      h('input', { type: 'radio', name: 'replica', value, checked: !value && !disabled, disabled }),
      h('span', {}, h('strong', {}, label), note ? h('span', { class: 'hint' }, ` ${note}`) : null));
    const nodes = h('fieldset', { class: 'field', 'data-field': 'replica' },
      h('legend', {}, 'Replica node'),
      choice('', 'Automatic:', 'the node with the most free space', !eligible.length),
      t.targets.map((n) => choice(n.node, `${n.node}:`, n.eligible ? 'can hold the copies' : n.reason, !n.eligible)),
      h('p', { class: 'field-error', role: 'alert', hidden: true }));
    const disks = vm.disks.filter((d) => d.kind !== 'cdrom');
    const submit = h('button', { type: 'submit', class: 'primary small', disabled: !eligible.length }, 'Replicate');
    const cancel = h('button', { type: 'button', class: 'secondary small' }, 'Cancel');
    const none = t.targets.length
      ? 'No other node can hold the copies now: the reason is given for each.'
      : 'This cluster has no other node: add one on the Cluster page first.';
    const form = h('form', { class: 'card mini-form', 'data-form': 'replicate', novalidate: true },
      h('h3', {}, `Replicate the disks of ${vm.name}`),
      h('p', {}, `Each of its ${disks.length === 1 ? 'disk' : `${disks.length} disks`} (${disks.map((d) => `${d.pool}/${d.volume}`).join(', ')}) `
        + 'gets a synchronous copy on the chosen node: a write is done only once both copies have it. '
        + `${vm.name} must stay shut down until the copies are set up, and the initial sync copies each whole disk over the replication network.`),
      nodes,
      eligible.length ? null : h('p', { class: 'notice', 'data-no-replica': true }, none),
      formError(),
      h('div', { class: 'actions' }, submit, cancel));
    cancel.addEventListener('click', () => line.replaceChildren());
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      const replica = nodes.querySelector('input:checked')?.value || '';
      submit.disabled = true;
      try {
        const task = await api('POST', `${base}/replication`, { body: replica ? { replica } : {}, signedIn: true });
        replicating.add(vm.name);
        // Called once the task ended (a microtask later: it may have ended already).
        const finished = (done) => {
          replicating.delete(vm.name);
          // Turned on: the disks' state right under the task's last line.
          if (done.state === 'succeeded' && progress.isConnected) openReplication(vm.name, line, [progress]);
          load();
        };
        const progress = taskLine(task, (done) => Promise.resolve().then(() => finished(done)));
        line.replaceChildren(progress);
        load();
      } catch (err) {
        submit.disabled = false;
        showError(form, err);
      }
    });
    line.replaceChildren(form);
    (nodes.querySelector('input:checked') || cancel).focus();
  }

  /**
   * Why `vm`'s replication cannot be turned on now (null: it can): a task turning it on runs,
   * the node is not a cluster member, the VM runs, or it has no disk.
   */
  function cannotReplicate(vm, cl) {
    if (replicating.has(vm.name)) return 'Replication is being turned on: the progress is shown below.';
    if (cl.error) return cl.error;
    if (cl.mode === 'standalone') return 'This node is not in a cluster: create or join one on the Cluster page to replicate disks.';
    if (cl.mode !== 'member') return 'This node is still joining its cluster: replication can be turned on once it is a member.';
    if (!['shut_off', 'crashed'].includes(vm.state)) return 'Shut the VM down to turn replication on.';
    if (!vm.disks.some((d) => d.kind !== 'cdrom')) return 'This VM has no disk to replicate (CD-ROMs are not).';
    return null;
  }

  /**
   * Why `vm`'s replication cannot be turned off now (null: it can): a task turning it off
   * runs, the VM runs, or none of its disks is replicated (any more).
   */
  function cannotUnreplicate(vm) {
    if (unreplicating.has(vm.name)) return 'Replication is being turned off: the progress is shown below.';
    if (moving.has(vm.name)) return 'The replica is being moved: wait until that is done.';
    if (!['shut_off', 'crashed'].includes(vm.state)) return 'Shut the VM down to turn replication off.';
    if (!vm.disks.some((d) => d.replication)) return `No disk of ${vm.name} is replicated.`;
    return null;
  }

  /**
   * Why `vm`'s replica cannot be moved now (null: it can; the VM may run): a move or a
   * replication being turned off runs, the node is not a cluster member (as last read), or
   * none of its disks is replicated (any more).
   */
  function cannotMove(vm) {
    if (moving.has(vm.name)) return 'The replica is being moved: the progress is shown below.';
    if (unreplicating.has(vm.name)) return 'Replication is being turned off: the replica cannot be moved.';
    if (cluster?.mode === 'standalone') return 'This node is not in a cluster: the replica can be moved only between members of one.';
    if (cluster?.mode && cluster.mode !== 'member') return 'This node is still joining its cluster: the replica can be moved once it is a member.';
    if (!vm.disks.some((d) => d.replication)) return `No disk of ${vm.name} is replicated.`;
    return null;
  }

  function vmCard(vm, cl) {
    const line = lineOf(vm.name);
    const base = `/api/v1/vms/${encodeURIComponent(vm.name)}`;
    const running = vm.state === 'running' || vm.state === 'paused' || vm.state === 'shutting_down';
    const btn = (label, fn, cls = 'secondary small') => h('button', { type: 'button', class: cls, 'data-action': label, onclick: fn }, label);
    const buttons = running
      ? [btn('Shut down', () => act(vm, line, 'POST', `${base}/shutdown`, {}, true)),
        btn('Power off', () => act(vm, line, 'POST', `${base}/off`, {}, false)),
        btn('Reboot', () => act(vm, line, 'POST', `${base}/reboot`, {}, false))]
      : [btn('Start', () => act(vm, line, 'POST', `${base}/start`, {}, true), 'primary small')];
    buttons.push(btn('Clone', () => {
      const input = h('input', { type: 'text', maxlength: 24 });
      const f = h('form', { class: 'inline-form' }, field('name', 'Name of the clone', input), formError(),
        h('button', { type: 'submit', class: 'primary small' }, 'Clone'));
      f.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        clearErrors(f);
        try {
          const t = await api('POST', `${base}/clone`, { body: { name: input.value.trim() }, signedIn: true });
          f.replaceWith(taskLine(t, () => load()));
        } catch (err) { showError(f, err); }
      });
      line.replaceChildren(f);
    }));
    buttons.push(btn('Console', () => {
      if (closeConsole) closeConsole();
      if (openConsole) lineOf(openConsole).replaceChildren();
      const [pre, close] = consoleView(vm.name);
      closeConsole = close;
      openConsole = vm.name;
      const closeBtn = h('button', { type: 'button', class: 'link small', 'data-action': 'Close console' }, 'Close console');
      closeBtn.addEventListener('click', () => {
        close();
        closeConsole = null;
        openConsole = null;
        line.replaceChildren();
      });
      line.replaceChildren(h('div', { class: 'console-head' },
        h('p', { class: 'muted small' }, `Serial console of ${vm.name} (live)`), closeBtn), pre);
    }));
    buttons.push(btn('Other nodes', async () => {
      // Which other nodes of the cluster could take this VM (failover, migration,
      // replica), and the reason for each one that could not.
      line.replaceChildren(h('p', { class: 'loading' }, 'Asking the cluster…'));
      try {
        const t = await get(`${base}/targets`);
        const rows = t.targets.map((n) => h('li', { 'data-target': n.node, 'data-eligible': String(n.eligible) },
          h('strong', {}, n.node), ' — ', n.eligible ? 'can take this VM' : n.reason));
        line.replaceChildren(h('div', { class: 'stack', 'data-targets': vm.name },
          h('p', { class: 'muted small' }, t.targets.length
            ? `Other nodes for ${vm.name}${t.bridges.length ? ` (it uses ${t.bridges.join(', ')})` : ''}:`
            : 'This node is not in a cluster with other nodes: no other node could take this VM.'),
          t.targets.length ? h('ul', { class: 'plain' }, ...rows) : null));
      } catch (err) {
        line.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
      }
    }));
    // Replicated disks: their state (re-read while shown, with Move replica… and Turn
    // replication off…; not while the replica moves or replication is being turned off, whose
    // progress is in the line); else Replicate… or why not.
    const replicated = vm.disks.filter((d) => d.replication);
    let whyNot = null;
    if (replicated.length) {
      const b = btn('Replication', () => openReplication(vm.name, line));
      const busy = unreplicating.has(vm.name) ? 'Replication is being turned off: the progress is shown below.'
        : moving.has(vm.name) ? 'The replica is being moved: the progress is shown below.' : null;
      if (busy) {
        b.disabled = true;
        b.setAttribute('aria-describedby', `replicate-why-${vm.name}`);
        whyNot = h('p', { class: 'muted small', id: `replicate-why-${vm.name}`, 'data-replicate-why': vm.name }, busy);
      }
      buttons.push(b);
    } else {
      const reason = cannotReplicate(vm, cl);
      const b = btn('Replicate…', () => openReplicate(vm, line));
      if (reason) {
        b.disabled = true;
        b.setAttribute('aria-describedby', `replicate-why-${vm.name}`);
        whyNot = h('p', { class: 'muted small', id: `replicate-why-${vm.name}`, 'data-replicate-why': vm.name }, reason);
      }
      buttons.push(b);
    }
    // An open replication view follows the VM (Turn replication off… enabled or not).
    views.get(vm.name)?.follow(vm);
    if (!running) {
      buttons.push(btn('Delete', () => {
        const input = h('input', { type: 'text' });
        const disks = h('input', { type: 'checkbox' });
        const f = h('form', { class: 'inline-form' },
          field('confirm_name', `Type ${vm.name} to delete this VM`, input),
          field('delete_disks', 'Delete its disks and snapshots too', disks), formError(),
          h('button', { type: 'submit', class: 'primary danger small' }, 'Delete'));
        f.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          clearErrors(f);
          try {
            await api('DELETE', base, { body: { confirm_name: input.value.trim(), delete_disks: disks.checked }, signedIn: true });
            load();
          } catch (err) {
            showError(f, err);
            // Refused because its disks are replicated: the way to turn that off, right here.
            if (err.code === 'wrong_state' && replicated.length) {
              const go = h('button', { type: 'button', class: 'secondary danger small', 'data-action': 'Turn replication off…' }, 'Turn replication off…');
              go.addEventListener('click', () => openUnreplicate(latest.get(vm.name) || vm, line));
              f.querySelector('[data-delete-hint]')?.remove();
              f.append(h('p', { class: 'small', 'data-delete-hint': vm.name },
                `${vm.name} can be deleted once its replication is off: `, go));
            }
          }
        });
        line.replaceChildren(f);
      }));
    }
    const disks = [];
    vm.disks.forEach((d, i) => {
      if (i) disks.push(', ');
      disks.push(`${d.kind === 'cdrom' ? 'CD-ROM' : 'disk'} ${d.pool}/${d.volume}${d.origin ? ` (clone of ${d.origin})` : ''}`);
      if (d.replication) {
        disks.push(' ', h('span', { 'data-replicated': `disk${i}`, title: `DRBD resource ${d.replication.resource} (${d.path})` },
          badge('info', `replicated on ${d.replication.replica}`)));
      }
    });
    return h('section', { class: 'card', 'data-vm': vm.name, 'data-state': vm.state },
      h('div', { class: 'task-head' }, h('p', { class: 'row-title' }, vm.name), stateBadge(vm.state)),
      h('p', { class: 'muted small' },
        `${vm.vcpus} vCPU · ${vm.memory_mib} MiB · ${vm.cpu_model} · ${vm.machine}${vm.autostart ? ' · autostart' : ''}`),
      usage(vm),
      h('p', { class: 'muted small', 'data-disks': true }, disks.length ? disks : 'no disks'),
      vm.nics.length ? h('p', { class: 'muted small' }, vm.nics.map((n) => `${n.bridge} ${n.mac}`).join(', ')) : null,
      h('div', { class: 'row-actions vm-actions' }, ...buttons),
      whyNot,
      line);
  }

  async function load() {
    let res;
    let cl;
    try {
      [res, cl] = await Promise.all([get('/api/v1/vms'), clusterStatus()]);
    } catch (err) {
      body.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
      return;
    }
    const r = res.resources;
    const node = h('section', { class: 'card', 'data-resources': true },
      h('h2', {}, 'This node'),
      h('p', { class: 'muted small' },
        `${r.accelerator === 'kvm' ? 'KVM (hardware virtualization)' : 'TCG (emulation: no VT-x/AMD-V)'} · libvirt ${r.libvirt_connected ? 'up' : 'not reachable'}`),
      meter('vCPUs running', r.vcpus_running, r.cpus, 'CPUs'),
      meter('Memory running', r.memory_running_mib, r.memory_mib, 'MiB'),
      h('p', { class: 'muted small' }, `Defined VMs would use ${r.vcpus_defined} vCPUs and ${r.memory_defined_mib} MiB; ${r.memory_free_mib} MiB free for starting more.`));
    if (closeConsole && !res.vms.some((v) => v.name === openConsole)) {
      closeConsole();
      closeConsole = null;
      openConsole = null;
    }
    for (const name of [...lines.keys()]) {
      if (!res.vms.some((v) => v.name === name)) {
        lines.delete(name);
        closeView(name);
      }
    }
    latest.clear();
    for (const v of res.vms) latest.set(v.name, v);
    body.replaceChildren(node, ...(res.vms.length
      ? res.vms.map((v) => vmCard(v, cl))
      : [emptyState('No VMs yet', 'Create a VM with a new thin disk on a pool, or clone one.')]));
  }

  await load();
  const timer = setInterval(() => load(), 3000);
  const off = on('task', (t) => { if (t.state !== 'running' && /^vm\./.test(t.kind)) load(); });
  return () => {
    clearInterval(timer);
    off();
    if (closeConsole) closeConsole();
    for (const name of [...views.keys()]) closeView(name);
  };
}
