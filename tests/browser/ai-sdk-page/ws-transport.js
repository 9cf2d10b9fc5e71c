// A ChatTransport (the `ai` package's interface) over one browser WebSocket,
// speaking the frames of protocol/PROTOCOL.md section 11 (the `ai` package
// 6.0 ships no WebSocket transport): send, resume{lastSequence}, abort out;
// start, chunk{sequence, chunk}, end, error, no-active in. A dropped socket
// fails the stream with a TypeError naming the network, which the SDK's
// AbstractChat takes as a disconnect: resumeStream() then continues the
// same message, resumed after the last sequence seen.

export class WebSocketChatTransport {
  constructor({ url, agent }) {
    this.url = url;
    this.agent = agent;
    this.ws = null;
    this.opening = null;
    this.lastSequence = new Map(); // chatId -> the last sequence seen
    this.handlers = new Map(); // chatId -> frame handler of its stream
    this.frames = []; // every frame received, parsed (the test reads them)
  }

  socket() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) return Promise.resolve(this.ws);
    if (this.opening) return this.opening;
    this.opening = new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      ws.addEventListener('open', () => {
        this.ws = ws;
        this.opening = null;
        resolve(ws);
      });
      ws.addEventListener('message', (ev) => {
        const f = JSON.parse(ev.data);
        this.frames.push(f);
        this.handlers.get(f.chatId)?.(f);
      });
      ws.addEventListener('close', () => {
        if (this.opening) {
          this.opening = null;
          reject(new TypeError('network: the socket did not open'));
        }
        if (this.ws === ws) this.ws = null;
        for (const h of [...this.handlers.values()]) h({ type: 'closed' });
      });
    });
    return this.opening;
  }

  /** chatId's next stream of UI message chunks; null on no-active. */
  async stream(chatId, frame, abortSignal) {
    const ws = await this.socket();
    let ctl;
    let answered;
    const first = new Promise((r) => (answered = r));
    const body = new ReadableStream({
      start(c) {
        ctl = c;
      },
      cancel: () => this.handlers.delete(chatId),
    });
    const end = () => this.handlers.get(chatId) === handle && this.handlers.delete(chatId);
    const handle = (f) => {
      try {
        if (f.type === 'start') answered(true);
        else if (f.type === 'no-active') {
          end();
          answered(false);
        } else if (f.type === 'chunk') {
          if (f.sequence > 0) this.lastSequence.set(chatId, f.sequence);
          ctl.enqueue(f.chunk);
        } else if (f.type === 'end') {
          end();
          ctl.close();
        } else if (f.type === 'error') {
          end();
          answered(true);
          ctl.error(new Error(f.message));
        } else if (f.type === 'closed') {
          end();
          answered(true);
          ctl.error(new TypeError('network connection lost'));
        }
      } catch {
        end(); // the reader went away
      }
    };
    this.handlers.set(chatId, handle);
    abortSignal?.addEventListener('abort', () => {
      if (this.ws === ws) ws.send(JSON.stringify({ type: 'abort', chatId }));
    });
    ws.send(JSON.stringify(frame));
    return (await first) ? body : null;
  }

  sendMessages({ chatId, messages, trigger, abortSignal }) {
    const frame = { type: 'send', chatId, messages, trigger, agent: this.agent };
    return this.stream(chatId, frame, abortSignal);
  }

  reconnectToStream({ chatId }) {
    const last = this.lastSequence.get(chatId);
    return this.stream(chatId, { type: 'resume', chatId, ...(last ? { lastSequence: last } : {}) });
  }
}
