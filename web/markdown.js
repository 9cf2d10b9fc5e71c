// markdown.js: a small, safe Markdown renderer. It builds DOM nodes with
// createElement + textContent only: no innerHTML, no attribute taken from the
// text except a link's href, and that only when it parses as http(s) or
// mailto. Anything it does not understand stays visible as text, so raw HTML
// in model output (<img onerror>, <script>) is shown, never run.
//
// Blocks: paragraphs (single newlines kept as line breaks), ATX headings,
// fenced code blocks (``` or ~~~; an unclosed fence while streaming is still
// a code block) with a copy button, bullet and numbered lists, block quotes,
// horizontal rules, and tables (a header row, a delimiter row like
// `| --- | :-: |`, body rows; cells hold inline Markdown).
// Inline: `code`, **strong** / __strong__, *em* / _em_, ~~del~~,
// [text](url), <https://autolinks> and bare http(s) URLs; a "quoted" run is
// put in a <bdi> (isolated: a name in it cannot reorder the text around it).

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

/** The URL as a safe href string, or null. */
export function safeHref(raw) {
  const s = String(raw || '').trim();
  if (!/^(https?:\/\/|mailto:)/i.test(s)) return null; // only absolute http(s) and mailto
  try {
    const u = new URL(s);
    if (!SAFE_PROTOCOLS.has(u.protocol)) return null;
    return u.href;
  } catch {
    return null;
  }
}

function el(doc, tag, text) {
  const e = doc.createElement(tag);
  if (text !== undefined) e.textContent = text;
  return e;
}

// ------------------------------------------------------------------ inline

function link(doc, text, href, inner) {
  const a = doc.createElement('a');
  a.setAttribute('href', href);
  a.setAttribute('rel', 'noopener noreferrer');
  a.setAttribute('target', '_blank');
  if (inner) renderInline(doc, text, a, true);
  else a.textContent = text;
  return a;
}

/** Find the closing delimiter `d` from index i (not preceded by whitespace). */
function findClose(s, d, i) {
  let j = s.indexOf(d, i);
  while (j !== -1) {
    if (j > i && !/\s/.test(s[j - 1])) return j;
    j = s.indexOf(d, j + 1);
  }
  return -1;
}

const URL_RE = /^(https?:\/\/[^\s<>"'`]+[^\s<>"'`.,;:!?)\]}])/i;

/** Append the inline Markdown of `s` to `parent`. */
export function renderInline(doc, s, parent, inLink = false) {
  let buf = '';
  const flush = () => {
    if (buf) {
      parent.appendChild(doc.createTextNode(buf));
      buf = '';
    }
  };
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    // backslash escape
    if (c === '\\' && i + 1 < s.length && /[\\`*_{}[\]()#+\-.!~<>|]/.test(s[i + 1])) {
      buf += s[i + 1];
      i += 2;
      continue;
    }
    // code span
    if (c === '`') {
      let n = 1;
      while (s[i + n] === '`') n++;
      const fence = '`'.repeat(n);
      const j = s.indexOf(fence, i + n);
      if (j !== -1) {
        flush();
        let code = s.slice(i + n, j);
        if (code.length > 2 && code[0] === ' ' && code[code.length - 1] === ' ') code = code.slice(1, -1);
        parent.appendChild(el(doc, 'code', code));
        i = j + n;
        continue;
      }
      buf += fence;
      i += n;
      continue;
    }
    // "a quoted name", as agents quote file and folder names: isolated (<bdi>),
    // so right-to-left letters in it cannot reorder the text around it
    if (c === '"') {
      const j = s.indexOf('"', i + 1);
      if (j > i + 1 && j - i <= 300 && !s.slice(i + 1, j).includes('\n')) {
        buf += '"';
        flush();
        const b = doc.createElement('bdi');
        renderInline(doc, s.slice(i + 1, j), b, inLink);
        parent.appendChild(b);
        buf += '"';
        i = j + 1;
        continue;
      }
    }
    // strong / em / del
    const two = s.slice(i, i + 2);
    const intraword = two === '__' && i > 0 && /[A-Za-z0-9]/.test(s[i - 1]); // snake__case is not strong
    if ((two === '**' || two === '__' || two === '~~') && !intraword && s[i + 2] && !/\s/.test(s[i + 2])) {
      let j = findClose(s, two, i + 2);
      if (two === '__') while (j !== -1 && /[A-Za-z0-9]/.test(s[j + 2] || '')) j = findClose(s, two, j + 2);
      if (j !== -1) {
        flush();
        const e = doc.createElement(two === '~~' ? 'del' : 'strong');
        renderInline(doc, s.slice(i + 2, j), e, inLink);
        parent.appendChild(e);
        i = j + 2;
        continue;
      }
    }
    if ((c === '*' || c === '_') && s[i + 1] && !/\s/.test(s[i + 1]) && s[i + 1] !== c) {
      // _ inside words (snake_case) is not emphasis
      const wordBefore = i > 0 && /[A-Za-z0-9]/.test(s[i - 1]);
      if (!(c === '_' && wordBefore)) {
        let j = findClose(s, c, i + 1);
        while (j !== -1 && s[j + 1] === c) j = findClose(s, c, j + 2);
        if (j !== -1 && !(c === '_' && /[A-Za-z0-9]/.test(s[j + 1] || ''))) {
          flush();
          const e = doc.createElement('em');
          renderInline(doc, s.slice(i + 1, j), e, inLink);
          parent.appendChild(e);
          i = j + 1;
          continue;
        }
      }
    }
    // [text](url)
    if (c === '[' && !inLink) {
      const close = s.indexOf('](', i + 1);
      if (close !== -1 && !s.slice(i + 1, close).includes('\n')) {
        const end = s.indexOf(')', close + 2);
        if (end !== -1) {
          const text = s.slice(i + 1, close);
          const url = s
            .slice(close + 2, end)
            .trim()
            .split(/\s+/)[0];
          const href = safeHref(url);
          if (href) {
            flush();
            parent.appendChild(link(doc, text, href, true));
            i = end + 1;
            continue;
          }
          // Unsafe or unknown scheme: the whole thing stays text.
          buf += s.slice(i, end + 1);
          i = end + 1;
          continue;
        }
      }
    }
    // <https://autolink>
    if (c === '<' && !inLink) {
      const j = s.indexOf('>', i + 1);
      if (j !== -1) {
        const href = safeHref(s.slice(i + 1, j));
        if (href && !/\s/.test(s.slice(i + 1, j))) {
          flush();
          parent.appendChild(link(doc, s.slice(i + 1, j), href, false));
          i = j + 1;
          continue;
        }
      }
    }
    // bare URL
    if ((c === 'h' || c === 'H') && !inLink && (i === 0 || /[\s(]/.test(s[i - 1]))) {
      const m = URL_RE.exec(s.slice(i));
      if (m) {
        const href = safeHref(m[1]);
        if (href) {
          flush();
          parent.appendChild(link(doc, m[1], href, false));
          i += m[1].length;
          continue;
        }
      }
    }
    buf += c;
    i++;
  }
  flush();
}

// ------------------------------------------------------------------ blocks

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$/;
const BULLET = /^( {0,3})([-*+])[ \t]+(.*)$/;
const ORDERED = /^( {0,3})(\d{1,9})[.)][ \t]+(.*)$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const HR = /^ {0,3}([-*_])( *\1){2,} *$/;

const TABLE_DELIM = /^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

/** The cells of a table row: split at unescaped pipes, outer pipes dropped. */
function tableCells(line) {
  let t = line.trim();
  if (t.startsWith('|')) t = t.slice(1);
  if (t.endsWith('|') && !t.endsWith('\\|')) t = t.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let k = 0; k < t.length; k++) {
    if (t[k] === '\\' && t[k + 1] === '|') {
      cur += '|';
      k++;
    } else if (t[k] === '|') {
      cells.push(cur.trim());
      cur = '';
    } else cur += t[k];
  }
  cells.push(cur.trim());
  return cells;
}

/** A table from lines[i] (header) and lines[i + 1] (delimiter); returns the index after it, or i if none. */
function table(doc, lines, i, parent) {
  const head = tableCells(lines[i]);
  const aligns = tableCells(lines[i + 1]).map((d) =>
    d.startsWith(':') && d.endsWith(':') ? 'center' : d.endsWith(':') ? 'right' : d.startsWith(':') ? 'left' : null,
  );
  if (head.length !== aligns.length || head.length > 64) return i;
  const row = (cells, tag) => {
    const tr = doc.createElement('tr');
    for (let k = 0; k < head.length; k++) {
      const c = doc.createElement(tag);
      if (tag === 'th') c.setAttribute('scope', 'col');
      if (aligns[k]) c.setAttribute('data-align', aligns[k]);
      renderInline(doc, cells[k] ?? '', c);
      tr.appendChild(c);
    }
    return tr;
  };
  const tbl = doc.createElement('table');
  const thead = doc.createElement('thead');
  thead.appendChild(row(head, 'th'));
  tbl.appendChild(thead);
  const tbody = doc.createElement('tbody');
  let j = i + 2;
  while (j < lines.length && lines[j].trim() && lines[j].includes('|'))
    tbody.appendChild(row(tableCells(lines[j++]), 'td'));
  if (tbody.firstChild) tbl.appendChild(tbody);
  const wrap = doc.createElement('div');
  wrap.className = 'table-wrap'; // scrolls sideways on a narrow screen
  wrap.appendChild(tbl);
  parent.appendChild(wrap);
  return j;
}

/** The copy button of a code block: its label comes from CSS, so the block's text stays the code. */
function copyButton(doc, code) {
  const b = doc.createElement('button');
  b.type = 'button';
  b.className = 'copy';
  b.setAttribute('aria-label', 'Copy code');
  b.addEventListener('click', async () => {
    try {
      await globalThis.navigator.clipboard.writeText(code.textContent);
      b.dataset.state = 'copied';
      b.setAttribute('aria-label', 'Copied');
    } catch {
      b.dataset.state = 'failed';
      b.setAttribute('aria-label', 'Copy failed: select the code and copy it');
    }
    setTimeout(() => {
      delete b.dataset.state;
      b.setAttribute('aria-label', 'Copy code');
    }, 2000);
  });
  return b;
}

/** A fenced code block from lines[i] (fence match m); returns the index after it. */
function codeBlock(doc, lines, i, m, parent) {
  const fence = m[1];
  const close = new RegExp('^ {0,3}' + fence[0] + '{' + fence.length + ',}\\s*$');
  const body = [];
  i++;
  while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
  const pre = doc.createElement('pre');
  const code = el(doc, 'code', body.join('\n'));
  if (m[2]) code.setAttribute('data-lang', m[2].slice(0, 32));
  pre.appendChild(code);
  pre.appendChild(copyButton(doc, code));
  parent.appendChild(pre);
  return i + 1; // past the closing fence (or the end while streaming)
}

function paragraph(doc, lines) {
  const p = doc.createElement('p');
  lines.forEach((l, k) => {
    if (k > 0) p.appendChild(doc.createElement('br'));
    renderInline(doc, l.replace(/^\s+/, ''), p);
  });
  return p;
}

/** Render Markdown text to a DocumentFragment. */
export function renderMarkdown(text, doc = globalThis.document) {
  const frag = doc.createDocumentFragment();
  renderBlocks(
    doc,
    String(text ?? '')
      .replace(/\r\n?/g, '\n')
      .split('\n'),
    frag,
    0,
  );
  return frag;
}

function renderBlocks(doc, lines, parent, depth) {
  let i = 0;
  let para = [];
  const endPara = () => {
    if (para.length) {
      parent.appendChild(paragraph(doc, para));
      para = [];
    }
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      endPara();
      i++;
      continue;
    }
    if ((m = FENCE.exec(line))) {
      endPara();
      i = codeBlock(doc, lines, i, m, parent);
      continue;
    }
    if (!para.length && i + 1 < lines.length && line.includes('|') && TABLE_DELIM.test(lines[i + 1])) {
      const end = table(doc, lines, i, parent);
      if (end > i) {
        i = end;
        continue;
      }
    }
    if ((m = HEADING.exec(line))) {
      endPara();
      const h = doc.createElement('h' + Math.min(6, m[1].length + 2)); // h3..h6 inside a message
      renderInline(doc, m[2], h);
      parent.appendChild(h);
      i++;
      continue;
    }
    if (HR.test(line) && !para.length) {
      parent.appendChild(doc.createElement('hr'));
      i++;
      continue;
    }
    if (QUOTE.test(line) && depth < 8) {
      endPara();
      const body = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        body.push(m[1]);
        i++;
      }
      const q = doc.createElement('blockquote');
      renderBlocks(doc, body, q, depth + 1);
      parent.appendChild(q);
      continue;
    }
    const bm = BULLET.exec(line);
    const om = bm ? null : ORDERED.exec(line);
    if ((bm || om) && depth < 8) {
      endPara();
      const ordered = Boolean(om);
      const list = doc.createElement(ordered ? 'ol' : 'ul');
      if (ordered && om[2] !== '1') list.setAttribute('start', String(parseInt(om[2], 10)));
      while (i < lines.length) {
        const lm = ordered ? ORDERED.exec(lines[i]) : BULLET.exec(lines[i]);
        if (!lm) break;
        const item = [lm[3]];
        const indent = lm[1].length + 2;
        i++;
        // continuation lines: indented, or lazy paragraph lines
        while (
          i < lines.length &&
          lines[i].trim() &&
          !BULLET.exec(lines[i]) &&
          !ORDERED.exec(lines[i]) &&
          !FENCE.exec(lines[i])
        ) {
          item.push(lines[i].slice(Math.min(indent, lines[i].length - lines[i].trimStart().length)));
          i++;
        }
        // nested list lines (indented further)
        while (
          i < lines.length &&
          /^\s{2,}([-*+]|\d{1,9}[.)])[ \t]+/.test(lines[i]) &&
          lines[i].length - lines[i].trimStart().length >= indent
        ) {
          item.push(lines[i].slice(indent));
          i++;
        }
        const li = doc.createElement('li');
        if (item.length === 1) renderInline(doc, item[0], li);
        else renderBlocks(doc, item, li, depth + 1);
        if (li.firstChild && li.firstChild.nodeName === 'P') {
          // tight list: no paragraph around the item's text
          const p = li.firstChild;
          while (p.firstChild) li.insertBefore(p.firstChild, p);
          li.removeChild(p);
        }
        list.appendChild(li);
        if (
          i < lines.length &&
          !lines[i].trim() &&
          i + 1 < lines.length &&
          (ordered ? ORDERED : BULLET).exec(lines[i + 1])
        )
          i++;
      }
      parent.appendChild(list);
      continue;
    }
    para.push(line);
    i++;
  }
  endPara();
}
