// Pick the tether binary for the browser suite before the integration harness
// reads TETHER_BIN: $TETHER_BIN if set, else build/tether, else build-debug/tether.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
if (!process.env.TETHER_BIN) {
  const release = path.join(repo, 'build', 'tether');
  const debug = path.join(repo, 'build-debug', 'tether');
  if (!fs.existsSync(release) && fs.existsSync(debug)) process.env.TETHER_BIN = debug;
}
