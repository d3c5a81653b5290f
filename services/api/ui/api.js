// The node's JSON API: one error shape, the CSRF token on every change, the setup token.

const SETUP_TOKEN_KEY = 'cairn.setup-token';
let csrfToken = null;
let onSignedOut = null;
let onStarting = null;

/** The domains as health names them (the keys) and as sentences name them. */
export const DOMAIN_LABELS = { storage: 'Storage', smart: 'SMART', network: 'Network', vms: 'VMs', cluster: 'Cluster' };
/** A 503 `starting` message's service name ("the VM service is…") to health's domain key. */
const DOMAIN_KEYS = { storage: 'storage', SMART: 'smart', smart: 'smart', network: 'network', VM: 'vms', vms: 'vms', cluster: 'cluster' };

/** An error answer of the API: `{code, message, field}`, its status and Retry-After. */
export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.field = body.field ?? null;
    this.retryAfter = retryAfter;
  }
}

/** Keep the session's CSRF token (from login, setup or /auth/me). */
export function setCsrf(token) {
  csrfToken = token || null;
}

/**
 * Called with the domain key (`storage`, `vms`…) when a request answers 503 `starting`; the
 * shell then re-shows the section once health says the domain is ready. `null` to stop.
 */
export function whenStarting(fn) {
  onStarting = fn;
}

/** Called when a signed-in request is refused because the session ended. */
export function whenSignedOut(fn) {
  onSignedOut = fn;
}

/** The setup token of an unfinished setup, kept for this tab so a reload resumes. */
export const setupToken = {
  get: () => sessionStorage.getItem(SETUP_TOKEN_KEY),
  set: (t) => sessionStorage.setItem(SETUP_TOKEN_KEY, t),
  clear: () => sessionStorage.removeItem(SETUP_TOKEN_KEY),
};

/**
 * Call the API. `body` is sent as JSON; `bytes` (a Blob) raw as application/octet-stream;
 * `signal` aborts the request (it then throws code `aborted`); `setup` adds the setup token;
 * `signedIn` marks requests whose 401 means the session ended; `withStatus` resolves with
 * `{ status, data }` instead of the data.
 */
export async function api(method, path, { body, bytes, signal, setup = false, signedIn = false, withStatus = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (bytes !== undefined) headers['Content-Type'] = 'application/octet-stream';
  if (method !== 'GET' && csrfToken) headers['X-CSRF-Token'] = csrfToken;
  if (setup && setupToken.get()) headers['X-Setup-Token'] = setupToken.get();
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: bytes !== undefined ? bytes : body === undefined ? undefined : JSON.stringify(body),
      signal,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    if (e && e.name === 'AbortError') throw new ApiError(0, { code: 'aborted', message: 'The request was cancelled.' });
    throw new ApiError(0, {
      code: 'network',
      message: 'Cannot reach the node. Check that it is running and that this computer can reach it.',
    });
  }
  if (resp.status === 204) return withStatus ? { status: 204, data: null } : null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = new ApiError(
      resp.status,
      data && data.message ? data : { code: 'http', message: `The node answered with HTTP ${resp.status}.` },
      Number(resp.headers.get('Retry-After')) || null,
    );
    if (signedIn && resp.status === 401 && onSignedOut) onSignedOut(err);
    if (err.code === 'starting') {
      // The domain is still starting on the node: say which, not the raw error.
      const m = /^the (\S+) service/.exec(err.message);
      err.domain = (m && DOMAIN_KEYS[m[1]]) || null;
      const label = DOMAIN_LABELS[err.domain] || 'This part of the node';
      err.message = onStarting
        ? `${label} is still starting. This page loads by itself once it is ready.`
        : `${label} is still starting on this node. Try again in a moment.`;
      if (onStarting) onStarting(err.domain);
    }
    throw err;
  }
  return withStatus ? { status: resp.status, data } : data;
}

/**
 * PUT the raw bytes `blob` (a File.slice) to `path` for an upload; `signal` aborts it.
 * Resolves with `{ status, data }` (an image upload's 200 and 201 differ).
 */
export const putBytes = (path, blob, signal) => api('PUT', path, { bytes: blob, signal, signedIn: true, withStatus: true });

/** GET for a signed-in page. */
export const get = (path) => api('GET', path, { signedIn: true });
