// The first-boot wizard: setup code → admin password → hostname → time → network → cluster →
// review → done.
// Each answer is saved on the node as it is given, so a reload resumes where it stopped.

import { api, setCsrf, setupToken } from './api.js';
import { h, replace } from './dom.js';
import { busy, clearErrors, countdown, field, formError, sentence, showError } from './form.js';

const STEPS = [
  { id: 'code', title: 'Setup code' },
  { id: 'password', title: 'Password' },
  { id: 'hostname', title: 'Node name' },
  { id: 'time', title: 'Time' },
  { id: 'network', title: 'Network' },
  { id: 'cluster', title: 'Cluster' },
  { id: 'review', title: 'Review' },
];

/** The cluster choice, kept for this tab until setup finishes (the node needs it only then). */
const CLUSTER_KEY = 'cairn.setup-cluster';
/** Where a cluster request that failed right after setup is told to the Cluster page. */
export const CLUSTER_ERROR_KEY = 'cairn.cluster-error';
const clusterChoice = {
  get: () => {
    try {
      return JSON.parse(sessionStorage.getItem(CLUSTER_KEY)) || { mode: 'standalone' };
    } catch {
      return { mode: 'standalone' };
    }
  },
  set: (c) => sessionStorage.setItem(CLUSTER_KEY, JSON.stringify(c)),
  clear: () => sessionStorage.removeItem(CLUSTER_KEY),
};

/** One line for the review: standalone, or the cluster to create or join. */
function clusterSummary(c) {
  if (c.mode === 'create') return `Create cluster ${c.name} at ${c.address}`;
  if (c.mode === 'join') return `Join a cluster at ${c.address}${c.witness ? ' as a witness' : ''}`;
  return 'Stay standalone';
}

const MIN_PASSWORD = 12;

/** The first step still to do, from the node's saved progress. */
function firstOpen(progress) {
  if (!progress) return 'code';
  if (!progress.password_set) return 'password';
  if (!progress.hostname) return 'hostname';
  if (!progress.timezone || !progress.ntp_servers) return 'time';
  if (!progress.network) return 'network';
  return 'review';
}

/** One line for the review: the management interface and how it gets its address. */
function networkSummary(spec) {
  if (!spec) return 'Current settings (DHCP)';
  const m = spec.links.find((l) => l.management);
  if (!m) return null;
  if (m.dhcp) return `${m.name}: DHCP`;
  const route = spec.routes.find((r) => r.destination === 'default');
  return `${m.name}: ${m.addresses.join(', ')}${route ? `, gateway ${route.gateway}` : ''}`;
}

/** The browser's time zone, to preselect. */
function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/**
 * Run the wizard in `root`. `status` is the node's answer to GET /api/v1/setup (with the
 * kept setup token, if any); `health` names the node; `onDone` runs once signed in.
 */
export function renderSetup(root, { status, health, onDone }) {
  const wiz = {
    progress: status.progress,
    step: firstOpen(status.progress),
    zones: null,
    notice: null,
  };
  if (!status.progress) setupToken.clear();

  const stepper = h('ol', { class: 'stepper', 'aria-label': 'Setup steps' });
  const counter = h('p', { class: 'step-count' });
  const card = h('section', { class: 'card setup-card' });
  replace(root, h('main', { class: 'setup-page' },
    h('header', { class: 'setup-brand' },
      h('img', { src: '/ui/icon.svg', alt: '', width: 40, height: 40 }),
      h('div', {},
        h('p', { class: 'brand-name' }, 'Cairn'),
        h('p', { class: 'brand-sub' }, `Setting up ${health ? health.hostname : 'this node'}`))),
    stepper, counter, card,
    h('p', { class: 'setup-foot' },
      'Your answers are saved on the node as you go. If this page is closed, open it again and continue.')));

  function go(step, notice = null) {
    wiz.step = step;
    wiz.notice = notice;
    draw();
  }

  function draw() {
    const index = STEPS.findIndex((s) => s.id === wiz.step);
    replace(stepper, STEPS.map((s, i) => h('li', {
      class: i < index ? 'done' : i === index ? 'current' : '',
      'aria-current': i === index ? 'step' : null,
    }, h('span', { class: 'dot' }, i < index ? '✓' : String(i + 1)), h('span', { class: 'label' }, s.title))));
    counter.textContent = `Step ${index + 1} of ${STEPS.length} · ${STEPS[index].title}`;
    const render = { code, password, hostname, time, network, cluster, review }[wiz.step];
    replace(card, render());
    document.title = `${STEPS[index].title} · Cairn setup`;
    const first = card.querySelector('input, select, textarea, button.primary');
    if (first) first.focus();
  }

  /** A step's form: heading, intro, fields, then Back and the main action. */
  function stepForm({ title, intro, fields, action, onSubmit, back, extra }) {
    const submit = h('button', { type: 'submit', class: 'primary' }, action);
    const form = h('form', { novalidate: true, 'data-step': wiz.step },
      h('h1', {}, title),
      intro ? h('p', { class: 'intro' }, intro) : null,
      wiz.notice ? h('p', { class: 'notice', role: 'status' }, wiz.notice) : null,
      formError(),
      fields,
      extra,
      h('div', { class: 'actions' },
        back ? h('button', { type: 'button', class: 'secondary', onclick: () => go(back) }, 'Back') : h('span'),
        submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (submit.disabled) return;
      clearErrors(form);
      try {
        await busy(submit, 'Saving…', () => onSubmit(form));
      } catch (err) {
        handle(form, submit, err);
      }
    });
    return form;
  }

  /** Errors every step treats alike; the rest go next to their field. */
  function handle(form, submit, err) {
    if (err.status === 429 && form.rateLimited) {
      form.rateLimited(err);
      return;
    }
    if (err.status === 401 && err.code === 'unauthorized') {
      setupToken.clear();
      wiz.progress = null;
      go('code', `${sentence(err.message)} Enter the code again to continue; what you entered so far is kept.`);
      return;
    }
    if (err.code === 'already_set_up') {
      setupToken.clear();
      window.location.reload();
      return;
    }
    showError(form, err);
  }

  function saved(status) {
    wiz.progress = status.progress;
  }

  function code() {
    const input = h('input', {
      type: 'text', class: 'mono code-input', autocomplete: 'off', autocapitalize: 'characters',
      spellcheck: 'false', inputmode: 'text', placeholder: 'XXXX-XXXX-XXXX', maxlength: 32,
    });
    const form = stepForm({
      title: 'Enter the setup code',
      intro: 'The node shows a one-time setup code on its screen and serial console, next to the address of this page. It proves you have the machine in front of you.',
      fields: [field('code', 'Setup code', input, '12 characters, like 6DDJ-P6FE-XZ1W. Case and hyphens do not matter.')],
      action: 'Continue',
      onSubmit: async () => {
        const res = await api('POST', '/api/v1/setup/code', { body: { code: input.value } });
        setupToken.set(res.setup_token);
        saved(res);
        go(firstOpen(res.progress) === 'code' ? 'password' : firstOpen(res.progress));
      },
    });
    // A rate-limited attempt shows the wait, counting down, under the code.
    const slot = form.querySelector('[data-field="code"] .field-error');
    const submit = form.querySelector('button[type="submit"]');
    form.rateLimited = (err) => countdown(slot, submit, err.retryAfter || 1, 'Too many wrong codes from this address.');
    return form;
  }

  function password() {
    const pw = h('input', { type: 'password', autocomplete: 'new-password' });
    const confirm = h('input', { type: 'password', autocomplete: 'new-password' });
    const meter = h('p', { class: 'hint meter', 'aria-live': 'polite' });
    const isSet = wiz.progress && wiz.progress.password_set;
    const update = () => {
      const n = [...pw.value].length;
      meter.textContent = n === 0 ? '' : n < MIN_PASSWORD
        ? `${n} of at least ${MIN_PASSWORD} characters`
        : `${n} characters: long enough`;
      meter.classList.toggle('ok', n >= MIN_PASSWORD);
    };
    pw.addEventListener('input', update);
    const pwField = field('password', 'Password', pw, `At least ${MIN_PASSWORD} characters. Length matters most: a few unrelated words make a strong password that is easy to type.`);
    pw.after(meter);
    return stepForm({
      title: 'Choose the admin password',
      intro: 'You sign in as admin with this password, in this page and with cairnctl.',
      fields: [
        pwField,
        field('confirm', 'Repeat the password', confirm),
      ],
      extra: isSet ? h('p', { class: 'notice' }, 'A password is already saved. Leave both fields empty to keep it, or enter a new one.') : null,
      action: 'Continue',
      back: null,
      onSubmit: async (form) => {
        if (isSet && !pw.value && !confirm.value) {
          go('hostname');
          return;
        }
        if (pw.value !== confirm.value && [...pw.value].length >= MIN_PASSWORD) {
          showError(form, { field: 'confirm', message: 'The two passwords differ; type the same password twice.' });
          return;
        }
        const res = await api('PUT', '/api/v1/setup/password', { body: { password: pw.value }, setup: true });
        saved(res);
        go('hostname');
      },
    });
  }

  function hostname() {
    const suggestion = (wiz.progress && wiz.progress.hostname) || (health ? health.hostname : '');
    const input = h('input', {
      type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none',
      value: suggestion, maxlength: 63,
    });
    return stepForm({
      title: 'Name this node',
      intro: 'The name shows in this page, in alerts and on your network.',
      fields: [field('hostname', 'Hostname', input, 'Letters, digits and hyphens, up to 63 characters; no dots. Example: nas-01.')],
      action: 'Continue',
      back: 'password',
      onSubmit: async () => {
        const res = await api('PUT', '/api/v1/setup/hostname', { body: { hostname: input.value }, setup: true });
        saved(res);
        go('time');
      },
    });
  }

  function time() {
    const current = (wiz.progress && wiz.progress.timezone) || browserZone();
    let tz;
    if (wiz.zones && wiz.zones.length) {
      const groups = new Map();
      for (const z of wiz.zones) {
        const g = z.includes('/') ? z.split('/')[0] : 'Other';
        if (!groups.has(g)) groups.set(g, []);
        groups.get(g).push(z);
      }
      const chosen = wiz.zones.includes(current) ? current : 'UTC';
      tz = h('select', {}, [...groups].map(([g, zs]) => h('optgroup', { label: g },
        zs.map((z) => h('option', { value: z, selected: z === chosen }, z.replaceAll('_', ' '))))));
    } else {
      tz = h('input', { type: 'text', value: current, spellcheck: 'false', autocapitalize: 'none' });
    }
    const servers = (wiz.progress && wiz.progress.ntp_servers) || ['pool.ntp.org'];
    const ntp = h('textarea', { rows: 3, spellcheck: 'false', autocapitalize: 'none', class: 'mono' });
    ntp.value = servers.join('\n');
    return stepForm({
      title: 'Set the time',
      intro: 'Logs, alerts and schedules (scrubs, self-tests) use the node’s time zone. NTP keeps the clock right.',
      fields: [
        field('timezone', 'Time zone', tz, wiz.zones && wiz.zones.length
          ? `Preselected from this browser’s time zone (${browserZone()}) when the node knows it.`
          : 'A name from the tz database, e.g. Europe/Berlin, America/New_York or UTC.'),
        field('servers', 'NTP servers', ntp, 'One host name or IP address per line, at most 8. Leave empty only if the node cannot reach any time server.'),
      ],
      action: 'Continue',
      back: 'hostname',
      onSubmit: async () => {
        let res = await api('PUT', '/api/v1/setup/timezone', { body: { timezone: tz.value }, setup: true });
        saved(res);
        const list = ntp.value.split(/[\s,]+/).filter(Boolean);
        res = await api('PUT', '/api/v1/setup/ntp', { body: { servers: list }, setup: true });
        saved(res);
        go('network');
      },
    });
  }

  /** The management interface: DHCP (default) or a static address on one physical link. */
  function network() {
    const chosen = wiz.progress && wiz.progress.network;
    const mgmt = chosen && chosen.links.find((l) => l.management);
    const iface = h('select', {}, h('option', { value: '' }, 'Loading…'));
    const mode = h('select', {},
      h('option', { value: 'dhcp' }, 'Automatic (DHCP)'),
      h('option', { value: 'static' }, 'Static address'));
    const address = h('input', { type: 'text', spellcheck: 'false', autocapitalize: 'none', class: 'mono', placeholder: '192.0.2.10/24' });
    const gateway = h('input', { type: 'text', spellcheck: 'false', autocapitalize: 'none', class: 'mono', placeholder: '192.0.2.1' });
    const dns = h('input', { type: 'text', spellcheck: 'false', autocapitalize: 'none', class: 'mono', placeholder: '192.0.2.53' });
    const staticFields = h('div', { class: 'static-fields' },
      field('address', 'Address', address, 'With its prefix length, e.g. 192.0.2.10/24.'),
      field('gateway', 'Gateway', gateway, 'Optional: the default route. It must be inside the address’s subnet.'),
      field('dns', 'DNS servers', dns, 'Optional: IP addresses separated by spaces.'));
    if (mgmt && !mgmt.dhcp) {
      mode.value = 'static';
      address.value = mgmt.addresses[0] || '';
      const route = chosen.routes.find((r) => r.destination === 'default');
      gateway.value = route ? route.gateway : '';
      dns.value = chosen.dns.servers.join(' ');
    }
    const sync = () => { staticFields.hidden = mode.value !== 'static'; };
    mode.addEventListener('change', sync);
    sync();
    let available = true;
    const note = h('p', { class: 'hint', role: 'status' });
    api('GET', '/api/v1/setup/network', { setup: true }).then((r) => {
      replace(iface, r.links.map((l) => h('option', { value: l.name, selected: mgmt ? l.name === mgmt.name : false },
        `${l.name}${l.mac ? ` (${l.mac})` : ''}${l.carrier ? '' : ' — no cable'}${l.addresses.length ? ` — ${l.addresses[0]}` : ''}`)));
      if (!mgmt) {
        const withAddr = r.links.find((l) => l.addresses.length);
        if (withAddr) iface.value = withAddr.name;
      }
    }).catch((err) => {
      available = false;
      replace(iface, h('option', { value: '' }, 'Current settings'));
      note.textContent = err.status === 503
        ? 'This node does not manage its network here: it keeps its current settings.'
        : sentence(err.message);
    });
    return stepForm({
      title: 'Management network',
      intro: 'The address you reach this page and the API at. DHCP keeps working as now; a static address takes effect when you finish setup, so you then open the page at that address.',
      fields: [
        field('interface', 'Interface', iface, 'The physical link that carries the management address.'),
        field('mode', 'Address', mode),
        staticFields,
        note,
      ],
      action: 'Continue',
      back: 'time',
      onSubmit: async () => {
        if (!available) {
          go('cluster');
          return;
        }
        const body = { interface: iface.value || null, mode: mode.value };
        if (mode.value === 'static') {
          body.address = address.value.trim();
          if (gateway.value.trim()) body.gateway = gateway.value.trim();
          body.dns = dns.value.split(/[\s,]+/).filter(Boolean);
        }
        const res = await api('PUT', '/api/v1/setup/network', { body, setup: true });
        saved(res);
        go('cluster');
      },
    });
  }

  /** Stay standalone (the default), create a cluster, or join one: done once setup finishes. */
  function cluster() {
    const kept = clusterChoice.get();
    const radio = (value, label, hint) => h('label', { class: 'check' },
      h('input', { type: 'radio', name: 'cluster-mode', value, checked: kept.mode === value }),
      h('span', {}, h('strong', {}, label), h('span', { class: 'hint' }, ` ${hint}`)));
    const modes = h('fieldset', { class: 'field', 'data-field': 'mode' },
      h('legend', {}, 'This node'),
      radio('standalone', 'Stay standalone', 'The quickest: the node’s settings are its own. You can create or join a cluster later.'),
      radio('create', 'Create a cluster', 'This node becomes the first member; others join it with a token.'),
      radio('join', 'Join a cluster', 'Paste a token made on a member.'));
    const name = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', maxlength: 63, value: kept.name || '' });
    const address = h('select', {}, h('option', { value: '' }, 'Loading…'));
    const token = h('textarea', { rows: 3, spellcheck: 'false', autocapitalize: 'none', class: 'mono' });
    token.value = kept.token || '';
    const witness = h('input', { type: 'checkbox', checked: !!kept.witness });
    const createFields = h('div', { class: 'cluster-fields' },
      field('name', 'Cluster name', name, 'Lowercase letters, digits and -, starting with a letter.'));
    const joinFields = h('div', { class: 'cluster-fields' },
      field('token', 'Join token', token, 'Made on a member: Cluster → Add a node.'),
      h('div', { class: 'field', 'data-field': 'witness' },
        h('label', { class: 'check' }, witness, ' Join as a witness (an etcd vote only)'),
        h('p', { class: 'field-error', role: 'alert', hidden: true })));
    const addressField = field('address', 'Cluster address', address, 'The address other nodes reach this one at.');
    const mode = () => modes.querySelector('input:checked')?.value || 'standalone';
    const sync = () => {
      createFields.hidden = mode() !== 'create';
      joinFields.hidden = mode() !== 'join';
      addressField.hidden = mode() === 'standalone';
    };
    modes.addEventListener('change', sync);
    sync();
    api('GET', '/api/v1/setup/network', { setup: true }).then((r) => {
      const list = [...new Set(r.links.flatMap((l) => l.addresses).map((a) => a.split('/')[0]))];
      if (!list.length) throw new Error('none');
      replace(address, list.map((a) => h('option', { value: a, selected: a === kept.address }, a)));
    }).catch(() => {
      const input = h('input', { type: 'text', spellcheck: 'false', autocapitalize: 'none', class: 'mono', placeholder: '10.0.0.11', value: kept.address || '' });
      input.id = address.id;
      input.name = address.name;
      input.setAttribute('aria-describedby', address.getAttribute('aria-describedby'));
      address.replaceWith(input);
    });
    return stepForm({
      title: 'Cluster',
      intro: 'A cluster shares users and settings between nodes and moves VMs when a node fails. Standalone is the default. A cluster is created or joined once setup finishes.',
      fields: [modes, createFields, joinFields, addressField],
      action: 'Continue',
      back: 'network',
      onSubmit: async (form) => {
        const m = mode();
        const addr = (form.querySelector('[data-field="address"] select, [data-field="address"] input')?.value || '').trim();
        if (m === 'standalone') {
          clusterChoice.set({ mode: 'standalone' });
        } else if (m === 'create') {
          if (!/^[a-z][a-z0-9-]{0,62}$/.test(name.value.trim())) {
            showError(form, { field: 'name', message: 'use 1 to 63 lowercase letters, digits and -, starting with a letter' });
            return;
          }
          if (!addr) {
            showError(form, { field: 'address', message: 'give this node’s address on the cluster network' });
            return;
          }
          clusterChoice.set({ mode: 'create', name: name.value.trim(), address: addr });
        } else {
          if (!token.value.trim()) {
            showError(form, { field: 'token', message: 'paste the join token made on a member' });
            return;
          }
          if (!addr) {
            showError(form, { field: 'address', message: 'give this node’s address on the cluster network' });
            return;
          }
          clusterChoice.set({ mode: 'join', token: token.value.trim(), address: addr, witness: witness.checked });
        }
        go('review');
      },
    });
  }

  function review() {
    const p = wiz.progress || {};
    const row = (name, label, value, step) => h('div', { class: 'review-row', 'data-field': name },
      h('dt', {}, label),
      h('dd', {}, value || h('span', { class: 'missing' }, 'not set'),
        h('button', { type: 'button', class: 'link', onclick: () => go(step) }, 'Change')),
      h('p', { class: 'field-error', role: 'alert', hidden: true }));
    const dl = h('dl', { class: 'review' },
      row('password', 'Admin password', p.password_set ? 'Set (user admin)' : null, 'password'),
      row('hostname', 'Node name', p.hostname, 'hostname'),
      row('timezone', 'Time zone', p.timezone, 'time'),
      row('ntp', 'NTP servers', p.ntp_servers ? (p.ntp_servers.length ? p.ntp_servers.join(', ') : 'none') : null, 'time'),
      row('network', 'Management network', networkSummary(p.network), 'network'),
      row('cluster', 'Cluster', clusterSummary(clusterChoice.get()), 'cluster'));
    return stepForm({
      title: 'Review and finish',
      intro: 'Finishing applies these settings, retires the setup code and signs you in as admin.',
      fields: [dl],
      action: 'Finish setup',
      back: 'cluster',
      onSubmit: async () => {
        const res = await api('POST', '/api/v1/setup/complete', { setup: true });
        setupToken.clear();
        setCsrf(res.csrf_token);
        // Creating or joining a cluster needs the admin signed in: it starts now, and the
        // Cluster page shows its progress (or why it was refused).
        const c = clusterChoice.get();
        clusterChoice.clear();
        if (c.mode === 'create' || c.mode === 'join') {
          const [path, body] = c.mode === 'create'
            ? ['/api/v1/cluster', { name: c.name, address: c.address }]
            : ['/api/v1/cluster/join', { token: c.token, address: c.address, witness: !!c.witness }];
          try {
            await api('POST', path, { body, signedIn: true });
          } catch (err) {
            sessionStorage.setItem(CLUSTER_ERROR_KEY, err.message);
          }
          window.location.hash = '#/cluster';
        }
        onDone();
      },
    });
  }

  // The zone list comes first (it is small and local), so no step is redrawn under the user.
  api('GET', '/api/v1/timezones')
    .then((r) => { wiz.zones = r.zones; })
    .catch(() => { wiz.zones = []; })
    .finally(draw);
}
