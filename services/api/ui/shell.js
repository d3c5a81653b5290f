// The dashboard shell: header (node name, health, sign-out), navigation and the sections.

import { api, DOMAIN_LABELS, get, whenStarting } from './api.js';
import { badge, h, replace } from './dom.js';
import { connect, disconnect, on } from './events.js';
import { renderNodes } from './nodes.js';
import { renderAlerts } from './alerts.js';
import { renderTasks } from './tasks.js';
import { renderStorage } from './storage.js';
import { renderVms } from './vms.js';
import { renderImages } from './images.js';
import { renderNetwork } from './network.js';
import { renderCluster } from './cluster.js';
import { renderAccount } from './account.js';
import { known, pendingBar, remember } from './netpending.js';

/** The sections, in navigation order. */
export const SECTIONS = [
  { id: 'nodes', title: 'Nodes', render: renderNodes },
  { id: 'storage', title: 'Disks & pools', render: renderStorage },
  { id: 'network', title: 'Network', render: renderNetwork },
  { id: 'vms', title: 'VMs', render: renderVms },
  { id: 'images', title: 'Images', render: renderImages },
  { id: 'cluster', title: 'Cluster', render: renderCluster },
  { id: 'alerts', title: 'Alerts', render: renderAlerts },
  { id: 'tasks', title: 'Tasks', render: renderTasks },
  { id: 'account', title: 'Account', render: renderAccount },
];

/** The sections a cluster witness hides: it runs no storage, no VMs and so no images. */
export const NOT_ON_A_WITNESS = ['storage', 'vms', 'images'];

/** The section named by the URL's hash (`#/tasks`, a query after it ignored), or the first;
 * on a witness, a section it hides is the Cluster page instead. */
export function currentSection(witness = false) {
  const id = window.location.hash.replace(/^#\/?/, '').replace(/\?.*$/, '');
  const s = SECTIONS.find((x) => x.id === id) || SECTIONS[0];
  return witness && NOT_ON_A_WITNESS.includes(s.id) ? SECTIONS.find((x) => x.id === 'cluster') : s;
}

/** Build the shell in `root` and show the current section; `onSignedOut` after sign-out. */
export function renderShell(root, { health, me, onSignedOut }) {
  const healthBadge = h('span', { class: 'health' });
  const live = h('span', { class: 'live', title: 'Live updates' });
  const hostname = h('span', { class: 'host' }, health ? health.hostname : '');
  // "Witness" beside the name on a cluster witness (etcd, the API and the cluster only).
  const roleBadge = h('span', { class: 'role', 'data-role': 'witness', hidden: true,
    title: 'A cluster witness: an etcd vote, no storage and no VMs' }, badge('info', 'Witness'));
  const navItems = {};
  const counts = {};
  const nav = h('nav', { class: 'nav', 'aria-label': 'Sections' },
    h('ul', {}, SECTIONS.map((s) => {
      counts[s.id] = h('span', { class: 'count', hidden: true });
      navItems[s.id] = h('li', {}, h('a', { href: `#/${s.id}`, 'data-section': s.id }, h('span', {}, s.title), counts[s.id]));
      return navItems[s.id];
    })));
  const signOut = h('button', { type: 'button', class: 'secondary small', onclick: doSignOut }, 'Sign out');
  const main = h('main', { class: 'main', id: 'main', tabindex: '-1' });
  // The domains still starting and those that failed (from health); empty when all run.
  const strip = h('div', { class: 'domains-strip', role: 'status', 'aria-live': 'polite' });
  // A network change in try mode: its countdown, Confirm and Roll back now on every page.
  const netBar = pendingBar({ onChange: () => { if (currentSection().id === 'network') show(); } });
  replace(root, h('div', { class: 'shell' },
    h('header', { class: 'topbar' },
      h('a', { class: 'brand', href: '#/nodes' },
        h('img', { src: '/ui/icon.svg', alt: '', width: 28, height: 28 }),
        h('span', { class: 'brand-name' }, 'Cairn')),
      h('div', { class: 'node' }, hostname, roleBadge, healthBadge),
      h('div', { class: 'user' }, live, h('a', { class: 'who', href: '#/account', title: 'Account: password and API tokens' }, me.user), signOut)),
    strip, netBar.el, nav, main));

  let cleanup = null;
  let stopped = false;
  async function show() {
    if (stopped) return;
    const s = currentSection(isWitness());
    if (cleanup) cleanup();
    cleanup = null;
    nav.querySelectorAll('a').forEach((a) => {
      const here = a.dataset.section === s.id;
      a.classList.toggle('active', here);
      if (here) {
        a.setAttribute('aria-current', 'page');
        // On a phone the sections are a scrolling row: keep the current one in sight.
        a.scrollIntoView({ block: 'nearest', inline: 'nearest' });
      }
      else a.removeAttribute('aria-current');
    });
    main.replaceChildren();
    refreshCounts();
    document.title = `${s.title} · ${hostname.textContent || 'Cairn'}`;
    const c = await s.render(main);
    if (typeof c === 'function') cleanup = c;
  }

  // The header's verdict: unreachable, critical or warning alerts, an unconfirmed boot, or
  // healthy. It follows /api/v1/health (every 30 s) and the active alerts (live).
  let lastHealth = health;
  let active = [];
  let shownWitness = false;
  function isWitness() {
    return !!(lastHealth && lastHealth.witness);
  }
  // A witness hides the sections it has nothing for; shown again if it stops being one.
  function drawRole() {
    const w = isWitness();
    roleBadge.hidden = !w;
    NOT_ON_A_WITNESS.forEach((id) => { navItems[id].hidden = w; });
    const changed = w !== shownWitness;
    shownWitness = w;
    return changed;
  }
  drawRole();
  function drawHealth() {
    if (!lastHealth) {
      replace(healthBadge, badge('critical', 'Unreachable'));
      return;
    }
    hostname.textContent = lastHealth.hostname;
    const critical = active.filter((a) => a.level === 'critical').length;
    const warning = active.filter((a) => a.level === 'warning').length;
    const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
    let b;
    if (lastHealth.status !== 'ok') b = badge('critical', lastHealth.status);
    else if (critical) b = badge('critical', plural(critical, 'critical alert'));
    else if (warning) b = badge('warning', plural(warning, 'warning'));
    else if (lastHealth.boot.slot && !lastHealth.boot.blessed) b = badge('warning', 'Boot not confirmed');
    else b = badge('ok', 'Healthy');
    replace(healthBadge, h('a', { href: '#/alerts', class: 'health-link' }, b));
  }
  drawHealth();

  // While a domain starts: the strip says which, health is polled every 2 s, and a section
  // whose request answered 503 `starting` is shown again once its domain is no longer
  // starting. A failed domain stays shown with its reason; absent ones are not mentioned.
  const STARTING_POLL_MS = 2000;
  const waiting = new Set();
  let poll = null;
  const domainsOf = (hl) => (hl && hl.domains) || {};
  function drawStrip() {
    const ds = Object.entries(domainsOf(lastHealth));
    const starting = ds.filter(([, d]) => d.state === 'starting').map(([k]) => k);
    const failed = ds.filter(([, d]) => d.state === 'failed');
    const names = starting.map((k) => {
      const label = DOMAIN_LABELS[k] || k;
      return label === 'SMART' || label === 'VMs' ? label : label.toLowerCase();
    });
    replace(strip,
      starting.length ? h('p', { class: 'notice' }, `Starting: ${names.join(', ')}…`) : null,
      failed.map(([k, d]) => h('p', { class: 'form-error', 'data-domain': k },
        `${DOMAIN_LABELS[k] || k} failed to start: ${d.reason || 'no reason given'}`)));
  }
  function stillStarting(key) {
    const d = domainsOf(lastHealth)[key];
    return key ? !d || d.state === 'starting' : !lastHealth || lastHealth.ready === false;
  }
  function schedulePoll() {
    const busy = (lastHealth && lastHealth.ready === false) || waiting.size > 0;
    if (!busy || poll || stopped) return;
    poll = setTimeout(async () => {
      poll = null;
      try {
        lastHealth = await api('GET', '/api/v1/health');
      } catch {
        lastHealth = null;
      }
      afterHealth();
    }, STARTING_POLL_MS);
  }
  function afterHealth() {
    drawHealth();
    if (drawRole() && NOT_ON_A_WITNESS.includes(currentSection().id)) show();
    drawStrip();
    const done = [...waiting].filter((k) => !stillStarting(k));
    done.forEach((k) => waiting.delete(k));
    if (done.length) show();
    schedulePoll();
  }
  whenStarting((key) => {
    waiting.add(key);
    schedulePoll();
  });
  drawStrip();
  schedulePoll();

  async function refreshCounts() {
    try {
      const [alerts, tasks] = await Promise.all([get('/api/v1/alerts'), get('/api/v1/tasks')]);
      active = alerts.active;
      drawHealth();
      setCount('alerts', alerts.active.length, alerts.active.some((a) => a.level === 'critical') ? 'critical' : 'warning');
      setCount('tasks', tasks.tasks.filter((t) => t.state === 'running').length, 'info');
    } catch {
      // The section pages report errors; the counts just stay as they were.
    }
  }
  function setCount(id, n, tone) {
    counts[id].hidden = n === 0;
    counts[id].textContent = String(n);
    counts[id].className = `count count-${tone}`;
  }

  const timers = [setInterval(async () => {
    try {
      lastHealth = await api('GET', '/api/v1/health');
    } catch {
      lastHealth = null;
    }
    afterHealth();
    // Also notices a session that ended (the sign-in page then says so).
    refreshCounts();
  }, 30000)];
  const offs = [
    on('status', (up) => {
      live.classList.toggle('on', up);
      live.title = up ? 'Live updates: connected' : 'Live updates: reconnecting…';
    }),
    on('task', refreshCounts),
    on('alert', refreshCounts),
  ];
  const onHash = () => show();
  window.addEventListener('hashchange', onHash);
  const onResize = () => nav.querySelector('a.active')?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  window.addEventListener('resize', onResize);

  function stop() {
    stopped = true;
    netBar.stop();
    if (cleanup) cleanup();
    timers.forEach(clearInterval);
    if (poll) clearTimeout(poll);
    whenStarting(null);
    offs.forEach((off) => off());
    window.removeEventListener('hashchange', onHash);
    window.removeEventListener('resize', onResize);
    disconnect();
  }

  async function doSignOut() {
    signOut.disabled = true;
    try {
      await api('POST', '/api/v1/auth/logout');
    } catch {
      // Signed out already (or the node is gone): the page goes to sign-in either way.
    }
    stop();
    onSignedOut('You are signed out.');
  }

  // A change left in try mode (from another tab or browser) shows its countdown here too.
  const net = domainsOf(health).network;
  if (net && net.state === 'ready') {
    get('/api/v1/network').then((v) => {
      if (v && v.pending && !known()) {
        remember({ deadline_unix_ms: Date.now() + 1000 * v.pending.remaining_s, rollback_before: v.last_rollback ? v.last_rollback.at_unix_ms : 0 });
      }
    }).catch(() => {});
  }

  connect();
  show();
  return { stop };
}
