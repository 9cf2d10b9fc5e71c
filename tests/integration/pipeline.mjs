// Raw HTTP/1.1 pipelining for the tests: several requests written at once on
// one TCP socket, the answers read back in order (framed by Content-Length).
import assert from 'node:assert/strict';
import net from 'node:net';

/** One request as text; a POST carries a JSON body with its length. */
export const raw = (method, path, body) => {
  const b = body === undefined ? '' : body;
  const len =
    method.toUpperCase() === 'POST'
      ? `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(b)}\r\n`
      : '';
  return `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${len}\r\n${b}`;
};

/**
 * Write every request at once on one TCP socket, then read `count` responses
 * (framed by Content-Length). Resolves [{status, headers, body}] in order
 * (with untilClose, also the ones before the server closed, `closed` set).
 */
export function pipeline(port, requests, count = requests.length, { untilClose = false } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1', () => sock.write(requests.join('')));
    let buf = Buffer.alloc(0);
    const out = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`${out.length} of ${count} responses after 5 s: ${JSON.stringify(out.map((r) => r.status))}`));
    }, 5000);
    // untilClose: resolves with what was answered when the server closes the connection.
    sock.on('end', () => {
      if (!untilClose) return;
      clearTimeout(timer);
      out.closed = true;
      resolve(out);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) break;
        const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
        const headers = Object.fromEntries(
          lines.slice(1).map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
        );
        const len = Number(headers['content-length']);
        assert.ok(Number.isInteger(len), `response without content-length: ${lines.join(' | ')}`);
        if (buf.length < end + 4 + len) break;
        out.push({
          status: Number(lines[0].split(' ')[1]),
          headers,
          body: buf.subarray(end + 4, end + 4 + len).toString('utf8'),
        });
        buf = buf.subarray(end + 4 + len);
      }
      if (out.length >= count) {
        clearTimeout(timer);
        sock.destroy();
        resolve(out);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}
