// doc-input.js: the document for agents that start from one (the document
// analyst's input.document): pasted into the box, picked with the file
// field, or dropped on the box. Text files only, up to the server's 2 MiB.
const DOC_MAX = 2 << 20; // bytes; the analyst's own limit (agents/doc_analyst.c)
const FORMATS = { md: 'markdown', markdown: 'markdown', html: 'html', htm: 'html' };
const TEXT_EXT = /\.(txt|text|md|markdown|html?|csv|tsv|json|log|rst|org|xml|ya?ml)$/i;

export class DocInput {
  /** els: {panel, text, file, status} */
  constructor(els) {
    this.els = els;
    this.format = 'text';
    this.title = '';
    els.file.addEventListener('change', () => {
      if (els.file.files[0]) this.load(els.file.files[0]);
    });
    els.text.addEventListener('input', () => {
      if (!els.text.value) this.reset();
    });
    for (const type of ['dragenter', 'dragover'])
      els.panel.addEventListener(type, (e) => {
        e.preventDefault();
        els.panel.classList.add('dropping');
      });
    els.panel.addEventListener('dragleave', () => els.panel.classList.remove('dropping'));
    els.panel.addEventListener('drop', (e) => {
      e.preventDefault();
      els.panel.classList.remove('dropping');
      const f = e.dataTransfer?.files?.[0];
      if (f) {
        els.file.value = ''; // the box now holds the dropped file, not the one picked before
        this.load(f);
      }
    });
  }

  show(on) {
    this.els.panel.hidden = !on;
  }

  say(text, bad = false) {
    this.els.status.textContent = text;
    this.els.status.classList.toggle('warn', bad);
  }

  /** Read a dropped or picked file into the box; refuses what is not text or too large. */
  async load(f) {
    if (f.size > DOC_MAX) return this.say(`${f.name} is ${(f.size / 1048576).toFixed(1)} MiB: 2 MiB at most.`, true);
    if (!(f.type.startsWith('text/') || f.type === 'application/json' || TEXT_EXT.test(f.name)))
      return this.say(`${f.name} is not a text file: save it as text, Markdown or HTML first.`, true);
    const text = await f.text();
    if (text.includes('\u0000')) return this.say(`${f.name} is not a text file.`, true);
    this.els.text.value = text;
    this.format = FORMATS[(f.name.split('.').pop() || '').toLowerCase()] || 'text';
    this.title = f.name.slice(0, 200);
    this.say(`${f.name}: ${text.length.toLocaleString()} characters, read as ${this.format}.`);
  }

  /** The session.open input, or throws an Error saying what is missing. */
  value() {
    const document = this.els.text.value;
    if (!document.trim()) throw new Error('paste a document, choose a file or drop one on the box first');
    if (new TextEncoder().encode(document).length > DOC_MAX) throw new Error('the document is over 2 MiB');
    const input = { document, format: this.format };
    if (this.title) input.title = this.title;
    return input;
  }

  reset() {
    this.els.text.value = '';
    this.els.file.value = '';
    this.format = 'text';
    this.title = '';
    this.say('');
  }
}
