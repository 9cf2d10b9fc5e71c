// Start-up shared by the tests that drive Tether against the fake provider
// (tests/fake-provider): the provider itself for a file's tests, and the two
// tenants with an API key each that the tenant-scoped tests use.

import { startFakeProvider } from '../fake-provider/server.mjs';
import { forTheTests } from './harness.mjs';

/**
 * The fake provider for this file's tests: started before them (with opts,
 * as startFakeProvider takes them), closed after (see forTheTests): used as
 * the provider itself (fp.url, fp.script(...), fp.requests(...)).
 */
export function useFakeProvider(opts = {}) {
  return forTheTests(() => startFakeProvider(opts), 'the fake provider');
}

/**
 * Two tenants, "acme" and "umbrella", with an API key each, named after the
 * test file (`${name}-key-acme-0123456789`): { KEY_A, KEY_B, keyArgs }, where
 * keyArgs are the server arguments that make both keys.
 */
export function twoTenants(name) {
  const KEY_A = `${name}-key-acme-0123456789`;
  const KEY_B = `${name}-key-umbrella-0123456789`;
  return { KEY_A, KEY_B, keyArgs: ['--api-key', `${KEY_A}:acme`, '--api-key', `${KEY_B}:umbrella`] };
}
