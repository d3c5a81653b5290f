// VMs: the list with state badges and resource bars, a create form, actions with progress
// (tasks), and a live serial console (server-sent events).

import { api, get } from './api.js';
import { badge, emptyState, h, progressBar } from './dom.js';
import { clearErrors, field, formError, sentence, showError } from './form.js';
import { on } from './events.js';

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

function stateBadge(s) {
  const [tone, label] = STATE[s] || ['neutral', s];
  return badge(tone, label);
}

/** A labelled resource bar: `used` of `total` with a unit. */
function meter(label, used, total, unit) {
  const pct = total > 0 ? Math.round((used * 100) / total) : 0;
  return h('div', { class: 'task-progress', 'data-meter': label },
    h('span', { class: 'small' }, label),
    progressBar(pct, pct > 90 ? 'critical' : 'info'),
    h('span', { class: 'pct' }, `${used} / ${total} ${unit}`));
}

/** A live progress line for task `t`; calls `onDone(task)` once it ends. */
function taskLine(t, onDone) {
  const line = h('div', { class: 'task-inline', 'data-task': t.id });
  let off = null;
  const draw = (task) => {
    const failed = task.state === 'failed';
    line.replaceChildren(
      h('p', { class: failed ? 'form-error' : 'muted' }, sentence(task.message)),
      progressBar(task.progress, failed ? 'critical' : task.state === 'succeeded' ? 'ok' : 'info',
        task.state === 'running' && task.progress === 0),
      h('span', { class: 'pct' }, `${task.progress} %`));
    if (task.state !== 'running') {
      if (off) off();
      off = null;
      if (onDone) onDone(task);
    }
  };
  draw(t);
  off = on('task', (task) => { if (task.id === t.id) draw(task); });
  return line;
}

/** The create form: name, size, one new disk on a pool, machine and autostart. */
function createForm(onDone) {
  const name = h('input', { type: 'text', required: true, maxlength: 24, autocomplete: 'off' });
  const vcpus = h('input', { type: 'number', min: 1, value: 1, required: true });
  const memory = h('input', { type: 'number', min: 16, value: 512, required: true });
  const pool = h('input', { type: 'text', value: 'tank', required: true });
  const size = h('input', { type: 'number', min: 1, value: 10, required: true });
  const bus = h('select', {}, ['virtio', 'sata', 'ide'].map((b) => h('option', { value: b }, b)));
  const machine = h('select', {}, h('option', { value: 'q35' }, 'q35 (PCIe)'), h('option', { value: 'pc' }, 'pc (i440fx, IDE)'));
  const bridge = h('input', { type: 'text', placeholder: 'none' });
  const autostart = h('input', { type: 'checkbox' });
  const submit = h('button', { type: 'submit' }, 'Create VM');
  const form = h('form', { class: 'card', 'data-form': 'vm-create', novalidate: true },
    h('h2', {}, 'New VM'),
    field('name', 'Name', name, 'Lowercase letters, digits and -, starting with a letter.'),
    field('vcpus', 'vCPUs', vcpus),
    field('memory_mib', 'Memory (MiB)', memory),
    field('disks', 'Pool for its disk', pool),
    field('size', 'Disk size (GiB, thin: uses space only when written)', size),
    field('bus', 'Disk bus', bus),
    field('machine', 'Machine', machine),
    field('nics', 'Bridge for a NIC', bridge, 'Leave empty for no network.'),
    field('autostart', 'Start when the node boots', autostart),
    formError(),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const spec = {
      name: name.value.trim(),
      vcpus: Number(vcpus.value),
      memory_mib: Number(memory.value),
      machine: machine.value,
      autostart: autostart.checked,
      disks: [{ source: 'new', pool: pool.value.trim(), size_bytes: Math.round(Number(size.value) * GIB / 512) * 512, bus: bus.value }],
      nics: bridge.value.trim() ? [{ bridge: bridge.value.trim() }] : [],
    };
    submit.disabled = true;
    try {
      const task = await api('POST', '/api/v1/vms', { body: spec, signedIn: true });
      form.replaceWith(taskLine(task, onDone));
    } catch (err) {
      submit.disabled = false;
      showError(form, err);
    }
  });
  return form;
}

/** The live console of `vm` in a <pre>; returns [element, close]. */
function consoleView(vm) {
  const pre = h('pre', { class: 'console', 'data-console': vm, 'aria-live': 'off' });
  pre.style.maxHeight = '24rem';
  pre.style.overflow = 'auto';
  pre.style.background = '#111';
  pre.style.color = '#ddd';
  pre.style.padding = '0.75rem';
  pre.style.whiteSpace = 'pre-wrap';
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
  const body = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const newButton = h('button', { type: 'button', class: 'small' }, 'New VM');
  const slot = h('div', {});
  main.append(h('div', { class: 'section-head' }, h('h1', {}, 'VMs'), newButton), slot, body);
  let closeConsole = null;
  let openConsole = null;

  newButton.addEventListener('click', () => {
    slot.replaceChildren(createForm(() => load()));
  });

  async function act(vm, line, method, path, bodyJson, isTask) {
    try {
      const r = await api(method, path, { body: bodyJson, signedIn: true });
      if (isTask) line.replaceChildren(taskLine(r, () => load()));
      else load();
    } catch (err) {
      line.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
    }
  }

  function vmCard(vm) {
    const line = h('div', {});
    const base = `/api/v1/vms/${encodeURIComponent(vm.name)}`;
    const running = vm.state === 'running' || vm.state === 'paused' || vm.state === 'shutting_down';
    const btn = (label, fn, cls = 'secondary small') => h('button', { type: 'button', class: cls, 'data-action': label, onclick: fn }, label);
    const buttons = running
      ? [btn('Shut down', () => act(vm, line, 'POST', `${base}/shutdown`, {}, true)),
        btn('Power off', () => act(vm, line, 'POST', `${base}/off`, {}, false)),
        btn('Reboot', () => act(vm, line, 'POST', `${base}/reboot`, {}, false))]
      : [btn('Start', () => act(vm, line, 'POST', `${base}/start`, {}, true), 'small')];
    buttons.push(btn('Clone', () => {
      const input = h('input', { type: 'text', maxlength: 24 });
      const f = h('form', { class: 'inline-form' }, field('name', 'Name of the clone', input), formError(),
        h('button', { type: 'submit', class: 'small' }, 'Clone'));
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
      const [pre, close] = consoleView(vm.name);
      closeConsole = close;
      openConsole = vm.name;
      line.replaceChildren(pre);
    }));
    if (!running) {
      buttons.push(btn('Delete', () => {
        const input = h('input', { type: 'text' });
        const disks = h('input', { type: 'checkbox' });
        const f = h('form', { class: 'inline-form' },
          field('confirm_name', `Type ${vm.name} to delete this VM`, input),
          field('delete_disks', 'Delete its disks and snapshots too', disks), formError(),
          h('button', { type: 'submit', class: 'danger small' }, 'Delete'));
        f.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          clearErrors(f);
          try {
            await api('DELETE', base, { body: { confirm_name: input.value.trim(), delete_disks: disks.checked }, signedIn: true });
            load();
          } catch (err) { showError(f, err); }
        });
        line.replaceChildren(f);
      }));
    }
    const disks = vm.disks.map((d) => `${d.kind === 'cdrom' ? 'CD-ROM' : 'disk'} ${d.pool}/${d.volume}${d.origin ? ` (clone of ${d.origin})` : ''}`).join(', ');
    return h('section', { class: 'card', 'data-vm': vm.name, 'data-state': vm.state },
      h('div', { class: 'task-head' }, h('p', { class: 'row-title' }, vm.name), stateBadge(vm.state)),
      h('p', { class: 'muted small' },
        `${vm.vcpus} vCPU · ${vm.memory_mib} MiB · ${vm.cpu_model} · ${vm.machine}${vm.autostart ? ' · autostart' : ''}`),
      h('p', { class: 'muted small' }, disks || 'no disks'),
      vm.nics.length ? h('p', { class: 'muted small' }, vm.nics.map((n) => `${n.bridge} ${n.mac}`).join(', ')) : null,
      h('div', { class: 'actions' }, ...buttons),
      line);
  }

  async function load() {
    let res;
    try {
      res = await get('/api/v1/vms');
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
    if (closeConsole && !res.vms.some((v) => v.name === openConsole)) { closeConsole(); closeConsole = null; }
    if (closeConsole) return; // keep an open console; states refresh on the next load
    body.replaceChildren(node, ...(res.vms.length
      ? res.vms.map(vmCard)
      : [emptyState('No VMs yet', 'Create a VM with a new thin disk on a pool, or clone one.')]));
  }

  await load();
  const timer = setInterval(() => { if (!closeConsole) load(); }, 3000);
  const off = on('task', (t) => { if (t.state !== 'running' && /^vm\./.test(t.kind)) load(); });
  return () => {
    clearInterval(timer);
    off();
    if (closeConsole) closeConsole();
  };
}
