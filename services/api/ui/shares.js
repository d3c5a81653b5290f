// Shares of a pool (usage bars, create/resize/delete), their snapshots (take, delete, restore
// as a new share, schedule), thin volumes, capacity and scrub with live progress.

import { api, get } from './api.js';
import { badge, emptyState, h, progressBar, replace } from './dom.js';
import { busy, clearErrors, field, formError, sentence, showError } from './form.js';
import { bytes } from './format.js';
import { on } from './events.js';

const GiB = 1024 ** 3;

/** The tone of a usage percent against the 85/90/95 % alert thresholds. */
export function usageTone(pct) {
  if (pct >= 95) return 'critical';
  if (pct >= 85) return 'warning';
  return 'ok';
}

function usageBar(pct, label) {
  const tone = usageTone(pct);
  return h('div', { class: 'task-progress' },
    progressBar(pct, tone === 'warning' ? 'critical' : tone, false, label),
    h('span', { class: 'pct' }, `${pct.toFixed(1)} %`));
}

function numberInput(value, attrs = {}) {
  return h('input', { type: 'number', min: 0, step: 'any', value: String(value), ...attrs });
}

/** A small form: `fields` are [name, label, input, hint]; `submit(values)` calls the API. */
function miniForm(title, fields, buttonLabel, submit) {
  const err = formError();
  const btn = h('button', { type: 'submit', class: 'primary' }, buttonLabel);
  const form = h('form', { class: 'card mini-form', novalidate: true },
    h('h3', {}, title),
    fields.map(([name, label, input, hint]) => field(name, label, input, hint)),
    err,
    h('div', { class: 'actions' }, h('span', {}), btn));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    try {
      await busy(btn, 'Working…', () => submit(form));
    } catch (e) {
      showError(form, e);
    }
  });
  return form;
}

/** Follow task `task` (as the API returned it) in `slot` until it ends; resolves with it. */
export function followTask(slot, task) {
  return new Promise((resolve) => {
    const draw = (t) => replace(slot,
      h('p', { class: 'task-msg' }, t.message),
      h('div', { class: 'task-progress' },
        progressBar(t.progress, t.state === 'failed' ? 'critical' : t.state === 'succeeded' ? 'ok' : 'info',
          t.state === 'running' && t.progress === 0, t.message),
        h('span', { class: 'pct' }, `${t.progress} %`)));
    draw(task);
    let off = null;
    const done = (t) => {
      if (t.state !== 'running') {
        if (off) off();
        resolve(t);
      }
    };
    off = on('task', (t) => {
      if (t.id !== task.id) return;
      draw(t);
      done(t);
    });
    // The task may have finished before the subscription.
    get(`/api/v1/tasks/${task.id}`).then((t) => { draw(t); done(t); }).catch(() => {});
  });
}

function snapshotsPanel(pool, share, refreshShares) {
  const base = `/api/v1/pools/${encodeURIComponent(pool)}/shares/${encodeURIComponent(share.name)}`;
  const list = h('ul', { class: 'list' });
  const taskSlot = h('div', { class: 'task-slot' });
  const panel = h('div', { class: 'snapshots' }, h('h3', {}, `Snapshots of ${share.name}`), list, taskSlot);

  async function load() {
    let snaps;
    try {
      snaps = await get(`${base}/snapshots`);
    } catch (e) {
      replace(list, h('li', { class: 'form-error' }, sentence(e.message)));
      return;
    }
    if (snaps.length === 0) {
      replace(list, h('li', { class: 'muted' }, 'No snapshots yet.'));
      return;
    }
    replace(list, snaps.map((s) => {
      const newName = h('input', { type: 'text', placeholder: `${share.name}-restored`, 'aria-label': `New share for ${s.name}` });
      const restoreBtn = h('button', { type: 'button', class: 'secondary small' }, 'Restore as new share');
      const delBtn = h('button', { type: 'button', class: 'secondary small' }, 'Delete');
      const rowErr = h('p', { class: 'field-error', role: 'alert', hidden: true });
      restoreBtn.addEventListener('click', async () => {
        rowErr.hidden = true;
        try {
          const task = await busy(restoreBtn, 'Starting…', () => api('POST', `${base}/snapshots/${encodeURIComponent(s.name)}/restore`,
            { body: { new_share: newName.value.trim() }, signedIn: true }));
          const t = await followTask(taskSlot, task);
          if (t.state === 'succeeded') refreshShares();
        } catch (e) {
          rowErr.textContent = sentence(e.message);
          rowErr.hidden = false;
        }
      });
      delBtn.addEventListener('click', async () => {
        if (!window.confirm(`Delete snapshot ${s.name} of ${share.name}?`)) return;
        try {
          await busy(delBtn, 'Deleting…', () => api('DELETE', `${base}/snapshots/${encodeURIComponent(s.name)}`, { signedIn: true }));
          load();
        } catch (e) {
          rowErr.textContent = sentence(e.message);
          rowErr.hidden = false;
        }
      });
      return h('li', { class: 'list-row', 'data-snapshot': s.name },
        h('div', { class: 'grow' },
          h('p', { class: 'row-title' }, s.name, ' ', badge(s.scheduled ? 'info' : 'neutral', s.scheduled ? 'scheduled' : 'manual')),
          h('p', { class: 'muted small' }, `Taken ${s.created}`),
          rowErr),
        newName, restoreBtn, delBtn);
    }));
  }

  const snapName = h('input', { type: 'text', placeholder: 'before-upgrade' });
  panel.append(miniForm('Take a snapshot', [['name', 'Name', snapName, 'a-z, 0-9, - and _; names starting with auto- are for the schedule']],
    'Take snapshot', async () => {
      await api('POST', `${base}/snapshots`, { body: { name: snapName.value.trim() }, signedIn: true });
      snapName.value = '';
      load();
    }));

  const sched = share.schedule || {};
  const hourly = numberInput(sched.hourly || 0, { max: 500, step: 1 });
  const daily = numberInput(sched.daily || 0, { max: 500, step: 1 });
  const weekly = numberInput(sched.weekly || 0, { max: 500, step: 1 });
  const saved = h('p', { class: 'notice', hidden: true });
  const schedForm = miniForm('Snapshot schedule (how many to keep; 0 = off)', [
    ['hourly', 'Hourly', hourly], ['daily', 'Daily', daily], ['weekly', 'Weekly', weekly],
  ], 'Save schedule', async () => {
    const v = await api('PUT', `${base}/snapshot-schedule`, {
      body: { hourly: Number(hourly.value), daily: Number(daily.value), weekly: Number(weekly.value) }, signedIn: true,
    });
    saved.textContent = `Keeping ${v.hourly} hourly, ${v.daily} daily and ${v.weekly} weekly snapshots.`;
    saved.hidden = false;
  });
  schedForm.append(saved);
  panel.append(schedForm);
  load();
  return panel;
}

function shareRow(pool, s, refresh, detail) {
  const base = `/api/v1/pools/${encodeURIComponent(pool)}/shares/${encodeURIComponent(s.name)}`;
  const used = s.usage ? s.usage.used_bytes : 0;
  const rowErr = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const showErr = (e) => { rowErr.textContent = sentence(e.message); rowErr.hidden = false; };
  const size = h('input', { type: 'number', min: 1, step: 'any', value: (s.size_bytes / GiB).toFixed(1), 'aria-label': `New size of ${s.name} in GiB` });
  const resizeBtn = h('button', { type: 'button', class: 'secondary small' }, 'Grow');
  resizeBtn.addEventListener('click', async () => {
    try {
      await busy(resizeBtn, 'Growing…', () => api('PATCH', base, { body: { size_bytes: Math.round(Number(size.value) * GiB) }, signedIn: true }));
      refresh();
    } catch (e) { showErr(e); }
  });
  const delBtn = h('button', { type: 'button', class: 'secondary small' }, 'Delete…');
  delBtn.addEventListener('click', async () => {
    const typed = window.prompt(`Deleting share ${s.name} destroys its files and all its snapshots. Type its name to confirm.`);
    if (typed === null) return;
    try {
      await busy(delBtn, 'Deleting…', () => api('DELETE', base, { body: { confirm: typed }, signedIn: true }));
      refresh();
    } catch (e) { showErr(e); }
  });
  const snapBtn = h('button', { type: 'button', class: 'secondary small' }, 'Snapshots');
  snapBtn.addEventListener('click', () => replace(detail, snapshotsPanel(pool, s, refresh)));
  return h('li', { class: 'list-row share', 'data-share': s.name },
    h('div', { class: 'grow' },
      h('p', { class: 'row-title' }, s.name, ' ', s.mounted ? badge('ok', 'mounted') : badge('critical', 'not mounted'),
        s.restored_from ? h('span', { class: 'muted small' }, ` restored from ${s.restored_from}`) : null),
      h('p', { class: 'muted small' }, `${bytes(used)} used of ${bytes(s.size_bytes)} · ${s.mountpoint}`),
      usageBar(s.used_percent || 0, `Space used in share ${s.name}`),
      rowErr),
    size, resizeBtn, snapBtn, delBtn);
}

/**
 * Render the shares, volumes, capacity and scrub of pool `pool` into `container` (the storage
 * page calls this for each pool). Returns a cleanup function.
 */
export function renderShares(container, pool) {
  const enc = encodeURIComponent(pool);
  const list = h('ul', { class: 'list' });
  const detail = h('div', { class: 'share-detail' });
  const capacity = h('div', { class: 'capacity' });
  const volumes = h('ul', { class: 'list' });
  const scrubSlot = h('div', { class: 'task-slot' });
  const scrubInfo = h('p', { class: 'muted small' });

  async function refresh() {
    try {
      const shares = await get(`/api/v1/pools/${enc}/shares`);
      if (shares.length === 0) {
        replace(list, h('li', {}, emptyState('No shares yet', 'A share is a btrfs filesystem on a thin volume of this pool, with read-only snapshots.')));
      } else {
        replace(list, shares.map((s) => shareRow(pool, s, refresh, detail)));
      }
      const c = await get(`/api/v1/pools/${enc}/capacity`);
      const worst = Math.max(c.data_percent, c.metadata_percent);
      replace(capacity,
        h('p', {}, `Thin pool ${bytes(c.size_bytes)} · ${bytes(c.provisioned_bytes)} provisioned · data ${c.data_percent.toFixed(1)} % · metadata ${c.metadata_percent.toFixed(1)} %`),
        usageBar(worst, `Thin pool ${pool} used`));
      const vols = await get(`/api/v1/pools/${enc}/volumes`);
      replace(volumes, vols.length === 0 ? h('li', { class: 'muted' }, 'No VM volumes.') : vols.map((v) => h('li', { class: 'list-row', 'data-volume': v.name },
        h('div', { class: 'grow' },
          h('p', { class: 'row-title' }, v.name, ' ', badge(v.active ? 'ok' : 'neutral', v.active ? 'active' : 'snapshot')),
          h('p', { class: 'muted small' }, `${bytes(v.size_bytes)} · ${bytes(v.used_bytes)} mapped${v.origin ? ` · from ${v.origin}` : ''} · ${v.path}`)))));
      const sc = await get(`/api/v1/pools/${enc}/scrub`);
      scrubInfo.textContent = sc.last
        ? `Last scrub: ${sc.last.mismatch_cnt} mismatched sectors, ${Object.values(sc.last.share_errors || {}).reduce((a, b) => a + b, 0)} share errors. Scheduled every ${sc.interval_days} days.`
        : `Never scrubbed. Scheduled every ${sc.interval_days} days.`;
    } catch (e) {
      replace(list, h('li', { class: 'form-error' }, sentence(e.message)));
    }
  }

  const name = h('input', { type: 'text', placeholder: 'documents', autocomplete: 'off' });
  const size = h('input', { type: 'number', min: 0.25, step: 'any', value: '10' });
  const create = miniForm('New share', [
    ['name', 'Name', name, 'a-z, 0-9, - and _, up to 48 characters'],
    ['size_bytes', 'Size (GiB)', size, 'Thin: space is used only as files are written'],
  ], 'Create share', async () => {
    await api('POST', `/api/v1/pools/${enc}/shares`, {
      body: { name: name.value.trim(), size_bytes: Math.round(Number(size.value) * GiB) }, signedIn: true,
    });
    name.value = '';
    refresh();
  });

  const scrubBtn = h('button', { type: 'button', class: 'secondary small' }, 'Scrub now');
  const scrubErr = h('p', { class: 'form-error', role: 'alert', hidden: true });
  scrubBtn.addEventListener('click', async () => {
    scrubErr.hidden = true;
    try {
      const task = await busy(scrubBtn, 'Starting…', () => api('POST', `/api/v1/pools/${enc}/scrub`, { signedIn: true }));
      scrubBtn.disabled = true;
      await followTask(scrubSlot, task);
      scrubBtn.disabled = false;
      refresh();
    } catch (e) {
      scrubErr.textContent = sentence(e.message);
      scrubErr.hidden = false;
    }
  });

  replace(container,
    h('section', { class: 'card', 'data-pool-shares': pool },
      h('div', { class: 'section-head' }, h('h2', {}, `Shares of ${pool}`)),
      capacity, list, detail, create),
    h('section', { class: 'card' },
      h('div', { class: 'section-head' }, h('h2', {}, 'Scrub'), scrubBtn),
      h('p', { class: 'intro' }, 'Reads every sector of the array (md check) and verifies every share\'s checksums (btrfs scrub).'),
      scrubInfo, scrubErr, scrubSlot),
    h('section', { class: 'card' }, h('h2', {}, 'VM volumes'), volumes));
  refresh();
  return on('alert', () => refresh());
}

/** The hook the storage page (storage.js) calls for each pool. */
export const renderPoolShares = renderShares;
