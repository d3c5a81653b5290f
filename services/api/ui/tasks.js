// Tasks: long operations with live progress bars from the event stream.

import { get } from './api.js';
import { badge, emptyState, h, progressBar } from './dom.js';
import { sentence } from './form.js';
import { exact, when } from './format.js';
import { on } from './events.js';

const STATE = {
  running: ['info', 'Running'],
  succeeded: ['ok', 'Done'],
  failed: ['critical', 'Failed'],
};

function row(t) {
  const [tone, label] = STATE[t.state] || ['neutral', t.state];
  return h('li', { class: 'task', 'data-task': t.id, 'data-state': t.state },
    h('div', { class: 'task-head' },
      h('p', { class: 'row-title' }, t.kind),
      badge(tone, label)),
    h('p', { class: 'task-msg' }, t.message),
    h('div', { class: 'task-progress' },
      progressBar(t.progress, tone === 'critical' ? 'critical' : tone === 'ok' ? 'ok' : 'info',
        t.state === 'running' && t.progress === 0, `Progress of task #${t.id} (${t.kind})`),
      h('span', { class: 'pct' }, `${t.progress} %`)),
    h('p', { class: 'muted small', title: exact(t.created) }, `Started ${when(t.created)} · #${t.id}`));
}

/** A live progress line for task `t`; calls `onDone(task)` once it ends. */
export function taskLine(t, onDone) {
  const line = h('div', { class: 'task-inline', 'data-task': t.id });
  let off = null;
  let ended = false;
  let shown = 0;
  const draw = (task) => {
    if (ended) return;
    shown = task.progress;
    const failed = task.state === 'failed';
    line.replaceChildren(
      h('p', { class: failed ? 'form-error' : 'muted' }, sentence(task.message)),
      progressBar(task.progress, failed ? 'critical' : task.state === 'succeeded' ? 'ok' : 'info',
        task.state === 'running' && task.progress === 0, sentence(task.message)),
      h('span', { class: 'pct' }, `${task.progress} %`));
    if (task.state !== 'running') {
      ended = true;
      if (off) off();
      off = null;
      if (onDone) onDone(task);
    }
  };
  draw(t);
  off = on('task', (task) => { if (task.id === t.id) draw(task); });
  if (ended) off();
  // A task that ended before the subscription sends no more events: read it once (a running
  // answer older than an event already drawn is not drawn).
  get(`/api/v1/tasks/${t.id}`).then((task) => {
    if (task.state !== 'running' || task.progress >= shown) draw(task);
  }).catch(() => {});
  return line;
}

/** Render the Tasks section into `main`; returns a cleanup function. */
export async function renderTasks(main) {
  const list = h('ul', { class: 'tasks' });
  const body = h('section', { class: 'card' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(h('div', { class: 'section-head' }, h('h1', {}, 'Tasks')), body);
  const tasks = new Map();

  function draw() {
    if (tasks.size === 0) {
      body.replaceChildren(emptyState('No tasks yet',
        'Long operations such as building a pool, a scrub or a migration appear here with their progress.'));
      return;
    }
    const sorted = [...tasks.values()].sort((a, b) => b.id - a.id);
    list.replaceChildren(...sorted.map(row));
    body.replaceChildren(list);
  }

  try {
    const res = await get('/api/v1/tasks');
    res.tasks.forEach((t) => tasks.set(t.id, t));
  } catch (err) {
    body.replaceChildren(h('p', { class: 'form-error' }, err.message));
    return;
  }
  draw();
  return on('task', (t) => {
    tasks.set(t.id, t);
    const old = list.querySelector(`[data-task="${t.id}"]`);
    if (old && body.contains(list)) old.replaceWith(row(t));
    else draw();
  });
}
