// Browser test of images.js (with style.css): renders the Images page in Debian's Chromium
// against a scripted image library (a fake that keeps the bytes it is sent and answers as
// openapi/images.json says) and checks the list with a pool picker and the empty state, an
// upload of a generated 20 MiB file in 8 MiB chunks (progress to 100 %, MB/s, the node's
// SHA-256), the node's refusal under the field it names, resuming an unfinished upload after a
// scripted 409 wrong_offset, resuming after a broken connection, cancel, and delete refused
// while a VM uses the image (409 in_use) then allowed. Keeps desktop and 360 px phone
// screenshots.
//
// Run: cd services/api/ui-tests && node --test images.test.mjs   (CHROMIUM overrides the
// browser, UI_RESULTS the screenshot folder; default <repo>/build/ui-results)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { ORIGIN, ScriptedApi, json, openScripted, screenshots } from './scripted-api.mjs';

let browser;
let page;

const MiB = 1048576;
const SIZE = 20 * MiB;

/** A deterministic 20 MiB file: pseudo-random bytes, an ISO 9660 mark at 0x8001 if `iso`. */
function file(seed, iso = true) {
  const b = Buffer.alloc(SIZE);
  let x = seed;
  for (let i = 0; i < SIZE; i += 4) {
    x = (x * 1103515245 + 12345) >>> 0;
    b.writeUInt32LE(x, i);
  }
  if (iso) b.write('CD001', 0x8001, 'latin1');
  return b;
}
const sha = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

// The fake library: images and uploads per pool (an upload keeps the bytes it got).
const lib = {
  tank: {
    images: [{ name: 'alpine.qcow2', size_bytes: 120 * MiB, format: 'qcow2' }, { name: 'debian-12.iso', size_bytes: 630 * MiB, format: 'iso' }],
    uploads: [],
  },
  fast: { images: [], uploads: [] },
};
const inUse = { 'debian-12.iso': 'web' };
// What the fake does to the next PUT at an offset: { [offset]: 'rewind' | 'break' | 'hold' }.
const faults = {};
let release = null;
let busyOnce = false;
let nextId = 1;
const rescue = file(7, false);

function newUpload(pool, name, size) {
  const up = { id: `0a${String(nextId++).padStart(6, '0')}`, name, size_bytes: size, sha256: null, pool, offset: 0, data: Buffer.alloc(size) };
  lib[pool].uploads.push(up);
  return up;
}
// An upload left unfinished on tank: the first 8 MiB of `rescue` arrived.
const old = newUpload('tank', 'rescue.img', SIZE);
rescue.copy(old.data, 0, 0, 8 * MiB);
old.offset = 8 * MiB;

const view = ({ data, ...u }) => u;
const format = (d) => (d.toString('latin1', 0x8001, 0x8006) === 'CD001' ? 'iso' : 'raw');

function put(pool, up, offset, raw) {
  if (offset !== up.offset) {
    return json(409, { code: 'wrong_offset', field: 'offset',
      message: `offset: the upload is at byte ${up.offset}, not ${offset}; resume from ${up.offset}` });
  }
  const fault = faults[offset];
  delete faults[offset];
  if (fault === 'rewind') {
    // As after a node restart that kept less of the partial file than the page sent.
    up.offset -= 4 * MiB;
    return json(409, { code: 'wrong_offset', field: 'offset',
      message: `offset: the upload is at byte ${up.offset}, not ${offset}; resume from ${up.offset}` });
  }
  if (fault === 'break') {
    // The connection breaks after 3 MiB of the body arrived: those are kept.
    raw.copy(up.data, offset, 0, 3 * MiB);
    up.offset += 3 * MiB;
    return { abort: 'failed' };
  }
  if (fault === 'hold') return new Promise((resolve) => { release = () => resolve({ abort: 'failed' }); });
  raw.copy(up.data, offset);
  up.offset += raw.length;
  if (up.offset < up.size_bytes) return json(200, view(up));
  lib[pool].uploads = lib[pool].uploads.filter((u) => u !== up);
  const img = { name: up.name, size_bytes: up.size_bytes, format: format(up.data) };
  lib[pool].images.push(img);
  lib[pool].images.sort((a, b) => a.name.localeCompare(b.name));
  return json(201, { ...img, sha256: sha(up.data) });
}

const api = new ScriptedApi(({ method, path: p, b, query, raw }) => {
  if (p === '/api/v1/pools') return json(200, { pools: [{ name: 'tank' }, { name: 'fast' }] });
  const m = p.match(/^\/api\/v1\/pools\/([^/]+)\/images(?:\/(uploads\/)?([^/]+))?$/);
  if (!m || !lib[m[1]]) return undefined;
  const [, pool, isUpload, name] = m;
  const l = lib[pool];
  if (!name && method === 'GET') return json(200, { images: l.images, uploads: l.uploads.map(view) });
  if (!name && method === 'POST') {
    if (l.images.some((i) => i.name === b.name) || l.uploads.some((u) => u.name === b.name)) {
      return json(409, { code: 'exists', field: 'name', message: `image named ${b.name} already exists on pool ${pool}` });
    }
    return json(201, view(newUpload(pool, b.name, b.size_bytes)));
  }
  if (isUpload) {
    const up = l.uploads.find((u) => u.id === name);
    if (!up) return json(404, { code: 'not_found', message: `no upload ${name} on pool ${pool} (finished, cancelled or never started)` });
    if (method === 'GET') return json(200, view(up));
    if (method === 'PUT') return put(pool, up, Number(query.get('offset')), raw);
    if (method === 'DELETE') {
      if (busyOnce) {
        busyOnce = false;
        return json(409, { code: 'busy', message: `upload ${name} is being written by another request` });
      }
      l.uploads = l.uploads.filter((u) => u !== up);
      return json(204);
    }
  }
  if (method === 'DELETE') {
    if (inUse[name]) return json(409, { code: 'in_use', message: `image ${name} is used by VM ${inUse[name]}: detach it or delete the VM first` });
    l.images = l.images.filter((i) => i.name !== name);
    return json(204);
  }
  return undefined;
});
const { calls } = api;
const puts = () => calls.filter((c) => c.startsWith('PUT '));

const shot = screenshots(() => page, { prefix: 'images' });
const form = () => page.locator('form[data-form="image-upload"]');
const row = (name) => page.locator(`[data-image="${name}"]`);

async function choose(name, buffer) {
  await form().getByLabel('File').setInputFiles({ name, mimeType: 'application/octet-stream', buffer });
}

before(async () => {
  ({ browser, page } = await openScripted(api, {
    stylesheet: true,
    viewport: { width: 1280, height: 900 },
    script: 'import { renderImages } from "/ui/images.js"; renderImages(document.getElementById("m"));',
  }));
  await page.goto(`${ORIGIN}/`);
});

after(async () => {
  await browser?.close();
});

test('the list shows each image of the chosen pool and its unfinished uploads', async () => {
  await row('debian-12.iso').waitFor();
  assert.equal(await page.locator('[data-library]').getAttribute('data-library'), 'tank');
  assert.deepEqual(await page.getByLabel('Pool').locator('option').allTextContents(), ['tank', 'fast']);
  assert.match(await row('debian-12.iso').textContent(), /debian-12\.iso\s*ISO\s*630\.0 MiB/);
  assert.match(await row('alpine.qcow2').textContent(), /alpine\.qcow2\s*qcow2\s*120\.0 MiB/);
  const unfinished = page.locator('[data-unfinished="rescue.img"]');
  assert.match(await unfinished.textContent(), /8\.0 MiB of 20\.0 MiB received \(40 %\)\. Choose the same file with the same name to resume it/);
  await shot('list');
});

test('an empty library says what to do', async () => {
  await page.getByLabel('Pool').selectOption('fast');
  await page.locator('[data-library="fast"] .empty').waitFor();
  assert.match(await page.locator('[data-library="fast"]').textContent(), /No images on pool fast yet.*Upload an installer ISO or a disk image below/s);
  await shot('empty');
  await page.getByLabel('Pool').selectOption('tank');
  await row('debian-12.iso').waitFor();
});

test('an upload goes in 8 MiB chunks to 100 % and shows the node\'s SHA-256', async () => {
  const buf = file(1);
  await choose('debian 13 (netinst).iso', buf);
  // The name is the file's, made acceptable to the node.
  assert.equal(await form().getByLabel('Name in the library').inputValue(), 'debian-13--netinst-.iso');
  await form().getByLabel('Name in the library').fill('debian-13.iso');
  await form().getByRole('button', { name: 'Upload' }).click();
  const done = page.locator('[data-uploaded="debian-13.iso"]');
  await done.waitFor();
  assert.match(await done.textContent(), /Uploaded debian-13\.iso to pool tank: 20\.0 MiB, ISO\./);
  const panel = page.locator('[data-upload="debian-13.iso"]');
  assert.equal(await panel.getByRole('progressbar').getAttribute('aria-valuenow'), '100');
  assert.equal((await panel.locator('.pct').textContent()).trim(), '100 %');
  assert.match(await panel.locator('[data-upload-speed]').textContent(), /20\.0 MiB of 20\.0 MiB · \d+\.\d MB\/s/);
  assert.equal(await panel.locator('[data-sha256]').textContent(), sha(buf));
  assert.equal(calls.find((c) => c.startsWith('POST /api/v1/pools/tank/images ')), `POST /api/v1/pools/tank/images ${JSON.stringify({ name: 'debian-13.iso', size_bytes: SIZE })}`);
  assert.deepEqual(puts().map((c) => c.replace(/uploads\/\w+/, 'uploads/ID')), [
    'PUT /api/v1/pools/tank/images/uploads/ID?offset=0 <8388608 bytes>',
    'PUT /api/v1/pools/tank/images/uploads/ID?offset=8388608 <8388608 bytes>',
    'PUT /api/v1/pools/tank/images/uploads/ID?offset=16777216 <4194304 bytes>',
  ]);
  // The list has it, with the SHA-256 shortened (whole in the title).
  const short = row('debian-13.iso').locator('[data-sha256]');
  await short.waitFor();
  assert.equal(await short.textContent(), `${sha(buf).slice(0, 12)}…`);
  assert.equal(await short.getAttribute('title'), sha(buf));
  await shot('uploaded');
});

test('the node\'s refusal shows under the field it names', async () => {
  await choose('debian-12.iso', file(2));
  await form().getByRole('button', { name: 'Upload' }).click();
  const nameField = form().locator('[data-field="name"]');
  await nameField.locator('.field-error').waitFor({ state: 'visible' });
  assert.match(await nameField.locator('.field-error').textContent(), /^Image named debian-12\.iso already exists on pool tank\.$/);
  assert.equal(await nameField.locator('input').getAttribute('aria-invalid'), 'true');
  // Nothing chosen: said before asking the node.
  await form().getByLabel('File').setInputFiles([]);
  await form().getByRole('button', { name: 'Upload' }).click();
  assert.match(await form().locator('[data-field="file"] .field-error').textContent(), /Choose a file to upload/);
  await shot('name-taken');
});

test('an unfinished upload resumes, and a 409 wrong_offset goes on from the node\'s offset', async () => {
  const before = puts().length;
  faults[16 * MiB] = 'rewind';
  await choose('rescue.img', rescue);
  await form().getByRole('button', { name: 'Upload' }).click();
  await page.locator('[data-uploaded="rescue.img"]').waitFor();
  // No new upload: the node's unfinished one went on from 8 MiB; the 409 sent it back to 12 MiB.
  assert.equal(calls.filter((c) => c.startsWith('POST ') && c.includes('rescue.img')).length, 0);
  assert.deepEqual(puts().slice(before).map((c) => c.replace(/.*offset=/, '')), [
    '8388608 <8388608 bytes>', '16777216 <4194304 bytes>', '12582912 <8388608 bytes>']);
  assert.ok(calls.includes(`GET /api/v1/pools/tank/images/uploads/${old.id}`), 'asked the node where the upload is');
  assert.equal(await page.locator('[data-upload="rescue.img"] [data-sha256]').textContent(), sha(rescue), 'every byte at its place');
  assert.equal(await page.locator('[data-unfinished]').count(), 0);
});

test('a broken connection resumes from what the node kept', async () => {
  await page.getByLabel('Pool').selectOption('fast');
  await page.locator('[data-library="fast"] .empty').waitFor();
  const buf = file(3, false);
  faults[0] = 'break';
  const before = puts().length;
  await choose('net.img', buf);
  await form().getByRole('button', { name: 'Upload' }).click();
  await page.locator('[data-uploaded="net.img"]').waitFor();
  assert.match(await page.locator('[data-uploaded="net.img"]').textContent(), /to pool fast: 20\.0 MiB, raw/);
  assert.deepEqual(puts().slice(before).map((c) => c.replace(/.*offset=/, '')), [
    '0 <8388608 bytes>', '3145728 <8388608 bytes>', '11534336 <8388608 bytes>', '19922944 <1048576 bytes>']);
  assert.equal(await page.locator('[data-upload="net.img"] [data-sha256]').textContent(), sha(buf));
  await row('net.img').waitFor();
});

test('cancel stops the upload and removes it from the node', async () => {
  faults[8 * MiB] = 'hold';
  busyOnce = true;
  await choose('big.img', file(4, false));
  await form().getByRole('button', { name: 'Upload' }).click();
  const panel = page.locator('[data-upload="big.img"]');
  await panel.locator('.pct', { hasText: '40 %' }).waitFor();
  assert.equal(await form().getByRole('button', { name: 'Upload' }).isDisabled(), true);
  await shot('uploading');
  await panel.getByRole('button', { name: 'Cancel' }).click();
  await page.locator('[data-cancelled="big.img"]').waitFor();
  release();
  assert.equal(calls.filter((c) => c.startsWith('DELETE /api/v1/pools/fast/images/uploads/')).length, 2, 'cancelled on the node (once busy)');
  assert.equal(lib.fast.uploads.length, 0);
  assert.equal(await page.locator('[data-unfinished]').count(), 0);
  assert.equal(await form().getByRole('button', { name: 'Upload' }).isDisabled(), false);
});

test('delete asks first, shows the node\'s in_use refusal, then deletes', async () => {
  await page.getByLabel('Pool').selectOption('tank');
  await row('debian-12.iso').waitFor();
  await row('debian-12.iso').getByRole('button', { name: 'Delete debian-12.iso' }).click();
  const confirm = page.locator('[data-confirm="debian-12.iso"]');
  assert.match(await confirm.textContent(), /Delete debian-12\.iso\?/);
  await confirm.getByRole('button', { name: 'Delete' }).click();
  const err = confirm.locator('.form-error');
  await err.waitFor({ state: 'visible' });
  assert.equal(await err.textContent(), 'Image debian-12.iso is used by VM web: detach it or delete the VM first.');
  await shot('in-use');
  delete inUse['debian-12.iso'];
  await confirm.getByRole('button', { name: 'Delete' }).click();
  await row('debian-12.iso').waitFor({ state: 'detached' });
  assert.ok(calls.filter((c) => c === 'DELETE /api/v1/pools/tank/images/debian-12.iso').length === 2);
  // Keep leaves the image alone.
  await row('alpine.qcow2').getByRole('button', { name: 'Delete alpine.qcow2' }).click();
  await page.locator('[data-confirm="alpine.qcow2"]').getByRole('button', { name: 'Keep' }).click();
  assert.equal(await page.locator('[data-confirm]').count(), 0);
  assert.ok(await row('alpine.qcow2').isVisible());
});
