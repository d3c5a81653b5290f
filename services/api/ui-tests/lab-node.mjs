// Shared setup of the browser tests on a booted lab node (lab.test.mjs, lab-storage.test.mjs;
// the node is started by qemu-test/tests/ui.rs, not by these tests): Debian's Chromium in a
// throw-away profile that accepts the node's self-signed certificate, and steps that stop
// the run at the first failure (later steps are skipped) and keep a screenshot of it.
//
// Environment: CAIRN_URL (https://127.0.0.1:PORT, required), CHROMIUM (default
// /usr/bin/chromium), UI_RESULTS (screenshots; default <repo>/build/ui-results/lab).

import { after, before, test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repo = path.resolve(here, '../../..');
export const BASE = process.env.CAIRN_URL;
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const RESULTS = path.resolve(repo, process.env.UI_RESULTS || 'build/ui-results/lab');
// TCG-emulated nodes answer slowly (argon2id alone takes seconds there).
export const STEP_MS = 120000;

/**
 * Register the test file's browser: before its tests `check()` runs (assert the environment),
 * the results folder is made, Chromium starts and `opened(page)` gets the page; after them
 * the browser and its profile go. `failedShot(name)` names the screenshot (in RESULTS) kept
 * when step `name` fails. Returns { step, heading, pageErrors }: `step(name, fn)` is a test
 * that is skipped once an earlier step failed; `heading(text)` locates the page's h1 named
 * `text`; `pageErrors` collects the page's uncaught errors.
 */
export function labBrowser({ profile, check, opened, failedShot }) {
  let tmp;
  let context;
  let page;
  let broken = false;
  const pageErrors = [];

  before(async () => {
    check();
    fs.mkdirSync(RESULTS, { recursive: true });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), `${profile}-`));
    context = await chromium.launchPersistentContext(path.join(tmp, 'profile'), {
      executablePath: CHROMIUM,
      headless: true,
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 820 },
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    });
    page = context.pages()[0] || await context.newPage();
    page.setDefaultTimeout(STEP_MS);
    page.on('pageerror', (e) => pageErrors.push(`page error: ${e.message}`));
    opened(page);
  });

  after(async () => {
    if (context) await context.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  function step(name, fn) {
    test(name, async (t) => {
      if (broken) {
        t.skip('an earlier step failed');
        return;
      }
      try {
        await fn();
      } catch (err) {
        broken = true;
        await page?.screenshot({ path: path.join(RESULTS, failedShot(name)), fullPage: true }).catch(() => {});
        throw err;
      }
    });
  }

  const heading = (text) => page.getByRole('heading', { name: text, level: 1 });

  return { step, heading, pageErrors };
}
