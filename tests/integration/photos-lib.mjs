// What the photo organiser's integration tests share: the real-JPEG library
// maker, a snapshot of a library's files, and a plan that moves them all.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { BIN } from './harness.mjs';

/** tests/unit/make_photo_library, built next to the binary under test. */
export const MAKER = path.join(path.dirname(BIN), 'tests', 'unit', 'make_photo_library');

/** rel path -> sha256, for every file under dir. */
export function snapshot(dir) {
  const out = {};
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out[path.relative(dir, p)] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

/** A plan moving every file of the snapshot `files` into `folder`, by name. */
export function planFor(files, folder) {
  return {
    explanation: `Everything goes into ${folder}, by name.`,
    folders: [folder],
    moves: Object.keys(files)
      .sort()
      .map((src) => ({ src, dest: `${folder}/${path.basename(src)}` })),
  };
}
