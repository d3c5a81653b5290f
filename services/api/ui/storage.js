// Disks & pools: the disk inventory (health, temperature, SSD wear and sleep from SMART, wipe
// by typed serial), pools with state and rebuild progress, create with the usable capacity
// shown first, replace, add, destroy by typed name. Shares of a pool come from shares.js when
// it is there.

import { api, get } from './api.js';
import { badge, emptyState, h, progressBar } from './dom.js';
import { clearErrors, field, formError, sentence, showError } from './form.js';
import { bytes, when } from './format.js';
import { on } from './events.js';
import { taskLine } from './tasks.js';

const USAGE = {
  free: ['ok', 'Free'],
  boot: ['neutral', 'Boot disk'],
  pool: ['info', 'Pool member'],
  in_use: ['warning', 'In use'],
  has_data: ['warning', 'Has data'],
};
const SMART = {
  healthy: ['ok', 'Healthy'],
  warning: ['warning', 'Warning'],
  failing: ['critical', 'Failing'],
  unavailable: ['neutral', 'No SMART'],
};
const POOL_STATE = {
  healthy: ['ok', 'Healthy'],
  degraded: ['critical', 'Degraded'],
  rebuilding: ['warning', 'Rebuilding'],
  failed: ['critical', 'Failed'],
};
const MEMBER_STATE = {
  in_sync: ['ok', 'In sync'],
  rebuilding: ['warning', 'Rebuilding'],
  spare: ['info', 'Spare'],
  faulty: ['critical', 'Faulty'],
  missing: ['critical', 'Missing'],
  stale: ['warning', 'Stale'],
};
const LEVELS = [
  ['raid5', 'RAID 5 — one disk may fail (3+ disks)'],
  ['raid6', 'RAID 6 — two disks may fail (4+ disks)'],
  ['raid1', 'RAID 1 — mirror (2+ disks)'],
  ['raid10', 'RAID 10 — striped mirrors (even count, 4+ disks)'],
  ['single', 'Single — no redundancy (1 disk)'],
];

const tone = (map, key) => (map[key] || ['neutral', key])[0];
const label = (map, key) => (map[key] || ['neutral', key])[1];

/** What is on a disk, in words. */
function usageText(d) {
  if (d.pool) return `member of pool ${d.pool}`;
  if (d.boot) return 'holds Cairn itself';
  const parts = [];
  if (d.partitions.length) parts.push(`${d.partitions.length} partition${d.partitions.length === 1 ? '' : 's'}`);
  if (d.signatures.length) parts.push(d.signatures.join(', '));
  if (d.mounts.length) parts.push(`mounted at ${d.mounts.join(', ')}`);
  if (d.holders.length) parts.push(`used by ${d.holders.join(', ')}`);
  return parts.length ? parts.join(' · ') : 'blank';
}

function smartBadge(d) {
  if (!d.smart) return badge('neutral', 'SMART —');
  const b = badge(tone(SMART, d.smart.verdict), label(SMART, d.smart.verdict));
  const t = d.smart.temperature_c;
  const worn = d.smart.endurance_used_pct;
  return h('span', { class: 'smart', title: (d.smart.reasons || []).join('\n') }, b,
    t === null || t === undefined ? null : h('span', { class: 'muted small' }, ` ${t} °C`),
    typeof worn === 'number' ? h('span', { class: 'muted small' }, ` · ${worn} % worn`) : null,
    d.smart.standby ? h('span', { class: 'muted small' }, ' · asleep') : null);
}

/** A dialog-like card inside `host` that asks for a typed confirmation and runs `action`. */
function confirmForm({ title, explain, fieldName, fieldLabel, expect, button, action, onDone }) {
  const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
  const submit = h('button', { type: 'submit', class: 'primary danger', disabled: true }, button);
  const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
  const form = h('form', { class: 'card confirm', novalidate: true },
    h('h3', {}, title), h('p', {}, explain),
    field(fieldName, fieldLabel, input, `Type ${expect} to confirm.`),
    formError(),
    h('div', { class: 'actions' }, submit, cancel));
  input.addEventListener('input', () => { submit.disabled = input.value.trim() !== expect; });
  cancel.addEventListener('click', () => form.remove());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    try {
      const task = await action(input.value.trim());
      form.replaceWith(taskLine(task, onDone));
    } catch (err) {
      showError(form, err, fieldName);
      submit.disabled = false;
    }
  });
  return form;
}

/** Render the Disks & pools section into `main`; returns a cleanup function. */
export async function renderStorage(main) {
  const poolsBody = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const disksBody = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const detail = h('div', {});
  const createBtn = h('button', { type: 'button', class: 'primary small' }, 'Create pool');
  const createHost = h('div', {});
  main.append(
    h('div', { class: 'section-head' }, h('h1', {}, 'Disks & pools'), createBtn),
    createHost,
    h('section', { class: 'card', 'aria-labelledby': 'pools-h' }, h('h2', { id: 'pools-h' }, 'Pools'), poolsBody),
    detail,
    h('section', { class: 'card', 'aria-labelledby': 'disks-h' }, h('h2', { id: 'disks-h' }, 'Disks'), disksBody));

  let disks = [];
  let pools = [];
  let openPool = null;

  async function load() {
    try {
      const [d, p] = await Promise.all([get('/api/v1/disks'), get('/api/v1/pools')]);
      disks = d.disks;
      pools = p.pools;
    } catch (err) {
      poolsBody.replaceChildren(h('p', { class: 'form-error' }, err.message));
      disksBody.replaceChildren();
      return;
    }
    drawPools();
    drawDisks();
    if (openPool) drawDetail(openPool);
  }

  function drawPools() {
    if (pools.length === 0) {
      poolsBody.replaceChildren(emptyState('No pools yet',
        'A pool joins blank disks into one redundant store (md RAID, LVM thin). Create one to hold shares and VM disks.'));
      return;
    }
    poolsBody.replaceChildren(h('ul', { class: 'list' }, pools.map((p) => h('li', { class: 'list-row', 'data-pool': p.name },
      badge(tone(POOL_STATE, p.state), label(POOL_STATE, p.state)),
      h('div', { class: 'grow' },
        h('p', { class: 'row-title' }, `${p.name} · ${p.level} · ${bytes(p.size_bytes)}`),
        h('p', { class: 'muted small' }, p.reason || `${p.members.length} disks, all in sync`),
        p.sync ? h('div', { class: 'task-progress' }, progressBar(p.sync.percent ?? 0, 'info', p.sync.percent === null, `Pool ${p.name}: ${p.sync.action}`),
          h('span', { class: 'pct' }, `${p.sync.action} ${p.sync.percent ?? 0} %`)) : null),
      h('button', { type: 'button', class: 'secondary small', onclick: () => drawDetail(p.name) }, 'Details')))));
  }

  function drawDisks() {
    if (disks.length === 0) {
      disksBody.replaceChildren(emptyState('No disks found', 'No data disk is attached to this node.'));
      return;
    }
    const smartHost = h('div', {});
    const rows = disks.map((d) => {
      const actions = h('div', { class: 'row-actions' });
      if (d.usage === 'has_data' || (d.usage === 'free' && d.signatures.length)) {
        actions.append(h('button', {
          type: 'button', class: 'secondary small',
          onclick: () => actions.replaceChildren(confirmForm({
            title: `Wipe ${d.model || d.id}`,
            explain: `Everything on this disk (${usageText(d)}) is erased: partition tables (both GPT copies), filesystems, RAID and LVM signatures.`,
            fieldName: 'confirm_serial', fieldLabel: 'Serial',
            expect: d.serial || d.id,
            button: 'Wipe disk',
            action: (v) => api('POST', `/api/v1/disks/${encodeURIComponent(d.id)}/wipe`, { body: { confirm_serial: v }, signedIn: true }),
            onDone: () => load(),
          })),
        }, 'Wipe…'));
      }
      actions.append(h('button', {
        type: 'button', class: 'link small',
        onclick: async () => {
          smartHost.replaceChildren(h('p', { class: 'loading' }, 'Loading SMART…'));
          try {
            const m = await import('./smart.js');
            await m.renderSmartDetail(smartHost, d.id);
          } catch {
            smartHost.replaceChildren(h('p', { class: 'muted' }, 'SMART details are not available on this node.'));
          }
        },
      }, 'SMART'));
      return h('li', { class: 'list-row', 'data-disk': d.id },
        badge(tone(USAGE, d.usage), label(USAGE, d.usage)),
        h('div', { class: 'grow' },
          h('p', { class: 'row-title' }, `${d.model || d.name} · ${bytes(d.size_bytes)} · ${d.bus}${d.rotational ? ' · HDD' : ''}`),
          h('p', { class: 'muted small mono' }, `${d.serial ? `serial ${d.serial} · ` : ''}${d.id}`),
          h('p', { class: 'muted small' }, usageText(d))),
        smartBadge(d),
        actions);
    });
    disksBody.replaceChildren(h('ul', { class: 'list' }, rows), smartHost);
  }

  function drawDetail(name) {
    openPool = name;
    const p = pools.find((x) => x.name === name);
    if (!p) {
      openPool = null;
      detail.replaceChildren();
      return;
    }
    const free = disks.filter((d) => d.usage === 'free');
    const ops = h('div', {});
    const members = h('ul', { class: 'list' }, p.members.map((m) => h('li', { class: 'list-row', 'data-member': m.disk },
      badge(tone(MEMBER_STATE, m.state), label(MEMBER_STATE, m.state)),
      h('div', { class: 'grow' }, h('p', { class: 'row-title mono' }, m.disk), h('p', { class: 'muted small' }, m.dev || 'not present')),
      free.length ? h('button', { type: 'button', class: 'secondary small', onclick: () => ops.replaceChildren(diskChoice({
        title: `Replace ${m.disk}`, button: 'Replace and rebuild', free,
        action: (disk) => api('POST', `/api/v1/pools/${encodeURIComponent(p.name)}/replace`, { body: { old: m.disk, new: disk }, signedIn: true }),
        fieldName: 'new',
      })) }, 'Replace…') : null)));
    const sharesHost = h('div', {});
    detail.replaceChildren(h('section', { class: 'card', 'data-pool-detail': p.name },
      h('div', { class: 'section-head' }, h('h2', {}, `Pool ${p.name}`),
        h('button', { type: 'button', class: 'link small', onclick: () => { openPool = null; detail.replaceChildren(); } }, 'Close')),
      h('p', {}, badge(tone(POOL_STATE, p.state), label(POOL_STATE, p.state)), ' ', p.reason),
      h('p', { class: 'muted small mono' }, `${p.device} · ${p.md || 'not assembled'} · VG ${p.volume_group} · created ${when(p.created)}`),
      p.sync ? h('div', { class: 'task-progress' }, progressBar(p.sync.percent ?? 0, 'info', p.sync.percent === null, `Pool ${p.name}: ${p.sync.action}`),
        h('span', { class: 'pct' }, `${p.sync.action} ${p.sync.percent ?? 0} %`)) : null,
      h('h3', {}, 'Members'), members,
      h('div', { class: 'actions' },
        free.length ? h('button', { type: 'button', class: 'secondary small', onclick: () => ops.replaceChildren(diskChoice({
          title: `Add a disk to ${p.name}`, button: 'Add and grow', free,
          action: (disk) => api('POST', `/api/v1/pools/${encodeURIComponent(p.name)}/add`, { body: { disk }, signedIn: true }),
          plan: async (disk) => {
            const a = await api('POST', `/api/v1/pools/${encodeURIComponent(p.name)}/add/plan`, { body: { disk }, signedIn: true });
            const gain = a.usable_bytes > a.usable_bytes_before
              ? `about ${bytes(a.usable_bytes_before)} usable now → about ${bytes(a.usable_bytes)} after`
              : `usable capacity stays about ${bytes(a.usable_bytes)} (one more copy of the data)`;
            return `${a.level_before === a.level ? a.level : `${a.level_before} → ${a.level}`} on ${a.members} disks: ${gain}. The pool stays usable while md reshapes; progress shows as a task. Everything on the added disk is erased.`;
          },
          fieldName: 'disk',
        })) }, 'Add disk…') : null,
        h('button', { type: 'button', class: 'secondary small danger', onclick: () => ops.replaceChildren(confirmForm({
          title: `Destroy pool ${p.name}`,
          explain: 'The array, its volume group, every share and VM disk on it are destroyed. This cannot be undone.',
          fieldName: 'confirm_name', fieldLabel: 'Pool name', expect: p.name, button: 'Destroy pool',
          action: (v) => api('DELETE', `/api/v1/pools/${encodeURIComponent(p.name)}`, { body: { confirm_name: v }, signedIn: true }),
          onDone: () => load(),
        })) }, 'Destroy…')),
      ops, sharesHost));
    // Shares live in shares.js (the shares section); show them here when it offers a hook.
    import('./shares.js').then((m) => m.renderPoolShares && m.renderPoolShares(sharesHost, p.name)).catch(() => {});
  }

  /** Pick a blank disk for `action`; with `plan`, its answer (the capacity) is shown first and a second click confirms. */
  function diskChoice({ title, button, free, action, fieldName, plan }) {
    const select = h('select', {}, free.map((d) => h('option', { value: d.id }, `${d.model || d.name} · ${bytes(d.size_bytes)} · ${d.serial || d.id}`)));
    const submit = h('button', { type: 'submit', class: 'primary' }, plan ? 'Show capacity' : button);
    const summary = h('p', { class: 'notice', hidden: true });
    let planned = null;
    const form = h('form', { class: 'card', novalidate: true }, h('h3', {}, title),
      field(fieldName, 'Blank disk', select), summary, formError(), h('div', { class: 'actions' }, submit));
    select.addEventListener('change', () => {
      planned = null;
      summary.hidden = true;
      if (plan) submit.textContent = 'Show capacity';
    });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      submit.disabled = true;
      try {
        if (plan && planned !== select.value) {
          summary.replaceChildren(await plan(select.value));
          summary.hidden = false;
          planned = select.value;
          submit.textContent = button;
          submit.disabled = false;
          return;
        }
        const task = await action(select.value);
        form.replaceWith(taskLine(task, () => load()));
      } catch (err) {
        showError(form, err, fieldName);
        submit.disabled = false;
      }
    });
    return form;
  }

  createBtn.addEventListener('click', () => {
    const free = disks.filter((d) => d.usage === 'free');
    const name = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'tank' });
    const level = h('select', {}, LEVELS.map(([v, t]) => h('option', { value: v }, t)));
    const boxes = free.map((d) => h('label', { class: 'check' },
      h('input', { type: 'checkbox', value: d.id }), ` ${d.model || d.name} · ${bytes(d.size_bytes)} · ${d.bus} · ${d.serial || d.id}`));
    const summary = h('p', { class: 'notice', hidden: true });
    const check = h('button', { type: 'submit', class: 'secondary' }, 'Show capacity');
    const confirm = h('button', { type: 'button', class: 'primary', disabled: true }, 'Create pool');
    const form = h('form', { class: 'card', novalidate: true }, h('h2', {}, 'Create a pool'),
      field('name', 'Name', name, 'Lowercase letters, digits and -, starting with a letter.'),
      field('level', 'Redundancy', level),
      h('div', { class: 'field', 'data-field': 'disks' }, h('p', { class: 'label' }, 'Disks'),
        boxes.length ? boxes : h('p', { class: 'muted' }, 'No blank disk. Wipe a disk first (Disks below).'),
        h('p', { class: 'field-error', role: 'alert', hidden: true })),
      summary, formError(), h('div', { class: 'actions' }, check, confirm));
    let planned = null;
    const request = () => ({
      name: name.value.trim(), level: level.value,
      disks: boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => i.value),
    });
    form.addEventListener('input', () => { confirm.disabled = true; summary.hidden = true; });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      try {
        planned = request();
        const plan = await api('POST', '/api/v1/pools/plan', { body: planned, signedIn: true });
        summary.replaceChildren(`${plan.disks.length} disks, ${bytes(plan.raw_bytes)} raw → about ${bytes(plan.usable_bytes)} usable; survives ${plan.redundancy} disk failure${plan.redundancy === 1 ? '' : 's'}. Everything on these disks is erased.`,
          ...plan.notes.map((n) => h('span', { class: 'muted small' }, ` ${sentence(n)}`)));
        summary.hidden = false;
        confirm.disabled = false;
      } catch (err) {
        showError(form, err);
      }
    });
    confirm.addEventListener('click', async () => {
      clearErrors(form);
      confirm.disabled = true;
      try {
        const task = await api('POST', '/api/v1/pools', { body: planned, signedIn: true });
        form.replaceWith(taskLine(task, () => load()));
      } catch (err) {
        showError(form, err);
      }
    });
    createHost.replaceChildren(form);
    name.focus();
  });

  await load();
  const offs = [
    on('alert', (a) => { if (String(a.key || '').startsWith('pool/')) load(); }),
    on('task', (t) => { if (t.state !== 'running' && /^(pool|disk)\./.test(t.kind)) load(); }),
  ];
  // Rebuild progress is md state, not a task of ours when it resumes after a reboot: poll
  // while any pool syncs.
  const timer = setInterval(() => { if (pools.some((p) => p.sync)) load(); }, 3000);
  return () => {
    offs.forEach((off) => off());
    clearInterval(timer);
  };
}
