// Images: each pool's image library (its share `images`: installer ISOs and disk images a VM
// boots from as its CD-ROM): the list, an upload from this computer in 8 MiB chunks with
// progress, speed and cancel, resumed at the node's offset after a lost connection or a 409
// `wrong_offset` (as `cairnctl images upload`), and delete with a confirmation.

import { api, ApiError, get, putBytes } from './api.js';
import { badge, emptyState, h, progressBar, replace } from './dom.js';
import { clearErrors, field, formError, sentence, showError } from './form.js';
import { bytes, duration } from './format.js';

/** Bytes per PUT, as cairnctl sends them: a lost connection costs at most one chunk. */
export const CHUNK = 8 * 1024 * 1024;
/** Chunks in a row that may fail before the upload stops (it stays on the node to resume). */
const RETRIES = 5;
/** What the file picker offers (the node takes any file and detects its format itself). */
const ACCEPT = '.iso,.img,.raw,.qcow2,.vmdk,.vhdx,.vdi';
/** The share of a pool that holds its library (`cairn_vm::images::LIBRARY_SHARE`). */
export const LIBRARY_SHARE = 'images';
const FORMATS = { iso: 'ISO', qcow2: 'qcow2', vmdk: 'VMDK', vhdx: 'VHDX', vdi: 'VDI', raw: 'raw' };

const base = (pool) => `/api/v1/pools/${encodeURIComponent(pool)}/images`;
const uploadPath = (pool, id) => `${base(pool)}/uploads/${encodeURIComponent(id)}`;

/** The library of `pool`: `{ images, uploads }` (empty when nothing was uploaded yet). */
export const listImages = (pool) => get(base(pool));

/** A file's name as an image name: letters, digits, `.`, `_`, `-`, `+` (others become -). */
export function imageName(fileName) {
  return fileName.replace(/[^A-Za-z0-9._+-]/g, '-').replace(/^\.+/, '').slice(0, 100);
}

/** The SHA-256 of the images uploaded from this tab (the list does not give it). */
const hashes = new Map();
/** The upload running in this tab: it goes on while another page is shown. */
let active = null;
/** The pool last shown. */
let chosenPool = null;
/** Reloads the list of the page shown now (null while another page is shown). */
let reloadList = null;

function aborted() {
  return new ApiError(0, { code: 'aborted', message: 'The upload was cancelled.' });
}

/** Wait `ms`, or less when `signal` aborts (then throw code `aborted`). */
function pause(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(aborted());
      return;
    }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(aborted()); }, { once: true });
  });
}

/**
 * Where the node has upload `url` (its offset); `fallback` when the node cannot be reached;
 * null when the upload is gone (finished by the last PUT whose answer was lost, or cancelled).
 */
async function offsetOf(url, fallback) {
  try {
    return (await get(url)).offset;
  } catch (err) {
    if (err.code === 'network') return fallback;
    if (err.status === 404) return null;
    throw err;
  }
}

/**
 * Upload `file` as image `name` of `pool`, resuming an unfinished upload of the same name and
 * size: 8 MiB PUTs at the node's offset; after a lost connection, a timeout or a 409
 * `wrong_offset` the node is asked where the upload is and it goes on from there (at most
 * RETRIES failures in a row). `started(upload)` once the node has it, `progress(offset)` after
 * each chunk; `signal` stops it. Resolves with the image, its SHA-256 computed by the node.
 */
export async function uploadFile({ pool, file, name, signal, started, progress }) {
  const list = await listImages(pool);
  let up = list.uploads.find((u) => u.name === name && u.size_bytes === file.size);
  if (!up) up = await api('POST', base(pool), { body: { name, size_bytes: file.size }, signedIn: true });
  if (signal?.aborted) throw aborted();
  started(up);
  const url = uploadPath(pool, up.id);
  let offset = up.offset;
  let failures = 0;
  progress(offset);
  for (;;) {
    const chunk = file.slice(offset, Math.min(file.size, offset + CHUNK));
    try {
      const r = await putBytes(`${url}?offset=${offset}`, chunk, signal);
      if (r.status === 201) {
        progress(file.size);
        return r.data;
      }
      offset = r.data.offset;
      failures = 0;
    } catch (err) {
      const resumable = err.code === 'wrong_offset' || err.code === 'network' || err.code === 'busy' || err.status === 408;
      if (!resumable) throw err;
      failures += 1;
      if (failures > RETRIES) {
        err.message = `${sentence(err.message)} The upload stopped at ${bytes(offset)} of ${bytes(file.size)}: choose the same file again to resume it.`;
        throw err;
      }
      // The node says where it is (a 409 names the offset in words only); a lost connection
      // waits a little first.
      if (err.code !== 'wrong_offset') await pause(400 * failures, signal);
      const at = await offsetOf(url, offset);
      if (at === null) {
        // The upload is gone: whole in the library if the last bytes arrived (the node's
        // SHA-256 went with the lost answer).
        const img = (await listImages(pool)).images.find((i) => i.name === name && i.size_bytes === file.size);
        if (!img) throw new ApiError(404, { code: 'not_found', message: `the upload of ${name} is no longer on the node (cancelled elsewhere?): start it again` });
        progress(file.size);
        return img;
      }
      offset = at;
    }
    progress(offset);
  }
}

/** Cancel upload `id` of `pool` (its partial file is removed); gone already is fine. */
async function cancelUpload(pool, id) {
  for (let i = 0; ; i += 1) {
    try {
      await api('DELETE', uploadPath(pool, id), { signedIn: true });
      return;
    } catch (err) {
      if (err.status === 404) return;
      // The PUT just aborted may hold the upload for a moment.
      if (err.code !== 'busy' || i >= 10) throw err;
      await pause(300);
    }
  }
}

/** The progress of an upload: bar, percent, bytes, speed and time left. */
function drawProgress(panel, { name, pool, offset, size, first, t0 }) {
  const pct = size > 0 ? Math.floor((offset * 100) / size) : 100;
  const secs = (performance.now() - t0) / 1000;
  const rate = secs > 0 ? (offset - first) / secs : 0;
  const left = rate > 0 && offset < size ? ` · about ${duration(Math.ceil((size - offset) / rate))} left` : '';
  replace(panel.querySelector('.upload-state'),
    h('p', { class: 'task-msg' }, `Uploading ${name} to pool ${pool}`),
    h('div', { class: 'task-progress' },
      progressBar(pct, 'info', false, `Upload of ${name}`),
      h('span', { class: 'pct' }, `${pct} %`)),
    h('p', { class: 'muted small', 'data-upload-speed': true },
      `${bytes(offset)} of ${bytes(size)} · ${rate > 0 ? `${(rate / 1e6).toFixed(1)} MB/s` : '… MB/s'}${left}`));
}

/** The errors the node names a field of that this form shows elsewhere. */
const FIELD_OF = { size_bytes: 'file', body: 'file', offset: null, sha256: null };

function showUploadError(form, err) {
  const f = err.field && err.field in FIELD_OF ? FIELD_OF[err.field] : err.field;
  showError(form, { message: err.message, field: f });
}

/** The upload form of the pool `poolOf()` names; `active` moves into it when shown again. */
function uploadForm(poolOf) {
  const file = h('input', { type: 'file', accept: ACCEPT });
  const name = h('input', { type: 'text', maxlength: 100, autocomplete: 'off', spellcheck: 'false' });
  const start = h('button', { type: 'submit', class: 'primary' }, 'Upload');
  const status = h('div', { class: 'upload-slot', 'aria-live': 'polite' });
  const form = h('form', { class: 'card mini-form', 'data-form': 'image-upload', novalidate: true },
    h('h2', {}, 'Upload an image'),
    field('file', 'File', file, 'An installer ISO or a disk image (raw, qcow2, VMDK, VHDX, VDI) from this computer.'),
    field('name', 'Name in the library', name, 'Letters, digits, ".", "_", "-" and "+"; the same name and file resume an unfinished upload.'),
    formError(), status,
    h('div', { class: 'actions' }, h('span', {}), start));
  file.addEventListener('change', () => {
    const f = file.files[0];
    if (f) name.value = imageName(f.name);
  });
  if (active) {
    active.form = form;
    status.append(active.panel);
    start.disabled = true;
  }

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const f = file.files[0];
    if (!f) return showError(form, { field: 'file', message: 'Choose a file to upload' });
    if (f.size === 0) return showError(form, { field: 'file', message: `${f.name} is empty` });
    if (!name.value.trim()) return showError(form, { field: 'name', message: 'A name is required' });
    if (active) return showError(form, { message: 'An upload is running already: wait for it or cancel it' });
    const pool = poolOf();
    const job = { pool, name: name.value.trim(), size: f.size, controller: new AbortController(), form, id: null };
    const cancel = h('button', { type: 'button', class: 'secondary small', 'data-action': 'Cancel upload' }, 'Cancel');
    job.panel = h('div', { class: 'upload-progress', 'data-upload': job.name },
      h('div', { class: 'upload-state' }, h('p', { class: 'task-msg' }, `Starting the upload of ${job.name}…`)),
      h('div', { class: 'row-actions' }, cancel));
    cancel.addEventListener('click', () => cancelJob(job));
    active = job;
    start.disabled = true;
    status.replaceChildren(job.panel);
    const t = { name: job.name, pool, size: f.size, first: 0, t0: performance.now() };
    try {
      const image = await uploadFile({
        pool, file: f, name: job.name, signal: job.controller.signal,
        started: (up) => { job.id = up.id; t.first = up.offset; t.t0 = performance.now(); },
        progress: (offset) => drawProgress(job.panel, { ...t, offset }),
      });
      if (image.sha256) hashes.set(`${pool}/${image.name}`, image.sha256);
      // The bar stays at 100 %, with what the node made of the file.
      const state = job.panel.querySelector('.upload-state');
      state.querySelector('.task-msg').replaceWith(h('p', { class: 'task-msg', 'data-uploaded': image.name },
        `Uploaded ${image.name} to pool ${pool}: ${bytes(image.size_bytes)}, ${FORMATS[image.format] || image.format}.`));
      if (image.sha256) {
        state.append(h('p', { class: 'muted small' }, 'SHA-256 computed by the node: ',
          h('code', { class: 'mono', 'data-sha256': image.sha256 }, image.sha256)));
      }
      job.panel.querySelector('.row-actions').remove();
      file.value = '';
      name.value = '';
    } catch (err) {
      // A cancelled upload: cancelJob says so and reloads the list.
      if (err.code === 'aborted') return;
      job.panel.remove();
      showUploadError(job.form, err);
    } finally {
      if (active === job) active = null;
      job.form.querySelector('button[type="submit"]').disabled = false;
    }
    reloadList?.();
  });
  return form;
}

/** Stop the running upload `job` and remove what the node has of it. */
async function cancelJob(job) {
  job.controller.abort();
  replace(job.panel.querySelector('.upload-state'), h('p', { class: 'task-msg' }, `Cancelling the upload of ${job.name}…`));
  job.panel.querySelector('.row-actions').replaceChildren();
  try {
    if (job.id) await cancelUpload(job.pool, job.id);
    replace(job.panel, h('p', { class: 'task-msg', 'data-cancelled': job.name }, `Upload of ${job.name} cancelled: nothing of it is left on the node.`));
  } catch (err) {
    replace(job.panel, h('p', { class: 'form-error' }, sentence(err.message)));
  }
  reloadList?.();
}

/** Ask before deleting image `img` of `pool` in `slot`; the node's refusal (in use) is shown. */
function confirmDelete(slot, pool, img, button, onDone) {
  const yes = h('button', { type: 'submit', class: 'primary danger small' }, 'Delete');
  const keep = h('button', { type: 'button', class: 'secondary small' }, 'Keep');
  const form = h('form', { class: 'card confirm', 'data-confirm': img.name, novalidate: true },
    h('h3', {}, `Delete ${img.name}?`),
    h('p', {}, `It is removed from the image library of pool ${pool}; no VM can boot from it afterwards.`),
    formError(),
    h('div', { class: 'row-actions' }, yes, keep));
  keep.addEventListener('click', () => slot.replaceChildren(button));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    yes.disabled = true;
    try {
      await api('DELETE', `${base(pool)}/${encodeURIComponent(img.name)}`, { signedIn: true });
      hashes.delete(`${pool}/${img.name}`);
      onDone();
    } catch (err) {
      yes.disabled = false;
      showError(form, err);
    }
  });
  slot.replaceChildren(form);
  yes.focus();
}

function imageRow(pool, img, reload) {
  const sha = hashes.get(`${pool}/${img.name}`);
  const slot = h('div', { class: 'row-actions' });
  const del = h('button', { type: 'button', class: 'secondary small', 'data-action': 'Delete',
    'aria-label': `Delete ${img.name}` }, 'Delete');
  del.addEventListener('click', () => confirmDelete(slot, pool, img, del, reload));
  slot.append(del);
  return h('li', { class: 'list-row', 'data-image': img.name },
    h('div', { class: 'grow' },
      h('p', { class: 'row-title' }, img.name, ' ', badge(img.format === 'iso' ? 'info' : 'neutral', FORMATS[img.format] || img.format)),
      h('p', { class: 'muted small' }, bytes(img.size_bytes),
        sha ? [' · SHA-256 ', h('span', { class: 'mono', title: sha, 'data-sha256': sha }, `${sha.slice(0, 12)}…`)] : null)),
    slot);
}

function unfinishedRow(pool, up, reload) {
  const pct = up.size_bytes > 0 ? Math.floor((up.offset * 100) / up.size_bytes) : 0;
  const err = h('p', { class: 'field-error', role: 'alert', hidden: true });
  const cancel = h('button', { type: 'button', class: 'secondary small', 'data-action': 'Cancel upload',
    'aria-label': `Cancel upload of ${up.name}` }, 'Cancel upload');
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await cancelUpload(pool, up.id);
      reload();
    } catch (e) {
      cancel.disabled = false;
      err.textContent = sentence(e.message);
      err.hidden = false;
    }
  });
  return h('li', { class: 'list-row', 'data-unfinished': up.name },
    h('div', { class: 'grow' },
      h('p', { class: 'row-title' }, up.name, ' ', badge('warning', 'unfinished')),
      h('p', { class: 'muted small' },
        `${bytes(up.offset)} of ${bytes(up.size_bytes)} received (${pct} %). Choose the same file with the same name to resume it.`),
      err),
    h('div', { class: 'row-actions' }, cancel));
}

/** Render the Images section into `main`; returns a cleanup function. */
export async function renderImages(main) {
  const picker = h('div', { class: 'pool-picker' });
  const body = h('div', { class: 'stack' }, h('p', { class: 'loading' }, 'Loading…'));
  main.append(h('div', { class: 'section-head' },
    h('div', {}, h('h1', {}, 'Images'),
      h('p', { class: 'muted small' }, 'Installer ISOs and disk images a VM can boot from, kept on each pool.')),
    picker), body);
  let pools;
  try {
    pools = (await get('/api/v1/pools')).pools.map((p) => p.name);
  } catch (err) {
    body.replaceChildren(h('p', { class: 'form-error' }, sentence(err.message)));
    return () => {};
  }
  if (!pools.length) {
    body.replaceChildren(emptyState('No pools yet', 'Images are kept on a pool: create one under Disks & pools, then upload here.'));
    return () => {};
  }
  let pool = pools.includes(chosenPool) ? chosenPool : pools[0];
  if (pools.length > 1) {
    const select = h('select', { id: 'images-pool' }, pools.map((p) => h('option', { value: p, selected: p === pool }, p)));
    select.addEventListener('change', () => {
      pool = select.value;
      chosenPool = pool;
      load();
    });
    picker.append(h('label', { for: 'images-pool' }, 'Pool'), select);
  }
  const list = h('ul', { class: 'list' });
  const title = h('h2', {});
  const library = h('section', { class: 'card', 'data-library': true }, title, list);
  body.replaceChildren(library, uploadForm(() => pool));

  async function load() {
    const shown = pool;
    title.textContent = `Library of pool ${shown}`;
    library.dataset.library = shown;
    let lib;
    try {
      lib = await listImages(shown);
    } catch (err) {
      replace(list, h('li', { class: 'form-error' }, sentence(err.message)));
      return;
    }
    if (shown !== pool) return;
    const uploads = lib.uploads.filter((u) => !(active && active.pool === shown && active.id === u.id));
    if (!lib.images.length && !uploads.length) {
      replace(list, h('li', {}, emptyState(`No images on pool ${shown} yet`,
        'Upload an installer ISO or a disk image below; a new VM can then boot from it (Installer step of New VM).')));
      return;
    }
    replace(list, lib.images.map((img) => imageRow(shown, img, load)), uploads.map((u) => unfinishedRow(shown, u, load)));
  }

  reloadList = load;
  await load();
  return () => {
    if (reloadList === load) reloadList = null;
  };
}
