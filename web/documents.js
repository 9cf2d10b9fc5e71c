// documents.js: the documents of an assistant that answers from a collection
// (agent_info[].collection: an assistant given the retrieve tool). The panel
// adds a document (pasted, or a file: text, Markdown, HTML or PDF) with
// POST /v1/documents, lists the collection (GET /v1/documents: title, size,
// chunks) with a Delete on each (DELETE /v1/documents/{id}), and the
// citations of an answer's message.end open their passage in a dialog
// (GET /v1/documents/{id}?position=N). Every call carries the page's token
// in API-key mode, none in open mode; the server keeps each tenant apart.
import { h } from './dom.js';
import { storedToken } from './signin.js';

export const FILE_MAX = 8 << 20; // the server's --max-document-bytes default
const TYPES = { md: 'markdown', markdown: 'markdown', html: 'html', htm: 'html', pdf: 'pdf', txt: 'text' };

/** A documents call: the JSON answer, or throws an Error with the server's message. */
async function api(method, path, body) {
  const headers = {};
  const token = storedToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body) headers['Content-Type'] = 'application/json';
  let r;
  try {
    r = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  } catch {
    throw new Error('the server cannot be reached');
  }
  const json = await r.json().catch(() => null);
  if (!r.ok) throw new Error(json?.error?.message || `the server answered ${r.status}`);
  return json;
}

const q = (collection) => `collection=${encodeURIComponent(collection)}`;

/** The type of a file for POST /v1/documents, from its name or media type (null: not one we read). */
export function typeOf(file) {
  const ext = (file.name.split('.').pop() || '').toLowerCase();
  if (TYPES[ext]) return TYPES[ext];
  if (file.type === 'application/pdf') return 'pdf';
  if (file.type === 'text/html') return 'html';
  if (file.type === 'text/markdown') return 'markdown';
  return file.type.startsWith('text/') ? 'text' : null;
}

function base64(buf) {
  const bytes = new Uint8Array(buf);
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  return bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KB` : `${(bytes / 1048576).toFixed(1)} MB`;
}

/** The body of POST /v1/documents from the form: a picked file wins over pasted text. */
async function bodyOf(collection, { title, text, format, file }) {
  if (file) {
    const type = typeOf(file);
    if (!type) throw new Error(`${file.name} is not text, Markdown, HTML or PDF`);
    if (file.size > FILE_MAX) throw new Error(`${file.name} is ${size(file.size)}: ${size(FILE_MAX)} at most`);
    const body = { collection, title: (title || file.name).slice(0, 200), type };
    if (type === 'pdf') body.content_base64 = base64(await file.arrayBuffer());
    else body.content = await file.text();
    return body;
  }
  if (!text.trim()) throw new Error('paste some text or choose a file first');
  const first = text
    .trim()
    .split('\n')[0]
    .replace(/^#+\s*/, '')
    .trim();
  return { collection, title: (title || first).slice(0, 80), type: format, content: text };
}

export class DocumentsPanel {
  /** els: {panel, head, list, add, form, title, text, format, file, status} */
  constructor(els) {
    this.els = els;
    this.collection = null;
    this.seq = 0; // answers of an older list are dropped
    els.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.add();
    });
    els.file.addEventListener('change', () => {
      const f = els.file.files[0];
      if (f) this.say(`${f.name} (${size(f.size)}) is added as ${typeOf(f) || 'an unknown type'}.`, !typeOf(f));
    });
  }

  say(text, bad = false) {
    this.els.status.textContent = text;
    this.els.status.classList.toggle('warn', bad);
  }

  /** Show the panel for collection (null or undefined: hide it). */
  show(collection) {
    const changed = collection !== this.collection;
    this.collection = collection || null;
    this.els.panel.hidden = !this.collection;
    if (!this.collection) {
      this.seq++; // a list still coming is not shown
      this.els.list.textContent = '';
      return this.say('');
    }
    this.els.head.textContent = '';
    this.els.head.append('Documents in ', h('bdi', { text: this.collection }));
    if (changed) this.say('');
    this.refresh();
  }

  async refresh() {
    if (!this.collection) return;
    const seq = ++this.seq;
    let docs;
    try {
      docs = (await api('GET', `/v1/documents?${q(this.collection)}`)).documents;
    } catch (e) {
      if (seq === this.seq) this.say(`The documents could not be listed: ${e.message}.`, true);
      return;
    }
    if (seq !== this.seq) return;
    const list = this.els.list;
    list.textContent = '';
    if (!docs.length) list.append(h('li', { class: 'none', text: 'No documents yet: add one below.' }));
    for (const d of docs) list.append(this.item(d));
    if (!docs.length) this.els.add.open = true;
  }

  item(d) {
    const del = h('button', {
      type: 'button',
      class: 'quiet danger doc-delete',
      'aria-label': `Delete «${d.title}»`,
      text: 'Delete',
      onclick: () => this.remove(d),
    });
    const chunks = `${d.chunks} ${d.chunks === 1 ? 'chunk' : 'chunks'}`;
    return h(
      'li',
      { class: 'doc-item', 'data-id': d.id },
      h('span', { class: 'doc-title', dir: 'auto', text: d.title }),
      h('span', { class: 'doc-meta', text: `${d.type} · ${size(d.bytes)} · ${chunks}` }),
      del,
    );
  }

  async add() {
    const { title, text, format, file } = this.els;
    const submit = this.els.form.querySelector('button[type=submit]');
    submit.disabled = true;
    this.say('Adding…');
    try {
      const body = await bodyOf(this.collection, {
        title: title.value.trim(),
        text: text.value,
        format: format.value,
        file: file.files[0],
      });
      const d = await api('POST', '/v1/documents', body);
      this.say(
        `${d.replaced ? 'Replaced' : 'Added'} «${d.title}»: ${d.chunks} ${d.chunks === 1 ? 'chunk' : 'chunks'}.`,
      );
      title.value = text.value = file.value = '';
      await this.refresh();
    } catch (e) {
      this.say(`Not added: ${e.message}.`, true);
    } finally {
      submit.disabled = false;
    }
  }

  async remove(d) {
    try {
      await api('DELETE', `/v1/documents/${encodeURIComponent(d.id)}?${q(d.collection || this.collection)}`);
      this.say(`Deleted «${d.title}».`);
    } catch (e) {
      this.say(`Not deleted: ${e.message}.`, true);
    }
    await this.refresh();
    this.els.add.querySelector('summary').focus();
  }
}

// ------------------------------------------------------------ citations

/** The sources of an answer (message.end citations) as links that open their passage. */
export function citationLinks(citations, open) {
  const ol = h('ol', { class: 'cite-list' });
  citations.forEach((c, i) => {
    const label = `${c.title}, passage ${c.position + 1}`;
    ol.append(
      h(
        'li',
        {},
        h(
          'a',
          {
            href: `#cite-${i + 1}`,
            class: 'cite-link',
            'data-document-id': c.document_id,
            'data-position': c.position,
            'aria-haspopup': 'dialog',
            title: `Open the source: ${label}`,
            onclick: (e) => {
              e.preventDefault();
              open(c, e.currentTarget);
            },
          },
          `[${i + 1}] `,
          h('bdi', { text: c.title }),
          `, passage ${c.position + 1}`,
        ),
      ),
    );
  });
  return h('div', { class: 'meta citations' }, h('span', { class: 'cite-head', text: 'Sources' }), ol);
}

/** Open the passage a citation names in the dialog (els: {dialog, title, meta, text, close}). */
export async function openPassage(els, c, opener) {
  els.title.textContent = c.title;
  els.meta.textContent = `Passage ${c.position + 1} · collection ${c.collection}`;
  els.text.textContent = 'Loading…';
  els.text.classList.remove('warn');
  if (!els.dialog.open) els.dialog.showModal();
  els.dialog.onclose = () => opener?.focus();
  try {
    const p = await api(
      'GET',
      `/v1/documents/${encodeURIComponent(c.document_id)}?${q(c.collection)}&position=${c.position}`,
    );
    els.title.textContent = p.title;
    els.meta.textContent = `Passage ${p.position + 1} of ${p.chunks} · ${p.tokens} tokens · collection ${p.collection}`;
    els.text.textContent = p.text;
  } catch (e) {
    els.text.textContent = `The passage could not be read: ${e.message}.`;
    els.text.classList.add('warn');
  }
}

/** The page's panel and passage dialog, from their element ids: {panel, open(citation, opener)}. */
export function setupDocuments() {
  const $ = (id) => document.getElementById(id);
  const panel = new DocumentsPanel({
    panel: $('docs'),
    head: $('docs-head'),
    list: $('docs-list'),
    add: $('docs-add'),
    form: $('docs-form'),
    title: $('docs-title'),
    text: $('docs-text'),
    format: $('docs-format'),
    file: $('docs-file'),
    status: $('docs-status'),
  });
  const dialog = { dialog: $('passage'), title: $('passage-title'), meta: $('passage-meta'), text: $('passage-text') };
  return { panel, open: (c, opener) => openPassage(dialog, c, opener) };
}
