// Account: the signed-in user's password and API tokens (list, create with the secret shown
// once, revoke).

import { api, get } from './api.js';
import { badge, emptyState, h, replace } from './dom.js';
import { busy, clearErrors, countdown, field, formError, sentence, showError } from './form.js';
import { exact, when } from './format.js';

const MIN_PASSWORD = 12;
const DEFAULT_DAYS = 90;
const MAX_DAYS = 3650;

const SCOPE = {
  admin: ['info', 'Admin'],
  read_only: ['neutral', 'Read-only'],
};

/** A token's expiry for people: "expires in 89 d", "expired". */
function expiry(t) {
  if (t.expires === null || t.expires === undefined) return 'never expires';
  const left = t.expires - Date.now() / 1000;
  if (left <= 0) return 'expired';
  const days = Math.floor(left / 86400);
  return days >= 1 ? `expires in ${days} d` : `expires in ${Math.max(1, Math.round(left / 3600))} h`;
}

/** Render the Account section into `main`. */
export async function renderAccount(main) {
  const who = h('p', { class: 'muted' });
  const passwordBody = h('div', {});
  const tokensBody = h('div', {}, h('p', { class: 'loading' }, 'Loading…'));
  const created = h('div', {});
  main.append(
    h('div', { class: 'section-head' }, h('div', {}, h('h1', {}, 'Account'), who)),
    h('section', { class: 'card', 'aria-labelledby': 'password-h' },
      h('h2', { id: 'password-h' }, 'Change password'), passwordBody),
    h('section', { class: 'card', 'aria-labelledby': 'tokens-h' },
      h('h2', { id: 'tokens-h' }, 'API tokens'),
      h('p', { class: 'intro' }, 'A token lets a script or another machine use the API as you, without your password. cairnctl login makes one for itself.'),
      created, tokensBody, tokenForm()));

  let user = '';
  try {
    const me = await get('/api/v1/auth/me');
    user = me.user;
    who.textContent = `Signed in as ${user}`;
  } catch (err) {
    who.textContent = sentence(err.message);
  }
  replace(passwordBody, passwordForm());

  function passwordForm() {
    const current = h('input', { type: 'password', autocomplete: 'current-password' });
    const pw = h('input', { type: 'password', autocomplete: 'new-password' });
    const confirm = h('input', { type: 'password', autocomplete: 'new-password' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Change password');
    const done = h('div', { role: 'status' });
    const form = h('form', { novalidate: true, class: 'account-password' },
      h('p', { class: 'intro' }, 'Changing the password ends every other session and every API token of this user.'),
      formError(),
      field('current_password', 'Current password', current),
      field('new_password', 'New password', pw, `At least ${MIN_PASSWORD} characters. A few unrelated words make a strong password that is easy to type.`),
      field('confirm', 'Repeat the new password', confirm),
      h('div', { class: 'actions' }, h('span'), submit),
      done);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (submit.disabled) return;
      clearErrors(form);
      replace(done);
      if (pw.value !== confirm.value && [...pw.value].length >= MIN_PASSWORD) {
        showError(form, { field: 'confirm', message: 'The two passwords differ; type the same password twice.' });
        return;
      }
      try {
        await busy(submit, 'Changing…', () => api('PUT', '/api/v1/auth/password', {
          body: { current_password: current.value, new_password: pw.value },
          signedIn: true,
        }));
      } catch (err) {
        if (err.status === 429) {
          const slot = form.querySelector('[data-field="current_password"] .field-error');
          countdown(slot, submit, err.retryAfter || 1, 'Too many wrong passwords from this address.');
        } else {
          showError(form, err);
          if (err.field === 'current_password') current.select();
        }
        return;
      }
      current.value = '';
      pw.value = '';
      confirm.value = '';
      replace(done, h('div', { class: 'notice done-notice' },
        h('p', { class: 'row-title' }, 'Password changed.'),
        h('p', {}, `Every other session of ${user || 'this user'} and every API token of ${user || 'this user'} were ended; this page stays signed in.`),
        h('p', {}, 'Machines using cairnctl must run ', h('code', {}, 'cairnctl login'), ' again.')));
      loadTokens();
    });
    return form;
  }

  function tokenRow(t) {
    const [tone, label] = SCOPE[t.scope] || SCOPE.admin;
    const actions = h('div', { class: 'row-actions' });
    const askRevoke = () => {
      const yes = h('button', { type: 'button', class: 'primary danger small' }, 'Revoke');
      const no = h('button', { type: 'button', class: 'secondary small', onclick: () => replace(actions, revokeBtn) }, 'Cancel');
      const err = h('p', { class: 'field-error', role: 'alert', hidden: true });
      yes.addEventListener('click', async () => {
        try {
          await busy(yes, 'Revoking…', () => api('DELETE', `/api/v1/auth/tokens/${encodeURIComponent(t.id)}`, { signedIn: true }));
        } catch (e) {
          if (e.status !== 404) {
            err.textContent = sentence(e.message);
            err.hidden = false;
            return;
          }
        }
        loadTokens();
      });
      replace(actions, h('span', { class: 'small' }, `Revoke ${t.name}?`), yes, no, err);
      no.focus();
    };
    const revokeBtn = h('button', { type: 'button', class: 'secondary small', onclick: askRevoke },
      'Revoke…', h('span', { class: 'visually-hidden' }, ` token ${t.name}`));
    actions.append(revokeBtn);
    const parts = [`created ${when(t.created)}`, expiry(t)];
    if (t.parent) parts.push(`made with token ${t.parent}`);
    return h('li', { class: 'list-row', 'data-token': t.id },
      badge(tone, label),
      h('div', { class: 'grow' },
        h('p', { class: 'row-title' }, t.name),
        h('p', { class: 'muted small', title: t.expires ? `Expires ${exact(t.expires)}` : null }, parts.join(' · ')),
        h('p', { class: 'muted small mono' }, `id ${t.id}`)),
      actions);
  }

  async function loadTokens() {
    let list;
    try {
      list = await get('/api/v1/auth/tokens');
    } catch (err) {
      replace(tokensBody, h('p', { class: 'form-error' }, sentence(err.message)));
      return;
    }
    const tokens = [...list.tokens].sort((a, b) => b.created - a.created);
    // A secret on show whose token has ended (revoked, or by a password change) is of no use.
    const shown = created.querySelector('[data-new-token]');
    if (shown && !tokens.some((t) => t.id === shown.dataset.newToken)) replace(created);
    replace(tokensBody, tokens.length === 0
      ? emptyState('No API tokens', 'Create one below for a script, or run cairnctl login on the machine that should use the API.')
      : h('ul', { class: 'list tokens' }, tokens.map(tokenRow)));
  }

  function tokenForm() {
    const name = h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', maxlength: 64, placeholder: 'backup-script' });
    const scope = h('select', {},
      h('option', { value: 'admin' }, 'Admin: everything you can do'),
      h('option', { value: 'read_only' }, 'Read-only: look, change nothing'));
    const days = h('input', { type: 'text', inputmode: 'numeric', value: String(DEFAULT_DAYS), autocomplete: 'off' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Create token');
    const form = h('form', { class: 'card mini-form', novalidate: true },
      h('h3', {}, 'New token'),
      formError(),
      field('name', 'Name', name, 'Up to 64 characters: what or where it is used, e.g. the machine.'),
      h('div', { class: 'field-row' },
        field('scope', 'Scope', scope),
        field('expires_days', 'Valid for (days)', days, `1 to ${MAX_DAYS} days.`)),
      h('div', { class: 'actions' }, h('span'), submit));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      if (submit.disabled) return;
      clearErrors(form);
      const n = Number(days.value.trim());
      if (!Number.isInteger(n) || n < 1 || n > MAX_DAYS) {
        showError(form, { field: 'expires_days', message: `A token lasts 1 to ${MAX_DAYS} days; give a whole number.` });
        return;
      }
      let t;
      try {
        t = await busy(submit, 'Creating…', () => api('POST', '/api/v1/auth/tokens', {
          body: { name: name.value.trim(), scope: scope.value, expires_days: n },
          signedIn: true,
        }));
      } catch (err) {
        showError(form, err, 'name');
        return;
      }
      name.value = '';
      showSecret(t);
      loadTokens();
    });
    return form;
  }

  /** The new token's secret, shown once, with a copy button. */
  function showSecret(t) {
    const secret = h('input', { type: 'text', readonly: true, class: 'mono secret', value: t.token, 'aria-label': `Secret of token ${t.name}` });
    const status = h('span', { class: 'muted small', role: 'status' });
    const copy = h('button', { type: 'button', class: 'secondary small' }, 'Copy');
    copy.addEventListener('click', async () => {
      secret.select();
      try {
        await navigator.clipboard.writeText(t.token);
        status.textContent = 'Copied.';
      } catch {
        status.textContent = 'Selected: press Ctrl+C (⌘C on a Mac) to copy.';
      }
    });
    const close = h('button', { type: 'button', class: 'link small', onclick: () => replace(created) }, 'Done');
    replace(created, h('div', { class: 'notice token-secret', 'data-new-token': t.id },
      h('p', { class: 'row-title' }, `Token ${t.name} created`),
      h('p', {}, 'Copy the secret now: it is shown only this once. Use it as ', h('code', {}, 'Authorization: Bearer …'), ', or give it to cairnctl.'),
      h('div', { class: 'secret-row' }, secret, copy),
      h('div', { class: 'secret-foot' }, status, close)));
    secret.focus();
    secret.select();
  }

  await loadTokens();
}
