// Cluster: standalone → create a cluster or join one; member → the cluster, quorum, failover,
// the nodes with their liveness, per VM bridge which nodes have it, this node's etcd snapshots,
// a join token for a new node, leave, remove an offline node.

import { api, get } from './api.js';
import { badge, emptyState, h } from './dom.js';
import { clearErrors, field, formError, sentence, showError } from './form.js';
import { duration, exact } from './format.js';
import { on } from './events.js';
import { taskLine } from './tasks.js';

const LIVENESS = { online: ['ok', 'Online'], unreachable: ['warning', 'Unreachable'], offline: ['critical', 'Offline'] };
const ROLE = { voter: 'Voter', client: 'Client', witness: 'Witness' };
const NAME_RULE = /^[a-z][a-z0-9-]{0,62}$/;

/** The node's own addresses (without prefix length), from the network status; [] if unknown. */
export async function ownAddresses() {
  try {
    const st = await get('/api/v1/network/status');
    return [...new Set(st.links.flatMap((l) => l.addresses || []).map((a) => a.split('/')[0])
      .filter((a) => a && !a.startsWith('127.') && a !== '::1' && !a.toLowerCase().startsWith('fe80:')))];
  } catch {
    return [];
  }
}

/** An address picker: a list of the node's addresses, or a text field when none is known. */
export function addressInput(addresses) {
  if (!addresses.length) {
    return h('input', { type: 'text', spellcheck: 'false', autocapitalize: 'none', class: 'mono', placeholder: '10.0.0.11' });
  }
  return h('select', {}, addresses.map((a) => h('option', { value: a }, a)));
}

/** Per VM bridge, the nodes that have it (a VM only runs where all its bridges are). */
function bridgesCard(bridges) {
  if (bridges.length === 0) return null;
  return h('section', { class: 'card', 'aria-labelledby': 'bridges-h' }, h('h2', { id: 'bridges-h' }, 'VM bridges'),
    h('p', { class: 'muted small' }, 'A VM can only run on a node that has every bridge it uses.'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data-table bridges' },
      h('thead', {}, h('tr', {}, ['Bridge', 'On', 'Missing on'].map((t) => h('th', {}, t)))),
      h('tbody', {}, bridges.map((b) => h('tr', {},
        h('td', {}, b.bridge),
        h('td', {}, b.nodes.join(', ')),
        h('td', {}, b.missing_on.length ? badge('warning', b.missing_on.join(', ')) : '—')))))));
}

/** This node's etcd snapshots on STATE (what a recovery restores from). */
function snapshotsCard(snapshots) {
  if (snapshots.length === 0) return null;
  return h('section', { class: 'card', 'aria-labelledby': 'snapshots-h' }, h('h2', { id: 'snapshots-h' }, 'etcd snapshots on this node'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data-table snapshots' },
      h('thead', {}, h('tr', {}, ['Taken', 'Size', 'Revision', 'File'].map((t) => h('th', {}, t)))),
      h('tbody', {}, snapshots.map((sn) => h('tr', {},
        h('td', {}, exact(sn.taken_at)),
        h('td', {}, `${Math.max(1, Math.round(sn.size / 1024))} KiB`),
        h('td', {}, String(sn.revision)),
        h('td', { class: 'mono small' }, sn.file)))))));
}

/** This node's part, when it is a witness: what it runs and what it does not. */
function thisRole(status) {
  const me = (status.nodes || []).find((n) => n.name === status.this_node);
  if (!me || me.role !== 'witness') return null;
  return h('p', { class: 'this-role', 'data-role': 'witness' }, badge('info', 'Witness'),
    ' This node is the cluster\'s witness: it runs an etcd vote, this page and the cluster only (no storage, no VMs).');
}

/** The failover line: automatic, or why not. */
function failoverLine(f) {
  if (!f) return null;
  return f.automatic
    ? h('p', { class: 'failover' }, badge('ok', 'Automatic failover'))
    : h('p', { class: 'failover' }, badge('warning', 'Manual failover'), ` No automatic failover: ${sentence(f.reason || 'no reason given')}`);
}

/** Render the Cluster section into `main`; returns a cleanup function. */
export async function renderCluster(main) {
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  const running = h('div', { class: 'stack' });
  main.append(h('div', { class: 'section-head' }, h('h1', {}, 'Cluster')), running, body);
  let stopped = false;
  let status = null;
  const shownTasks = new Set();

  /** A running cluster task's progress (once per task), reloading when it ends. */
  function follow(task) {
    if (shownTasks.has(task.id)) return;
    shownTasks.add(task.id);
    running.append(h('section', { class: 'card', 'data-cluster-task': task.id }, taskLine(task, () => load())));
  }

  // A create or join the setup wizard started, refused right after setup: say why, once.
  const fromSetup = sessionStorage.getItem('cairn.cluster-error');
  if (fromSetup) {
    sessionStorage.removeItem('cairn.cluster-error');
    running.append(h('p', { class: 'form-error', role: 'alert' }, sentence(fromSetup)));
  }

  async function load() {
    if (stopped) return;
    try {
      status = await get('/api/v1/cluster');
    } catch (err) {
      body.replaceChildren(h('p', { class: 'form-error' }, err.message));
      return;
    }
    get('/api/v1/tasks').then((r) => r.tasks
      .filter((t) => t.kind.startsWith('cluster.') && t.state === 'running').forEach(follow)).catch(() => {});
    if (status.mode === 'standalone') await standalone();
    else if (status.mode === 'joining') {
      body.replaceChildren(h('section', { class: 'card' }, h('p', { class: 'notice' },
        `${status.this_node} is joining a cluster. Its progress shows above and under Tasks.`)));
    } else member();
  }

  /** Start a task from `form` with `request`; its progress replaces the form. */
  async function start(form, request) {
    clearErrors(form);
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const task = await request();
      shownTasks.add(task.id);
      form.replaceWith(h('div', { class: 'card', 'data-cluster-task': task.id }, taskLine(task, () => load())));
    } catch (err) {
      showError(form, err);
      submit.disabled = false;
    }
  }

  async function standalone() {
    const addresses = await ownAddresses();
    const name = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', autocapitalize: 'none', placeholder: 'prod', maxlength: 63 });
    const createAddr = addressInput(addresses);
    const create = h('form', { class: 'card', novalidate: true, 'data-form': 'create' },
      h('h2', {}, 'Create a cluster'),
      h('p', {}, `${status.this_node} becomes the first member. Its pools, VMs and users are kept; other nodes join with a token made here.`),
      field('name', 'Cluster name', name, 'Lowercase letters, digits and -, starting with a letter.'),
      field('address', 'Cluster address', createAddr, 'The address other nodes reach this one at (one of this node’s addresses).'),
      formError(),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Create cluster')));
    create.addEventListener('submit', (ev) => {
      ev.preventDefault();
      start(create, () => api('POST', '/api/v1/cluster', {
        body: { name: name.value.trim(), address: createAddr.value.trim() }, signedIn: true,
      }));
    });
    const token = h('textarea', { rows: 3, spellcheck: 'false', autocapitalize: 'none', class: 'mono' });
    const joinAddr = addressInput(addresses);
    const witness = h('input', { type: 'checkbox' });
    const join = h('form', { class: 'card', novalidate: true, 'data-form': 'join' },
      h('h2', {}, 'Join a cluster'),
      h('p', {}, 'Make a token on a member (Cluster → Add a node) and paste it here.'),
      field('token', 'Join token', token, 'It names the cluster’s certificate: this node checks it before sending anything secret.'),
      field('address', 'Cluster address', joinAddr, 'This node’s address on the cluster network.'),
      h('div', { class: 'field', 'data-field': 'witness' },
        h('label', { class: 'check' }, witness, ' Join as a witness (an etcd vote only: the third vote of two nodes)'),
        h('p', { class: 'field-error', role: 'alert', hidden: true })),
      formError(),
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Join cluster')));
    join.addEventListener('submit', (ev) => {
      ev.preventDefault();
      start(join, () => api('POST', '/api/v1/cluster/join', {
        body: { token: token.value.trim(), address: joinAddr.value.trim(), witness: witness.checked }, signedIn: true,
      }));
    });
    body.replaceChildren(
      h('section', { class: 'card' }, h('p', {}, `${status.this_node} is standalone: its settings are its own. Create a cluster here, or join one.`)),
      h('div', { class: 'cluster-choices' }, create, join));
  }

  function nodeRow(n) {
    const [tone, text] = LIVENESS[n.liveness] || ['neutral', n.liveness];
    const seen = n.last_seen_s_ago == null ? '' : ` · last seen ${n.last_seen_s_ago} s ago`;
    const etcd = !n.etcd_member ? '—' : n.etcd_member.learner ? 'Learner' : 'Member';
    const remove = n.liveness === 'offline' && n.name !== status.this_node
      ? h('button', { type: 'button', class: 'secondary small danger', onclick: () => confirmRemove(n.name) }, 'Remove')
      : null;
    return h('tr', { 'data-node': n.name },
      h('td', {}, h('span', { class: 'mono' }, n.name), n.name === status.this_node ? h('span', { class: 'muted small' }, ' (this node)') : ''),
      h('td', { class: 'mono' }, n.address),
      h('td', {}, ROLE[n.role] || n.role),
      h('td', {}, badge(tone, text), h('span', { class: 'muted small' }, seen)),
      h('td', {}, etcd),
      h('td', {}, remove));
  }

  const dialogs = h('div', { class: 'stack' });

  /** A confirmation naming `node`; removing it runs as a task. */
  function confirmRemove(node) {
    const input = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false' });
    const submit = h('button', { type: 'submit', class: 'primary danger', disabled: true }, `Remove ${node}`);
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = h('form', { class: 'card confirm', novalidate: true, 'data-form': 'remove' },
      h('h3', {}, `Remove node ${node}?`),
      h('p', {}, `${node} is offline. Removing it takes it out of the cluster for good: its etcd member is removed and its certificate revoked. To bring it back, reinstall it and join it again.`),
      field('confirm', 'Node name', input, `Type ${node} to confirm.`),
      formError(),
      h('div', { class: 'actions' }, submit, cancel));
    input.addEventListener('input', () => { submit.disabled = input.value.trim() !== node; });
    cancel.addEventListener('click', () => form.remove());
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      start(form, () => api('DELETE', `/api/v1/cluster/nodes/${encodeURIComponent(node)}`, { signedIn: true }));
    });
    dialogs.replaceChildren(form);
    input.focus();
  }

  function confirmLeave() {
    const submit = h('button', { type: 'submit', class: 'primary danger' }, 'Leave the cluster');
    const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
    const form = h('form', { class: 'card confirm', novalidate: true, 'data-form': 'leave' },
      h('h3', {}, `Leave cluster ${status.cluster.name}?`),
      h('p', {}, `${status.this_node} leaves gracefully and becomes standalone. This is refused while it holds replicas of HA VMs.`),
      formError(),
      h('div', { class: 'actions' }, submit, cancel));
    cancel.addEventListener('click', () => form.remove());
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      start(form, () => api('POST', '/api/v1/cluster/leave', { signedIn: true }));
    });
    dialogs.replaceChildren(form);
    submit.focus();
  }

  const tokenBox = h('div', { class: 'stack' });

  async function addNode(button) {
    button.disabled = true;
    try {
      const t = await api('POST', '/api/v1/cluster/tokens', { body: {}, signedIn: true });
      const text = h('input', { type: 'text', readonly: true, class: 'mono token', value: t.token, 'aria-label': 'Join token' });
      const copied = h('span', { class: 'muted small', role: 'status' });
      const copy = h('button', { type: 'button', class: 'secondary small' }, 'Copy');
      copy.addEventListener('click', async () => {
        text.select();
        try {
          await navigator.clipboard.writeText(t.token);
          copied.textContent = ' Copied.';
        } catch {
          copied.textContent = ' Select the token and copy it.';
        }
      });
      tokenBox.replaceChildren(h('section', { class: 'card', 'data-token': '' },
        h('h3', {}, 'Join token'),
        h('p', {}, 'Shown only this once. On the new node, open Cluster → Join a cluster (or run cairnctl cluster join) and paste it. It can be used once.'),
        h('div', { class: 'token-row' }, text, copy, copied),
        h('p', { class: 'muted small expires' }, `Expires at ${exact(t.expires_at)} (in ${duration(t.expires_at - Date.now() / 1000)}).`)));
    } catch (err) {
      tokenBox.replaceChildren(h('p', { class: 'form-error', role: 'alert' }, sentence(err.message)));
    } finally {
      button.disabled = false;
    }
  }

  function member() {
    const c = status.cluster || {};
    const q = status.quorum;
    const quorum = q
      ? h('p', { class: 'quorum' }, badge(q.has_quorum ? 'ok' : 'critical', q.has_quorum ? 'Quorum' : 'No quorum'),
        ` ${q.reachable.length} of ${q.voters.length} voters reachable (${q.voters.join(', ')}).`)
      : null;
    const add = h('button', { type: 'button', class: 'primary' }, 'Add a node');
    add.addEventListener('click', () => addNode(add));
    const leave = h('button', { type: 'button', class: 'secondary' }, 'Leave');
    leave.addEventListener('click', confirmLeave);
    body.replaceChildren(
      h('section', { class: 'card', 'aria-labelledby': 'cluster-h' },
        h('h2', { id: 'cluster-h' }, `Cluster ${c.name}`),
        quorum,
        failoverLine(status.failover),
        thisRole(status),
        h('p', { class: 'muted small' }, `CA ${c.ca_fingerprint || ''}`),
        h('div', { class: 'actions' }, add, leave)),
      tokenBox,
      dialogs,
      h('section', { class: 'card', 'aria-labelledby': 'nodes-h' }, h('h2', { id: 'nodes-h' }, 'Nodes'),
        status.nodes.length === 0 ? emptyState('No nodes', 'The cluster lists no nodes.')
          : h('div', { class: 'table-wrap' }, h('table', { class: 'data-table' },
            h('thead', {}, h('tr', {}, ['Name', 'Address', 'Role', 'Liveness', 'etcd'].map((t) => h('th', {}, t)),
              h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')))),
            h('tbody', {}, status.nodes.map(nodeRow))))),
      bridgesCard(status.bridges || []),
      snapshotsCard(status.snapshots || []));
  }

  await load();
  // A member's liveness moves: re-read every 10 s (not while a form is open).
  const timer = setInterval(() => {
    if (status && status.mode !== 'standalone' && !dialogs.childElementCount && !tokenBox.childElementCount) load();
  }, 10000);
  const off = on('task', (t) => { if (t.kind && t.kind.startsWith('cluster.') && t.state === 'running') follow(t); });
  return () => {
    stopped = true;
    clearInterval(timer);
    off();
  };
}
