// GET /v1/photos/thumb: a photo of the caller's own library for the plan
// preview's thumbnails. The EXIF thumbnail when the JPEG has one, else the
// file itself; another user's or tenant's session, a path outside the
// library (.., absolute, through a symlink), a file that is no image and a
// file over the cap are refused with clear 4xx errors.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before } from 'node:test';
import { startFakeProvider } from '../fake-provider/server.mjs';
import { MAKER } from './photos-lib.mjs';
import { connect, fakeTarget, httpRequest, itest, mintViaApi, openSession, writeRoutesFile } from './harness.mjs';

let fp;
before(async () => {
  fp = await startFakeProvider();
});
after(async () => {
  await fp?.close();
});

/** GET with the body kept as bytes: {status, type, body (Buffer), json}. */
function getBytes(port, urlPath, token) {
  return new Promise((resolve, reject) => {
    const headers = token ? { Authorization: `Bearer ${token}` } : {};
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        let json;
        try {
          json = JSON.parse(body.toString('utf8'));
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, type: res.headers['content-type'], body, json });
      });
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
  });
}

const thumbUrl = (session, rel) =>
  `/v1/photos/thumb?session=${encodeURIComponent(session)}&path=${encodeURIComponent(rel)}`;

itest(
  'photos thumb: own photos served (EXIF thumbnail or the file), others refused with clear errors',
  async ({ startServer }) => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tether-thumb-'));
    const lib = path.join(root, 'acme', 'alice');
    const other = path.join(root, 'globex', 'alice');
    execFileSync(MAKER, [lib, '4']);
    execFileSync(MAKER, [other, '2']);
    const withThumb = '2015/01/IMG_00000.jpg'; // even: an EXIF thumbnail (photo_fixtures.c)
    const without = '2016/01/IMG_00001.jpg';
    fs.writeFileSync(path.join(lib, 'notes.txt'), 'not a photo\n');
    const big = Buffer.alloc(3 << 20);
    Buffer.from('89504e470d0a1a0a', 'hex').copy(big);
    fs.writeFileSync(path.join(lib, 'big.png'), big);
    fs.symlinkSync(path.join(other, '2015', '01', 'IMG_00000.jpg'), path.join(lib, 'escape.jpg'));
    fs.symlinkSync(path.join(other, '2015'), path.join(lib, 'linked'));
    fs.symlinkSync(path.join(lib, '2015', '01', 'IMG_00000.jpg'), path.join(lib, 'inside.jpg'));

    const routes = writeRoutesFile({ routes: { default: [fakeTarget(fp.url, 'p-thumb')] } });
    const srv = await startServer({
      args: ['--routes', routes, '--photos-root', root, '--api-key', 'key-acme:acme', '--api-key', 'key-globex:globex'],
      env: { FAKE_KEY: 'k' },
    });
    const alice = await mintViaApi(srv.port, 'key-acme', 'alice');
    const c = await connect(srv.port, { token: alice, hello: true });
    const { session } = await openSession(c, 'photo-organizer');
    const { session: echo } = await openSession(c, 'echo');

    // The EXIF thumbnail: a JPEG inside the file, smaller than it.
    const file0 = fs.readFileSync(path.join(lib, withThumb));
    let r = await getBytes(srv.port, thumbUrl(session, withThumb), alice);
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(r.type, 'image/jpeg');
    assert.ok(r.body.length < file0.length, 'the thumbnail, not the file');
    assert.equal(r.body.subarray(0, 2).toString('hex'), 'ffd8');
    assert.ok(file0.includes(r.body), 'the bytes embedded in the EXIF');
    // No thumbnail: the file itself.
    r = await getBytes(srv.port, thumbUrl(session, without), alice);
    assert.equal(r.status, 200);
    assert.ok(r.body.equals(fs.readFileSync(path.join(lib, without))), 'the whole file');

    // Another user of the same tenant, and the same user name in another tenant.
    const bob = await mintViaApi(srv.port, 'key-acme', 'bob');
    const globexAlice = await mintViaApi(srv.port, 'key-globex', 'alice');
    for (const t of [bob, globexAlice]) {
      r = await getBytes(srv.port, thumbUrl(session, withThumb), t);
      assert.equal(r.status, 403);
      assert.equal(r.json.error.code, 'forbidden');
      assert.match(r.json.error.message, /another user/);
    }
    r = await getBytes(srv.port, thumbUrl(session, withThumb));
    assert.equal(r.status, 401, 'no token');
    r = await getBytes(srv.port, thumbUrl(echo, withThumb), alice);
    assert.equal(r.status, 403);
    assert.match(r.json.error.message, /not a photo-organizer session/);
    r = await getBytes(srv.port, thumbUrl('no-such-session', withThumb), alice);
    assert.equal(r.status, 404);

    // Paths out of the library.
    for (const rel of [
      '../../globex/alice/2015/01/IMG_00000.jpg',
      '2015/../../x.jpg',
      path.join(other, withThumb),
      '',
    ]) {
      r = await getBytes(srv.port, thumbUrl(session, rel), alice);
      assert.equal(r.status, 400, rel);
      assert.equal(r.json.error.code, 'bad_request', rel);
    }
    // Symlinks: out of the library, through a linked folder, and even inside it.
    for (const rel of ['escape.jpg', 'linked/01/IMG_00000.jpg', 'inside.jpg']) {
      r = await getBytes(srv.port, thumbUrl(session, rel), alice);
      assert.equal(r.status, 403, rel);
      assert.match(r.json.error.message, /symlink/, rel);
    }
    r = await getBytes(srv.port, thumbUrl(session, 'notes.txt'), alice);
    assert.equal(r.status, 415);
    assert.match(r.json.error.message, /not an image/);
    r = await getBytes(srv.port, thumbUrl(session, '2015'), alice);
    assert.equal(r.status, 415, 'a folder');
    r = await getBytes(srv.port, thumbUrl(session, 'big.png'), alice);
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, 'too_large');
    r = await getBytes(srv.port, thumbUrl(session, 'missing.jpg'), alice);
    assert.equal(r.status, 404);
    const post = await httpRequest(srv.port, 'POST', thumbUrl(session, without), {
      headers: { Authorization: `Bearer ${alice}` },
      body: {},
    });
    assert.equal(post.status, 405, 'GET only');
    // Clients gone while their read is in the thread pool: the reads end on their own.
    await Promise.all(
      Array.from({ length: 12 }, () => {
        const req = http.get({
          host: '127.0.0.1',
          port: srv.port,
          path: thumbUrl(session, without),
          headers: { Authorization: `Bearer ${alice}` },
          agent: false,
        });
        req.on('error', () => {});
        return new Promise((resolve) => req.on('finish', () => resolve(req.destroy()))); // sent, then gone
      }),
    );
    // Still serving after all that: while the abandoned reads are still in the
    // thread pool (at most 8 at once) the answer is a 503 to retry, then 200.
    const t0 = Date.now();
    r = await getBytes(srv.port, thumbUrl(session, without), alice);
    while (r.status === 503 && Date.now() - t0 < 10000) {
      await new Promise((res) => setTimeout(res, 100));
      r = await getBytes(srv.port, thumbUrl(session, without), alice);
    }
    assert.equal(r.status, 200);
    fs.rmSync(root, { recursive: true, force: true });
  },
);
