// Alerts: the active conditions and the recent changes, updated live from the event stream.

import { get } from './api.js';
import { badge, emptyState, h } from './dom.js';
import { exact, when } from './format.js';
import { on } from './events.js';

const TONE = { info: 'info', warning: 'warning', critical: 'critical' };
const LABEL = { info: 'Info', warning: 'Warning', critical: 'Critical' };

/** Render the Alerts section into `main`; returns a cleanup function. */
export async function renderAlerts(main) {
  const active = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const recent = h('div', {});
  main.append(
    h('div', { class: 'section-head' }, h('h1', {}, 'Alerts')),
    h('section', { class: 'card' }, h('h2', {}, 'Active'), active),
    h('section', { class: 'card' }, h('h2', {}, 'Recent changes'), recent));

  async function load() {
    let list;
    try {
      list = await get('/api/v1/alerts');
    } catch (err) {
      active.replaceChildren(h('p', { class: 'form-error' }, err.message));
      return;
    }
    active.replaceChildren(list.active.length === 0
      ? emptyState('No active alerts', 'Nothing needs your attention. Problems with disks, pools, the network or VMs show up here and are sent to your alert channels.')
      : h('ul', { class: 'list' }, list.active.map((a) => h('li', { class: `list-row alert-${a.level}` },
        badge(TONE[a.level], LABEL[a.level]),
        h('div', { class: 'grow' }, h('p', { class: 'row-title' }, a.message), h('p', { class: 'muted mono small' }, a.key)),
        h('span', { class: 'muted when', title: exact(a.since) }, `since ${when(a.since)}`)))));
    recent.replaceChildren(list.recent.length === 0
      ? h('p', { class: 'muted' }, 'No alert has been raised or cleared since the node started.')
      : h('ul', { class: 'list' }, list.recent.slice(0, 50).map((a) => h('li', { class: 'list-row' },
        a.state === 'cleared' ? badge('ok', 'Cleared') : badge(TONE[a.level], LABEL[a.level]),
        h('div', { class: 'grow' }, h('p', { class: 'row-title' }, a.message), h('p', { class: 'muted mono small' }, a.key)),
        h('span', { class: 'muted when', title: exact(a.time) }, when(a.time))))));
  }
  await load();
  return on('alert', () => load());
}
