// Tasks: long operations with live progress bars from the event stream.

import { get } from './api.js';
import { badge, emptyState, h, progressBar } from './dom.js';
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
        t.state === 'running' && t.progress === 0),
      h('span', { class: 'pct' }, `${t.progress} %`)),
    h('p', { class: 'muted small', title: exact(t.created) }, `Started ${when(t.created)} · #${t.id}`));
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
