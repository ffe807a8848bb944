// A scriptable stand-in for the standard WebSocket, for unit tests without network.
export class FakeWebSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  /** Every socket created, oldest first. */
  static instances = [];
  /** When set, the constructor throws for URLs it returns true for (like a malformed URL). */
  static rejectUrl = null;

  static reset() {
    FakeWebSocket.instances = [];
    FakeWebSocket.rejectUrl = null;
  }

  static get last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  constructor(url) {
    if (FakeWebSocket.rejectUrl && FakeWebSocket.rejectUrl(url)) {
      throw new SyntaxError(`Failed to construct 'WebSocket': The URL '${url}' is invalid.`);
    }
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closeCalls = [];
    this.onopen = this.onclose = this.onerror = this.onmessage = null;
    FakeWebSocket.instances.push(this);
  }

  send(data) {
    if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
    this.sent.push(data);
  }

  close(code, reason) {
    this.closeCalls.push([code, reason]);
    if (this.readyState < 2) this.readyState = 2;
  }

  /** The frames sent, JSON-parsed (heartbeats kept as raw strings). */
  get frames() {
    return this.sent.map((s) => {
      try {
        return JSON.parse(s);
      } catch {
        return s;
      }
    });
  }

  // ---- what the "server" or the network does
  serverOpen() {
    this.readyState = 1;
    this.onopen && this.onopen({ type: 'open' });
  }

  serverSend(data) {
    this.onmessage && this.onmessage({ type: 'message', data: typeof data === 'string' ? data : JSON.stringify(data) });
  }

  serverSendRaw(data) {
    this.onmessage && this.onmessage({ type: 'message', data });
  }

  serverClose(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose && this.onclose({ type: 'close', code, reason, wasClean: code !== 1006 });
  }

  /** A failed connection, as browsers report it: error, then close 1006. */
  serverFail() {
    this.readyState = 3;
    this.onerror && this.onerror({ type: 'error' });
    this.onclose && this.onclose({ type: 'close', code: 1006, reason: '', wasClean: false });
  }
}
