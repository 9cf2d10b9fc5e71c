// Preloaded (node --import) into third-party servers the benchmarks start, so
// that they listen on 127.0.0.1 only, whatever host they would pick: any
// listen() on a TCP port is bound to loopback.
import net from 'node:net';

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
    const port = Number(args[0]);
    const cb = args.find((a) => typeof a === 'function');
    return listen.call(this, { port, host: '127.0.0.1' }, cb);
  }
  if (args[0] && typeof args[0] === 'object' && 'port' in args[0]) {
    return listen.call(this, { ...args[0], host: '127.0.0.1' }, ...args.slice(1));
  }
  return listen.apply(this, args);
};

// Portkey 1.15 appends its x-portkey-* headers to the upstream's Response on
// the streaming path; on Node 20 those headers are immutable and every stream
// fails with "TypeError: immutable" (Portkey-AI/gateway issues #1389, #1550).
// As upstream PR #1390 does, skip the append instead of failing the request.
for (const name of ['append', 'delete', 'set']) {
  const orig = Headers.prototype[name];
  Headers.prototype[name] = function (...args) {
    try {
      return orig.apply(this, args);
    } catch (e) {
      if (e instanceof TypeError && e.message === 'immutable') return undefined;
      throw e;
    }
  };
}
