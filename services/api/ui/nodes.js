// Nodes: this node's health, version, uptime and boot slot, from /api/v1/health.

import { api, DOMAIN_LABELS } from './api.js';
import { badge, emptyState, h } from './dom.js';
import { duration, exact } from './format.js';

function bootRows(boot) {
  const rows = [
    ['Boot slot', boot.slot ? boot.slot.toUpperCase() : 'unknown (not booted from a Cairn disk)'],
    ['Boot entry', boot.entry || '—'],
    ['This boot', boot.blessed
      ? badge('ok', 'Confirmed good')
      : badge('warning', 'Not yet confirmed')],
  ];
  return rows.map(([k, v]) => h('div', { class: 'kv' }, h('dt', {}, k), h('dd', {}, v)));
}

/** Each domain's start (health's `domains`), one row each; nothing for an older node. */
function domainRows(domains) {
  const tone = { ready: 'ok', starting: 'info', failed: 'critical', absent: 'neutral' };
  const word = { ready: 'Running', starting: 'Starting', failed: 'Failed', absent: 'Not on this node' };
  // A witness runs no storage, SMART or VMs: said as such, not as a failure.
  const witnessLess = (d) => d.state === 'absent' && d.reason === 'not on a witness';
  return Object.entries(domains || {}).map(([k, d]) => h('li', { class: 'list-row', 'data-domain': k },
    badge(tone[d.state] || 'neutral', witnessLess(d) ? 'Not on a witness' : (word[d.state] || d.state)),
    h('span', { class: 'grow' }, DOMAIN_LABELS[k] || k),
    witnessLess(d) ? null
      : d.reason ? h('span', { class: 'muted' }, d.reason)
      : (typeof d.took_ms === 'number' ? h('span', { class: 'muted' }, `started in ${(d.took_ms / 1000).toFixed(1)} s`) : null)));
}

/** Render the Nodes section into `main`; returns a cleanup function. */
export async function renderNodes(main) {
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(h('div', { class: 'section-head' }, h('h1', {}, 'Nodes')), body);
  let health;
  try {
    health = await api('GET', '/api/v1/health');
  } catch (err) {
    body.replaceChildren(h('p', { class: 'form-error' }, err.message));
    return;
  }
  const boot = health.boot;
  const failed = boot.failed_attempts || [];
  const stage1 = boot.stage1_failures || [];
  const problems = failed.length + stage1.length;
  body.replaceChildren(
    h('article', { class: 'card node-card' },
      h('div', { class: 'node-head' },
        h('div', {},
          h('h2', {}, health.hostname),
          h('p', { class: 'muted' }, 'This node')),
        badge(health.status === 'ok' ? 'ok' : 'critical', health.status === 'ok' ? 'Healthy' : health.status)),
      h('dl', { class: 'kvs' },
        h('div', { class: 'kv' }, h('dt', {}, 'Version'), h('dd', {}, health.version)),
        h('div', { class: 'kv' }, h('dt', {}, 'Up for'), h('dd', {}, duration(health.uptime_s))),
        bootRows(boot))),
    health.domains ? h('article', { class: 'card' },
      h('h2', {}, 'Services'),
      h('ul', { class: 'list' }, domainRows(health.domains))) : null,
    h('article', { class: 'card' },
      h('h2', {}, 'Boot history'),
      problems === 0
        ? h('p', { class: 'muted' }, 'No failed boot attempts recorded.')
        : h('ul', { class: 'list' },
          failed.map((f) => h('li', { class: 'list-row' },
            badge('warning', 'Fell back'),
            h('span', { class: 'grow' }, `Slot ${String(f.slot || '?').toUpperCase()} (${f.entry}) failed to boot after ${f.tries} ${f.tries === 1 ? 'try' : 'tries'}`))),
          stage1.map((f) => h('li', { class: 'list-row' },
            badge('critical', 'Early boot'),
            h('span', { class: 'grow' }, `Slot ${String(f.slot || '?').toUpperCase()}: ${f.reason}`),
            f.time ? h('span', { class: 'muted when' }, typeof f.time === 'number' ? exact(f.time) : String(f.time)) : null)))),
    emptyState('Only this node so far',
      'Other nodes appear here once this node creates or joins a cluster (arrives with clustering).'));
}
