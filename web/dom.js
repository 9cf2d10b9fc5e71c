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

/** A plan: a folder tree with counts ({tree}), else a list of steps, else pretty JSON. */
export function renderPlan(plan) {
  const box = h('div', { class: 'plan' });
  if (plan && Array.isArray(plan.tree)) {
    const walk = (nodesIn, depth) => {
      const ul = h('ul', { class: depth ? 'tree' : 'tree root' });
      for (const n of nodesIn) {
        if (!n || typeof n !== 'object') continue;
        const label = h('span', { class: 'tree-name', dir: 'auto', text: String(n.name ?? '') });
        const li = h('li', {}, label);
        if (n.count !== undefined && n.count !== null)
          li.append(h('span', { class: 'tree-count', text: String(n.count) }));
        if (Array.isArray(n.children) && n.children.length && depth < 32) li.append(walk(n.children, depth + 1));
        ul.append(li);
      }
      return ul;
    };
    box.append(walk(plan.tree, 0));
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
