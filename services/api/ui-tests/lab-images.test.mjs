// Browser test of the Images page on a booted lab node (qemu-test/tests/images.rs, scenario
// images, after its API and cairnctl checks): signs in, opens Images, uploads a file from the
// lab host through the page (8 MiB chunks over the real API: session cookie, CSRF header,
// streamed PUTs), checks the SHA-256 the node computed against the host's, sees the image in
// the list and in the VM wizard's installer step, deletes it with the page's confirmation and
// sees the library empty again. Desktop and 360 px phone screenshots of each step.
//
// Environment (required): CAIRN_URL (https://127.0.0.1:PORT), CAIRN_PASSWORD, CAIRN_POOL (a
// pool of the node), CAIRN_IMAGE_FILE (a file on the host to upload), CAIRN_IMAGE_SHA256 (its
// SHA-256). Optional: CHROMIUM, UI_RESULTS (default <repo>/build/ui-results/lab).

import assert from 'node:assert/strict';
import path from 'node:path';
import { BASE, labBrowser, RESULTS } from './lab-node.mjs';
import { screenshots } from './scripted-api.mjs';

const PASSWORD = process.env.CAIRN_PASSWORD;
const POOL = process.env.CAIRN_POOL;
const FILE = process.env.CAIRN_IMAGE_FILE;
const SHA = process.env.CAIRN_IMAGE_SHA256;
const NAME = FILE ? path.basename(FILE) : '';
// Uploading under TCG: a few MB/s through the emulated NIC and TLS.
const UPLOAD_MS = 300000;

let page;
const { step, heading, pageErrors } = labBrowser({
  profile: 'cairn-ui-lab-images',
  check: () => {
    assert.ok(BASE && PASSWORD && POOL && FILE && SHA,
      'set CAIRN_URL, CAIRN_PASSWORD, CAIRN_POOL, CAIRN_IMAGE_FILE and CAIRN_IMAGE_SHA256 (the lab test does)');
  },
  opened: (p) => { page = p; },
  failedShot: (name) => `images-FAILED-${name.replace(/[^a-z]+/gi, '-')}.png`,
});

const shot = screenshots(() => page, { prefix: 'images', dir: RESULTS, height: 820, fromTop: true });
const apiGet = (p) => page.evaluate(async (u) => (await fetch(u)).json(), p);

step('signing in opens the Images page with the pool\'s empty library', async () => {
  await page.goto(`${BASE}/#/images`);
  await heading('Sign in').waitFor();
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await heading('Images').waitFor();
  await page.getByText(`No images on pool ${POOL} yet`).waitFor();
  await shot('lab-empty');
});

step('a file uploaded through the page arrives whole: the node\'s SHA-256 is the host\'s', async () => {
  const form = page.locator('form[data-form="image-upload"]');
  await form.locator('input[type="file"]').setInputFiles(FILE);
  assert.equal(await form.getByLabel('Name in the library').inputValue(), NAME);
  await form.getByRole('button', { name: 'Upload', exact: true }).click();
  await form.locator('[data-upload-speed]').waitFor({ timeout: UPLOAD_MS });
  await shot('lab-uploading');
  const sha = form.locator(`[data-uploaded="${NAME}"] ~ p [data-sha256], [data-sha256]`).first();
  await sha.waitFor({ timeout: UPLOAD_MS });
  assert.equal(await sha.getAttribute('data-sha256'), SHA);
  const lib = await apiGet(`/api/v1/pools/${POOL}/images`);
  assert.ok(lib.images.some((i) => i.name === NAME), `the node does not list ${NAME}: ${JSON.stringify(lib)}`);
  assert.deepEqual(lib.uploads, [], 'an upload is left unfinished');
  await page.locator(`[data-image="${NAME}"]`).waitFor();
  await shot('lab-uploaded');
});

step('the VM wizard offers the image as an installer; the VM it creates has it as its CD-ROM', async () => {
  await page.goto(`${BASE}/#/vms`);
  await heading('VMs').waitFor();
  await page.getByRole('button', { name: 'New VM', exact: true }).click();
  const form = page.locator('form[data-form="vm-create"]');
  await form.waitFor();
  await form.getByLabel('Name').fill('inst');
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByLabel('Pool').selectOption(POOL);
  await form.getByLabel('Disk size (GiB)').fill('1');
  await form.getByRole('button', { name: 'Next' }).click();
  await form.locator(`option[value="${NAME}"]`).waitFor({ state: 'attached' });
  await form.getByLabel('Boot an installer from the image library').selectOption(NAME);
  await shot('lab-wizard-installer');
  await form.getByRole('button', { name: 'Next' }).click();
  await form.getByRole('button', { name: 'Next' }).click();
  assert.match(await form.locator('dl.review').textContent(), new RegExp(`Installer\\s*${NAME.replace(/[.]/g, '\\.')} as a CD-ROM \\(sata\\), booted first`));
  await form.getByRole('button', { name: 'Create VM' }).click();
  await form.waitFor({ state: 'detached' });
  await page.locator('[data-vm="inst"]').waitFor();
  const vm = await apiGet('/api/v1/vms/inst');
  const cd = (vm.disks || []).find((d) => d.kind === 'cdrom');
  assert.ok(cd && cd.pool === POOL && cd.volume === `images/${NAME}` && cd.bus === 'sata', `VM inst's disks: ${JSON.stringify(vm.disks)}`);
  assert.deepEqual(vm.boot, ['cdrom', 'disk']);
});

/** On the Images page, Delete on the image's row and Delete in its confirmation; returns the
 * confirmation form (the node's refusal shows there). */
async function deleteImage() {
  await page.goto(`${BASE}/#/images`);
  await heading('Images').waitFor();
  const row = page.locator(`[data-image="${NAME}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: `Delete ${NAME}` }).click();
  const confirm = page.locator(`form[data-confirm="${NAME}"]`);
  await confirm.getByRole('button', { name: 'Delete', exact: true }).click();
  return confirm;
}

step('the image in use is not deleted: the page names the VM', async () => {
  const confirm = await deleteImage();
  await confirm.locator('.form-error', { hasText: 'inst' }).waitFor({ state: 'visible' });
  await shot('lab-delete-in-use');
});

step('the VM deleted with its disk, the image is deleted and the library is empty again', async () => {
  await page.goto(`${BASE}/#/vms`);
  const card = page.locator('[data-vm="inst"]');
  await card.waitFor();
  await card.locator('[data-action="Delete"]').click();
  const form = card.locator('form');
  await form.getByLabel('Type inst to delete this VM').fill('inst');
  await form.getByLabel('Delete its disks and snapshots too').check();
  await form.getByRole('button', { name: 'Delete', exact: true }).click();
  await card.waitFor({ state: 'detached' });
  await deleteImage();
  await page.getByText(`No images on pool ${POOL} yet`).waitFor();
  const lib = await apiGet(`/api/v1/pools/${POOL}/images`);
  assert.deepEqual(lib.images, [], `the node still lists images: ${JSON.stringify(lib)}`);
  await shot('lab-deleted');
  assert.deepEqual(pageErrors, []);
});
