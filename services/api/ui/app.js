// Start-up: ask the node whether it is set up and who we are, then show setup, sign-in or
// the dashboard.

import { api, setCsrf, whenSignedOut } from './api.js';
import { h, replace } from './dom.js';
import { renderSetup } from './setup.js';
import { renderLogin } from './login.js';
import { renderShell } from './shell.js';

const root = document.getElementById('app');
let shell = null;

async function health() {
  try {
    return await api('GET', '/api/v1/health');
  } catch {
    return null;
  }
}

function fatal(err) {
  replace(root, h('main', { class: 'login-page' }, h('div', { class: 'card' },
    h('h1', {}, 'Cannot load Cairn'),
    h('p', { class: 'form-error' }, err.message),
    h('div', { class: 'actions' }, h('button', { class: 'primary', onclick: () => start() }, 'Try again')))));
}

/** Decide what to show; `notice` is passed on to the sign-in page. */
async function start(notice = null) {
  if (shell) shell.stop();
  shell = null;
  setCsrf(null);
  try {
    const [status, hl] = await Promise.all([api('GET', '/api/v1/setup', { setup: true }), health()]);
    if (!status.claimed) {
      renderSetup(root, { status, health: hl, onDone: () => dashboard(hl) });
      return;
    }
    let me;
    try {
      me = await api('GET', '/api/v1/auth/me');
    } catch (err) {
      if (err.status !== 401) throw err;
      renderLogin(root, { health: hl, notice, onDone: () => start() });
      return;
    }
    setCsrf(me.csrf_token);
    shell = renderShell(root, { health: hl, me, onSignedOut: (msg) => start(msg) });
  } catch (err) {
    fatal(err);
  }
}

function dashboard() {
  if (!window.location.hash || window.location.hash === '#') window.location.hash = '#/nodes';
  start();
}

whenSignedOut(() => start('Your session has ended. Sign in again to continue.'));
start();
