// dom.js: element building for the UI. Text is only ever set with
// textContent; attributes are fixed names with values the UI chooses.

/** h('div', {class: 'x', text: 'hello', onclick: fn}, child...) */
export function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function shortJson(v, max = 80) {
  let s;
  try {
    s = typeof v === 'string' ? v : JSON.stringify(v);
  } catch {
    s = String(v);
  }
  if (s === undefined) s = '';
  return s.length > max ? s.slice(0, max - 1) + '…' : s;
}

/** How many files of each folder show a thumbnail (when opts.thumb is given). */
export const THUMBS_PER_FOLDER = 4;

/** Load the thumbnails of an opened folder's first files, once (lazy: nothing before it opens). */
function loadThumbs(det, thumb) {
  if (det.dataset.thumbs) return;
  det.dataset.thumbs = 'loading';
  for (const img of det.querySelectorAll('img.plan-thumb')) {
    Promise.resolve()
      .then(() => thumb(img.dataset.src))
      .then(
        (url) => {
          img.src = url;
          img.classList.add('loaded');
        },
        (e) => {
          img.replaceWith(h('span', { class: 'plan-thumb failed', title: `No preview: ${e?.message || e}` }));
        },
      );
  }
}

/** The files a folder of the plan gets: collapsed, "src → dest" per line; the first few with a thumbnail. */
function folderFiles(n, opts) {
  const files = Array.isArray(n.files) ? n.files : [];
  const more = Number(n.files_more) || 0;
  if (!files.length && !more) return null;
  const total = files.length + more;
  const ul = h('ul', { class: 'plan-files' });
  for (const [i, f] of files.entries()) {
    const img =
      opts.thumb && i < THUMBS_PER_FOLDER && typeof f.src === 'string'
        ? h('img', { class: 'plan-thumb', alt: `Preview of ${f.src}`, 'data-src': f.src, width: 48, height: 36 })
        : null;
    const li = h(
      'li',
      { class: 'plan-file', 'data-search': `${f.src} ${f.dest}`.toLowerCase() },
      img,
      h('bdi', { class: 'file-src', text: String(f.src ?? '') }),
      ' → ',
      h('bdi', { class: 'file-dest', text: String(f.dest ?? '') }),
    );
    ul.append(li);
  }
  if (more) ul.append(h('li', { class: 'meta', text: `and ${more} more not listed here` }));
  const det = h(
    'details',
    { class: 'folder-files' },
    h('summary', { text: `${total} file${total === 1 ? '' : 's'} move here` }),
    ul,
  );
  if (opts.thumb) det.addEventListener('toggle', () => det.open && loadThumbs(det, opts.thumb));
  return det;
}

/** Filter the listed files by text: folders with a match open, the others close. */
function filterFiles(box, query, status) {
  const q = query.trim().toLowerCase();
  let hits = 0;
  for (const det of box.querySelectorAll('details.folder-files')) {
    let here = 0;
    for (const li of det.querySelectorAll('li.plan-file')) {
      const hit = !q || li.dataset.search.includes(q);
      li.hidden = !hit;
      here += hit ? 1 : 0;
    }
    hits += here;
    det.open = q !== '' && here > 0;
  }
  status.textContent = !q ? '' : hits === 1 ? '1 file matches' : `${hits} files match`;
}

function renderTree(tree, box, opts) {
  let listed = false;
  const walk = (nodesIn, depth) => {
    const ul = h('ul', { class: depth ? 'tree' : 'tree root' });
    for (const n of nodesIn) {
      if (!n || typeof n !== 'object') continue;
      const label = h('span', { class: 'tree-name', dir: 'auto', text: String(n.name ?? '') });
      const li = h('li', {}, label);
      if (n.count !== undefined && n.count !== null)
        li.append(h('span', { class: 'tree-count', text: String(n.count) }));
      const files = folderFiles(n, opts);
      if (files) {
        listed = true;
        li.append(files);
      }
      if (Array.isArray(n.children) && n.children.length && depth < 32) li.append(walk(n.children, depth + 1));
      ul.append(li);
    }
    return ul;
  };
  const root = walk(tree, 0);
  if (listed) {
    const status = h('span', { class: 'meta plan-search-status', role: 'status' });
    const input = h('input', {
      type: 'search',
      class: 'plan-search',
      placeholder: 'Find a file in the plan',
      'aria-label': 'Find a file in the plan',
    });
    input.addEventListener('input', () => filterFiles(root, input.value, status));
    box.append(h('div', { class: 'plan-search-row' }, input, status));
  }
  box.append(root);
}

/**
 * A plan: a folder tree with counts ({tree}; the files each folder gets, searchable), else a list of steps, else pretty JSON.
 * opts.thumb(src) -> Promise<url>: thumbnails for the first files of a folder, loaded when it is opened.
 */
export function renderPlan(plan, opts = {}) {
  const box = h('div', { class: 'plan' });
  if (plan && Array.isArray(plan.tree)) {
    renderTree(plan.tree, box, opts);
  } else if (plan && Array.isArray(plan.steps)) {
    const ol = h('ol', { class: 'steps' });
    for (const s of plan.steps) ol.append(h('li', { text: typeof s === 'string' ? s : shortJson(s, 400) }));
    box.append(ol);
  } else {
    box.append(h('pre', { class: 'json', text: JSON.stringify(plan, null, 2) ?? '' }));
  }
  if (plan && Array.isArray(plan.comments) && plan.comments.length) {
    const ul = h('ul', { class: 'comments' });
    for (const c of plan.comments) ul.append(h('li', { text: typeof c === 'string' ? c : shortJson(c, 400) }));
    box.append(h('div', { class: 'meta', text: 'Your comments' }), ul);
  }
  if (plan && typeof plan.revision === 'number' && plan.revision > 0)
    box.append(h('div', { class: 'meta', text: `revision ${plan.revision}` }));
  return box;
}
