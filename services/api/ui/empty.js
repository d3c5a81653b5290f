// Sections whose domain has not arrived yet: say what will be here, never show fake data.

import { h } from './dom.js';

/** Render a section that a later release fills in. */
export function renderComing(main, { title, what, arrives }) {
  main.append(
    h('div', { class: 'section-head' }, h('h1', {}, title)),
    h('div', { class: 'card empty coming' },
      h('p', { class: 'empty-title' }, `${title} arrives with ${arrives}`),
      h('p', {}, what)));
}
