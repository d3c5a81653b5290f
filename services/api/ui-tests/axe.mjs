// Accessibility check of the page as it is now: injects axe-core (the pinned npm package) and
// fails on `serious` or `critical` violations, printing each with the elements at fault.
// Injected through the DevTools protocol (page.evaluate), which the UI's strict CSP does not
// govern, so the page runs under its real policy.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const SOURCE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** Impacts that fail a test. */
export const FAILING = ['serious', 'critical'];

/**
 * Run axe on `page` (the whole document); `name` says which page state this is. Throws an
 * AssertionError listing the serious and critical violations.
 */
export async function checkA11y(page, name) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.evaluate(SOURCE);
  const res = await page.evaluate(() => window.axe.run(document, {
    resultTypes: ['violations'],
    // WCAG 2.x A and AA plus axe's best practices (landmarks, headings).
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] },
  }));
  const bad = res.violations.filter((v) => FAILING.includes(v.impact));
  const minor = res.violations.filter((v) => !FAILING.includes(v.impact));
  if (minor.length) console.log(`axe: ${name}: not failing: ${minor.map((v) => `${v.impact} ${v.id} (${v.nodes.length})`).join(', ')}`);
  if (bad.length === 0) return;
  const text = bad.map((v) => [
    `${v.impact}: ${v.id}: ${v.help} (${v.helpUrl})`,
    ...v.nodes.slice(0, 8).map((n) => `    ${n.target.join(' ')}\n      ${n.failureSummary.replace(/\n/g, '\n      ')}`),
    v.nodes.length > 8 ? `    … and ${v.nodes.length - 8} more` : null,
  ].filter(Boolean).join('\n')).join('\n');
  console.log(`axe: ${name}:\n${text}`);
  assert.fail(`${name}: ${bad.length} serious or critical accessibility violation(s):\n${text}`);
}
