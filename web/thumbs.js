// thumbs.js: thumbnails of the photo organiser's plan preview (dom.js
// renderPlan's opts.thumb). GET /v1/photos/thumb with the token on an
// Authorization header (an <img> cannot send one). The image is handed to
// the <img> as a data: URL: the page's Content-Security-Policy (set by
// libwebsockets, server/server.c) allows img-src 'self' data: and no blob:.
// Small ones (THUMB_CACHE_BYTES each at most) are kept per session and path,
// THUMB_CACHE of them, so a card drawn again does not fetch them again. At
// most IN_FLIGHT_MAX fetches run at once, the others wait their turn.
import { storedToken } from './signin.js';

const THUMB_CACHE = 64;
const IN_FLIGHT_MAX = 4; // the server reads at most 8 at once for everyone (503 past that)
const THUMB_CACHE_BYTES = 256 * 1024;
const thumbs = new Map(); // `${session}\n${src}` -> Promise<data: URL>

function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const fr = new FileReader();
    fr.onload = () => resolve(fr.result);
    fr.onerror = () => reject(new Error('the image could not be read'));
    fr.readAsDataURL(blob);
  });
}

let inFlight = 0;
const waiting = []; // resolvers of fetches waiting for a slot

/** A fetch slot: at once while fewer than IN_FLIGHT_MAX run, else handed over by release(). */
async function slot() {
  if (inFlight < IN_FLIGHT_MAX) inFlight++;
  else await new Promise((resolve) => waiting.push(resolve));
}

function release() {
  const next = waiting.shift();
  if (next) next();
  else inFlight--;
}

async function fetchThumb(session, src) {
  await slot();
  try {
    return await fetchOne(session, src);
  } finally {
    release();
  }
}

async function fetchOne(session, src) {
  const token = storedToken();
  const r = await fetch(`/v1/photos/thumb?session=${encodeURIComponent(session)}&path=${encodeURIComponent(src)}`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
  });
  if (!r.ok) {
    const body = await r.json().catch(() => null);
    throw new Error(body?.error?.message || `HTTP ${r.status}`);
  }
  const blob = await r.blob();
  return { url: await dataUrl(blob), size: blob.size };
}

/** A data: URL of the thumbnail of photo `src` (relative to the library) of photo-organizer session `session`. */
export async function thumbFor(session, src) {
  const key = `${session}\n${src}`;
  const hit = thumbs.get(key);
  if (hit) return hit;
  const { url, size } = await fetchThumb(session, src);
  if (size <= THUMB_CACHE_BYTES) {
    thumbs.set(key, url);
    while (thumbs.size > THUMB_CACHE) thumbs.delete(thumbs.keys().next().value);
  }
  return url;
}
