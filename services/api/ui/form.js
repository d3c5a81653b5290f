// Form fields with their error slots, API errors shown next to the field they name, busy
// buttons and rate-limit countdowns.

import { h } from './dom.js';

let nextId = 0;

/** A labelled field: `input` is an element; `hint` explains the rules before any error. */
export function field(name, label, input, hint) {
  const id = `f${++nextId}`;
  input.id = id;
  input.name = name;
  const error = h('p', { class: 'field-error', id: `${id}-error`, role: 'alert', hidden: true });
  input.setAttribute('aria-describedby', `${id}-error${hint ? ` ${id}-hint` : ''}`);
  // Editing a field clears its error (a rate-limit wait keeps counting down).
  input.addEventListener('input', () => {
    if (error.classList.contains('wait')) return;
    error.hidden = true;
    input.removeAttribute('aria-invalid');
  });
  return h('div', { class: 'field', 'data-field': name },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'hint', id: `${id}-hint` }, hint) : null,
    error);
}

/** The banner for errors that name no field of the form. */
export function formError() {
  return h('p', { class: 'form-error', role: 'alert', hidden: true });
}

/** Clear every error in `form`. */
export function clearErrors(form) {
  form.querySelectorAll('.field-error, .form-error').forEach((e) => {
    e.textContent = '';
    e.hidden = true;
  });
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
}

/** Where an error naming `apiField` (e.g. `servers[1]`) is shown: its field or the banner. */
export function errorSlot(form, apiField) {
  const name = apiField ? apiField.replace(/\[\d+\]$/, '') : null;
  const f = name ? form.querySelector(`[data-field="${CSS.escape(name)}"]`) : null;
  if (f) {
    f.querySelector('input, select, textarea')?.setAttribute('aria-invalid', 'true');
    return f.querySelector('.field-error');
  }
  return form.querySelector('.form-error');
}

/** Show an API error in `form`; `fallbackField` takes errors that name no field. */
export function showError(form, err, fallbackField = null) {
  const slot = errorSlot(form, err.field || fallbackField);
  if (!slot) return;
  slot.textContent = sentence(err.message);
  slot.hidden = false;
  slot.closest('.field')?.querySelector('input, select, textarea')?.focus();
}

/** The API's messages are lower-case clauses; show them as sentences. */
export function sentence(msg) {
  const s = String(msg || '').trim();
  if (!s) return s;
  const t = s[0].toUpperCase() + s.slice(1);
  return /[.!?]$/.test(t) ? t : `${t}.`;
}

/**
 * After a 429: show how long to wait, counting down, with `button` disabled until then.
 * Returns a promise that resolves when the wait is over.
 */
export function countdown(slot, button, seconds, what) {
  let left = Math.max(1, Math.ceil(seconds));
  button.disabled = true;
  slot.hidden = false;
  slot.classList.add('wait');
  const show = () => {
    slot.textContent = `${what} You can try again in ${left} s.`;
  };
  show();
  return new Promise((resolve) => {
    const t = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        clearInterval(t);
        button.disabled = false;
        slot.classList.remove('wait');
        slot.textContent = `${what} You can try again now.`;
        resolve();
      } else {
        show();
      }
    }, 1000);
  });
}

/** Run `fn` with `button` showing it is busy; errors propagate. */
export async function busy(button, label, fn) {
  const before = button.textContent;
  button.disabled = true;
  button.classList.add('busy');
  button.textContent = label;
  try {
    return await fn();
  } finally {
    button.disabled = false;
    button.classList.remove('busy');
    button.textContent = before;
  }
}
