// signin.js: the sign-in screen of a server with API keys. The person gives
// a name and an API key; the page mints a token with POST /v1/tokens (the
// key is not kept), keeps the token in sessionStorage for the tab, and
// connects with it. A refused or expired token brings the screen back with
// the reason, and the client stops retrying until the next sign-in.
const TOKEN_KEY = 'tether.token';
const TTL_S = 8 * 3600;

const $ = (id) => document.getElementById(id);

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY) || undefined;
}

/** POST /v1/tokens with the key; resolves with the token or throws an Error in plain words. */
async function mintToken(user, key, ttl = TTL_S) {
  let r;
  try {
    r = await fetch('/v1/tokens', {
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ user, ttl_s: ttl }),
    });
  } catch {
    throw new Error('The server cannot be reached. Check that it is running, then try again.');
  }
  const body = await r.json().catch(() => null);
  if (r.ok && typeof body?.token === 'string') return body.token;
  const msg = body?.error?.message || '';
  if (r.status === 400 && /ttl_s/.test(msg) && ttl > 3600) return mintToken(user, key, 3600); // a lower cap
  if (r.status === 401 || r.status === 403)
    throw new Error('This API key is not accepted here. Check it and try again.');
  if (r.status === 429) throw new Error('Too many attempts: wait a moment, then try again.');
  if (r.status === 400 && /user/.test(msg)) throw new Error(`That name cannot be used: ${msg}`);
  throw new Error(msg || `The server answered ${r.status}.`);
}

const REASONS = {
  'token expired': 'Your sign-in has expired. Sign in again.',
  'invalid token': 'The server did not accept your sign-in. Sign in again.',
};

/** on: {signedOut()} — called when the person signs out (the page clears its views). */
export function setupSignIn(client, on) {
  const show = (reason) => {
    sessionStorage.removeItem(TOKEN_KEY);
    client.hold();
    $('auth').hidden = false;
    $('empty').hidden = true;
    $('signout').hidden = true;
    // The refusal comes twice: the error (its reason), then the close (4001,
    // "unauthenticated"): only a known reason, or a sign-out (null), changes the text.
    const err = $('auth-error');
    if (REASONS[reason] || reason === null) {
      err.textContent = REASONS[reason] || '';
      err.hidden = !REASONS[reason];
    }
    if (!document.activeElement || document.activeElement === document.body) $('auth-user').focus();
  };
  const connectWith = (token) => {
    sessionStorage.setItem(TOKEN_KEY, token);
    $('auth-error').hidden = true;
    client.reconnectNow();
  };
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = $('signin');
    button.disabled = true;
    try {
      const token = await mintToken($('auth-user').value.trim(), $('auth-key').value);
      $('auth-key').value = '';
      connectWith(token);
    } catch (err) {
      $('auth-error').textContent = err.message;
      $('auth-error').hidden = false;
      $('auth-key').focus();
    } finally {
      button.disabled = false;
    }
  });
  $('auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if ($('token').value.trim()) connectWith($('token').value.trim());
  });
  $('signout').addEventListener('click', () => {
    on.signedOut();
    show(null);
    $('auth-user').focus();
  });
  return {
    /** The token was refused (reason: the server's message), or none is held. */
    refused: show,
    welcome(w) {
      $('auth').hidden = true;
      $('empty').hidden = !$('chat').hidden;
      $('signout').hidden = Boolean(w.open_mode);
      $('signout').title = w.user ? `Signed in as ${w.user}` : '';
    },
  };
}
