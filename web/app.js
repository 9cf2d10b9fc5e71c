// A minimal client for the echo agent: connect, open (or re-attach) a
// session, render the stream, resume after a drop without gaps or repeats.
// The full UI and the reusable client library come with issue 5.
const $ = (id) => document.getElementById(id);
const log = $("log");
let ws, session = sessionStorage.getItem("tether.session");
let lastSeq = Number(sessionStorage.getItem("tether.seq") || 0);
let agent = sessionStorage.getItem("tether.agent") || "echo";
let nextId = 1, backoff = 250;

const hints = {
  echo: "The echo agent streams your words back. Type ask for a question or plan for an approval.",
  chat: "The chat agent answers with the configured model.",
};

function showHint(models) {
  const el = $("hint");
  el.classList.toggle("warn", models.length === 0);
  el.textContent = models.length === 0
    ? "No model is configured, so only the echo agent is available. To add one, restart the " +
      "server with OPENAI_API_KEY or ANTHROPIC_API_KEY set (OPENAI_BASE_URL for any " +
      "OpenAI-compatible server), or with --routes FILE."
    : hints[agent] || "";
}

function openSession() {
  session = null; lastSeq = 0; log.textContent = "";
  sessionStorage.removeItem("tether.session"); sessionStorage.removeItem("tether.seq");
  sessionStorage.setItem("tether.agent", agent);
  send({ type: "session.open", agent });
}
const messages = new Map();

function setStatus(text, live) {
  $("status").textContent = text;
  $("status").classList.toggle("live", live);
}

function item(cls, text) {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = text; // never innerHTML: text from users and models stays text
  log.appendChild(li);
  li.scrollIntoView({ block: "end" });
  return li;
}

function send(msg) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ id: "r" + nextId++, ...msg }));
}

function card(text, buttons) {
  const li = item("card", text + "\n");
  for (const [label, action] of buttons) {
    const b = document.createElement("button");
    b.textContent = label;
    b.onclick = () => { action(); li.querySelectorAll("button").forEach((x) => (x.disabled = true)); };
    li.appendChild(b);
  }
}

function onEvent(ev) {
  if (ev.seq <= lastSeq && ev.type !== "snapshot") return; // already shown
  lastSeq = ev.seq;
  sessionStorage.setItem("tether.seq", String(lastSeq));
  switch (ev.type) {
    case "snapshot":
      log.textContent = "";
      for (const t of ev.transcript) item(t.role === "user" ? "user" : "assistant", t.text);
      break;
    case "user": item("user", ev.text); break;
    case "message.start": messages.set(ev.message_id, item("assistant", "")); $("stop").hidden = false; break;
    case "delta": { const li = messages.get(ev.message_id); if (li) li.textContent += ev.text; break; }
    case "message.end": {
      const li = messages.get(ev.message_id) || item("assistant", "");
      li.textContent = ev.text;
      $("stop").hidden = true;
      break;
    }
    case "message.discard": {
      const li = messages.get(ev.message_id);
      if (li) li.classList.add("discarded");
      $("stop").hidden = true;
      break;
    }
    case "question":
      card(ev.text, (ev.choices || []).map((c) => [c, () => send({ type: "answer", session, question_id: ev.question_id, value: c })]));
      break;
    case "approval":
      card(ev.title + "\n" + JSON.stringify(ev.plan, null, 2), [
        ["Approve", () => send({ type: "decide", session, approval_id: ev.approval_id, decision: "approve" })],
        ["Request changes", () => {
          const comment = prompt("What should change?");
          if (comment) send({ type: "decide", session, approval_id: ev.approval_id, decision: "revise", comment });
        }],
        ["Reject", () => send({ type: "decide", session, approval_id: ev.approval_id, decision: "reject" })],
      ]);
      break;
    case "error": item("assistant", "error: " + ev.message); break;
    case "context.trimmed": item("assistant", `(${ev.dropped_messages} older messages were left out to fit the model's limit)`); break;
  }
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/v1/ws`, "tether.v1");
  ws.onopen = () => send({ type: "hello", client: "tether-web/0.1" });
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.type === "welcome") {
      backoff = 250;
      setStatus("live", true);
      const sel = $("agent");
      sel.textContent = "";
      for (const name of m.agents) {
        if (name !== "echo" && m.models.length === 0) continue; // model agents need a model
        const o = document.createElement("option");
        o.value = o.textContent = name;
        sel.appendChild(o);
      }
      if (![...sel.options].some((o) => o.value === agent)) agent = "echo";
      sel.value = agent;
      showHint(m.models);
      if (session) send({ type: "session.attach", session, after: lastSeq });
      else openSession();
    } else if (m.type === "ok" && m.session && !session) {
      session = m.session;
      sessionStorage.setItem("tether.session", session);
    } else if (m.type === "error" && !m.seq) {
      if (m.code === "not_found" || m.code === "forbidden") openSession(); // stale session
      else item("assistant", "error: " + m.message);
    } else if (m.seq) onEvent(m);
  };
  ws.onclose = () => {
    setStatus("reconnecting…", false);
    setTimeout(connect, backoff * (0.5 + Math.random()));
    backoff = Math.min(backoff * 2, 10000);
  };
}

$("say").onsubmit = (e) => {
  e.preventDefault();
  const text = $("text").value;
  if (!text || !session) return;
  send({ type: "say", session, text, client_msg_id: crypto.randomUUID() });
  $("text").value = "";
};
$("stop").onclick = () => send({ type: "cancel", session });
$("agent").onchange = (e) => { agent = e.target.value; openSession(); showHint([...$("agent").options].length > 1 ? ["x"] : []); };
$("new").onclick = () => openSession();
connect();
