// message-actions.js: what a message offers under it. Regenerate under the
// last answer, Edit on the user's own turns (edit and resend), for agents
// that take them (welcome.agent_info[].rewind) and only while the session
// waits for the user; and the photo organiser's Undo under the message that
// says the photos moved. The server rewinds the conversation (a `rewind` event)
// and answers again; SessionView shows the new branch.
import { h } from './dom.js';

const BUSY = new Set(['running', 'waiting_input', 'waiting_approval', 'closed']);

function lastAnswer(v) {
  for (let i = v.items.length - 1; i >= 0; i--) {
    const it = v.items[i];
    if (it.kind === 'message' && it.role === 'assistant' && !it.stopped) return it;
  }
  return null;
}

/**
 * What message m offers now: 'regenerate', 'edit', 'undo' or '' (also a key
 * for the render cache). 'undo': the photo organiser's run just moved the
 * photos (state done after its execute step): its last message offers to
 * put them back, once.
 */
export function actionsOf(m, v, canRewind, agent) {
  if (m.kind !== 'message' || m.local || m.streaming || m.stopped || !m.id) return '';
  if (agent === 'photo-organizer')
    return v.state === 'done' && v.step === 'execute' && m === lastAnswer(v) ? 'undo' : '';
  if (!canRewind) return '';
  if (BUSY.has(v.state) || v.streaming) return '';
  if (m.role === 'user') return 'edit';
  return m === lastAnswer(v) ? 'regenerate' : '';
}

/** The buttons under a message: onRegenerate(), onEdit() or onUndo() when pressed. */
export function actionButtons(kind, { onRegenerate, onEdit, onUndo }) {
  if (kind === 'undo')
    return h(
      'div',
      { class: 'msg-actions' },
      h('button', { type: 'button', class: 'undo-run', text: 'Undo this run: put the photos back', onclick: onUndo }),
    );
  if (kind === 'regenerate')
    return h(
      'div',
      { class: 'msg-actions' },
      h('button', { type: 'button', class: 'quiet regenerate', text: 'Regenerate', onclick: onRegenerate }),
    );
  if (kind === 'edit')
    return h(
      'div',
      { class: 'msg-actions' },
      h('button', { type: 'button', class: 'quiet edit', text: 'Edit', onclick: onEdit }),
    );
  return null;
}

/**
 * The form that replaces a user message being edited: send(text) resends it
 * in place of the old one, cancel() puts the message back. Enter sends
 * (Shift+Enter a new line), Escape cancels.
 */
export function editForm(m, { send, cancel }) {
  const ta = h('textarea', { class: 'edit-text', rows: '3', 'aria-label': 'Edit your message' });
  ta.value = m.text;
  const ok = h('button', { type: 'submit', class: 'primary', text: 'Send edited message' });
  const no = h('button', { type: 'button', text: 'Cancel', onclick: cancel });
  const form = h('form', { class: 'edit-form' }, ta, h('div', { class: 'buttons' }, ok, no));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (ta.value.trim()) send(ta.value);
  });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    } else if (e.key === 'Escape') {
      e.stopPropagation();
      cancel();
    }
  });
  return form;
}
