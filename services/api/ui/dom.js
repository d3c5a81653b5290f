// Building DOM nodes without HTML strings: text is always text, never markup.

/**
 * Create an element. `attrs`: `class`, `on<Event>` handlers, boolean and string attributes
 * (null/false leave them out). Children: nodes, strings, numbers, arrays; null is skipped.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2).toLowerCase(), v);
    } else if (k === 'class') {
      el.className = v;
    } else if (k === 'value') {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status badge: `tone` is ok, warning, critical, info or neutral. */
export function badge(tone, text) {
  return h('span', { class: `badge badge-${tone}` }, text);
}

/**
 * A progress bar 0–100 (width set through the CSSOM, which the CSP allows) named `label` for
 * screen readers; `indeterminate` animates it while a running task has not reported progress
 * yet (and then it has no value).
 */
export function progressBar(value, tone = 'info', indeterminate = false, label = 'Progress') {
  const fill = h('div', { class: `bar-fill bar-${tone}` });
  fill.style.width = `${Math.max(0, Math.min(100, value))}%`;
  return h('div', {
    class: indeterminate ? 'bar bar-indeterminate' : 'bar', role: 'progressbar', 'aria-label': label,
    'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': indeterminate ? null : value,
  }, fill);
}

/** An empty state: a title and an explanation. */
export function emptyState(title, text) {
  return h('div', { class: 'empty' }, h('p', { class: 'empty-title' }, title), h('p', {}, text));
}
