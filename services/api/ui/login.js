// The sign-in page.

import { api, setCsrf } from './api.js';
import { h, replace } from './dom.js';
import { busy, clearErrors, countdown, field, formError, showError } from './form.js';

/** Show the sign-in form in `root`; `notice` explains why (e.g. the session ended). */
export function renderLogin(root, { health, notice, onDone }) {
  const user = h('input', { type: 'text', autocomplete: 'username', value: 'admin', spellcheck: 'false', autocapitalize: 'none' });
  const pw = h('input', { type: 'password', autocomplete: 'current-password' });
  const submit = h('button', { type: 'submit', class: 'primary wide' }, 'Sign in');
  const form = h('form', { class: 'card login-card', novalidate: true },
    h('h1', {}, 'Sign in'),
    notice ? h('p', { class: 'notice', role: 'status' }, notice) : null,
    formError(),
    field('username', 'User', user),
    field('password', 'Password', pw),
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (submit.disabled) return;
    clearErrors(form);
    try {
      const res = await busy(submit, 'Signing in…', () => api('POST', '/api/v1/auth/login', {
        body: { username: user.value.trim() || 'admin', password: pw.value },
      }));
      setCsrf(res.csrf_token);
      onDone();
    } catch (err) {
      if (err.status === 429) {
        const slot = form.querySelector('[data-field="password"] .field-error');
        countdown(slot, submit, err.retryAfter || 1, 'Too many failed sign-ins from this address.');
      } else if (err.code === 'bad_credentials') {
        showError(form, err, 'password');
        pw.select();
      } else {
        showError(form, err);
      }
    }
  });
  replace(root, h('main', { class: 'login-page' },
    h('header', { class: 'setup-brand' },
      h('img', { src: '/ui/icon.svg', alt: '', width: 40, height: 40 }),
      h('div', {},
        h('p', { class: 'brand-name' }, 'Cairn'),
        h('p', { class: 'brand-sub' }, health ? health.hostname : 'node'))),
    form));
  document.title = `Sign in · ${health ? health.hostname : 'Cairn'}`;
  (user.value ? pw : user).focus();
}
