/**
 * wsfleet-client: WebSocketConnector.
 *
 * Wire-compatible with the `WebSocketConnector` of websocket-cross-server-adapter 1.0.7:
 * JSON text frames `{event, payload, callbackId?}`, acks `{payload, callbackId}`, pushed events
 * `{event, payload}`, an application heartbeat whose reply is a frame equal to `pingMsg`.
 * Same options, defaults, events, result shapes and reconnect schedule, with the client
 * bugs of the original fixed (see docs/client-js.md, "Differences from the original").
 */

import { Recovery, RECOVERY_EVENT } from './recovery';
import type { RecoveryInfo } from './recovery';

/** Set by the build: `true` in the `<script>` bundle, which never loads the `ws` package. */
declare const __BROWSER__: boolean;

/** A listener tag: listeners can be removed in bulk by tag with `off(event, tag)`. */
export type Tag = string | number;
export type Listener = (...args: any[]) => void;

/** `errorCode` values. WS_NOT_OPEN, CALLBACK_TIMEOUT come from the original; the others are new. */
export type ErrorCode = 'WS_NOT_OPEN' | 'CALLBACK_TIMEOUT' | 'WS_CLOSED' | 'INVALID_ARGUMENT';

/** First argument of an `emit` callback when the call failed. */
export interface EmitError {
  error: string;
  errorCode: ErrorCode;
}

/** What `emitWithPromise` resolves with. */
export type EmitResult<T = any> =
  | { success: true; data: T }
  | { success: false; error: string; errorCode?: ErrorCode };

export type EmitCallback<T = any> = (err: EmitError | null, data: T | null) => void;

export interface EmitOptions {
  /** Ack timeout for this call (ms, positive integer). `0`/missing = the `callbackTimeout` option. */
  callbackTimeout?: number;
  /** Delay before `onPending` (ms). `0`/missing = the `pendingTimeout` option. */
  pendingTimeout?: number;
  /** Called once if no ack arrived after `pendingTimeout` (only when pendingTimeout < callbackTimeout). */
  onPending?: () => void;
}

/** The part of a close event the client uses (a native CloseEvent, or a synthetic one for 4002). */
export interface CloseEventLike {
  code: number;
  reason: string;
  wasClean?: boolean;
  [key: string]: any;
}

/** The subset of the standard WebSocket API the client needs. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Decides whether to reconnect after a `close` event. */
export type ReconnectOnClose = boolean | ((code: number, event: CloseEventLike) => boolean);

export interface ConnectorOptions {
  /** Full ws:// or wss:// URL (required). */
  url: string;
  /** Delay from open / last pong to the next heartbeat ping (ms). Default 10000. */
  pingInterval?: number;
  /** Wait for the heartbeat reply before closing with 4002 (ms). Default 2000. */
  pongTimeout?: number;
  /** Attempts that use the fixed fast interval. Default 3. */
  fastReconnectThreshold?: number;
  /** Fast delay, backoff unit, jitter range and minimum delay (ms). Default 3000. */
  fastReconnectInterval?: number;
  /** Upper limit of the backoff delay (ms). Default 120000. */
  reconnectMaxInterval?: number;
  /** Heartbeat text; a received frame equal to it is the heartbeat reply. Default ''. */
  pingMsg?: string;
  /** Ack timeout for emit callbacks and promises (ms). Default 5000. */
  callbackTimeout?: number;
  /** Maximum reconnect attempts in a row; null = unlimited. Default null. */
  repeatLimit?: number | null;
  /** Delay before `onPending` (ms). Default 100. */
  pendingTimeout?: number;
  /** Query parameters added to the URL on every (re)connect. Default {}. */
  customParams?: Record<string, unknown>;
  /**
   * Reconnect after a `close` event? Default `true`: yes, unless the code is 4001, 4010, 4011
   * or 4012. `false` = never (the original client's behaviour: call `reconnect()` yourself).
   * A function decides per code.
   */
  reconnectOnClose?: ReconnectOnClose;
  /**
   * Ask for connection state recovery: on reconnect the server replays what was missed, or the
   * `recovery` event says it could not (docs/client-js.md). Default false.
   */
  recover?: boolean;
  /** WebSocket implementation to use. Default: the global `WebSocket`, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor;
}

export interface ResolvedOptions extends Required<Omit<ConnectorOptions, 'WebSocket' | 'repeatLimit'>> {
  repeatLimit: number | null;
  WebSocket?: WebSocketConstructor;
}

/** Argument of the `reconnect` event. */
export interface ReconnectInfo {
  repeat: number;
  timeout: number;
}

/** Client-side (system) events and their listener signatures. */
export interface SystemEvents {
  open: (event: any) => void;
  close: (event: CloseEventLike) => void;
  error: (event: any) => void;
  message: (data: any) => void;
  ping: () => void;
  pong: (latencyMs: number) => void;
  'pong-timeout': () => void;
  reconnect: (info: ReconnectInfo) => void;
  'repeat-limit': (repeatLimit: number) => void;
  recovery: (info: RecoveryInfo) => void;
}

export type SystemEventName = keyof SystemEvents;

/** Names of the client's own events. `on()` with one of these names listens to the client. */
export const SYSTEM_EVENTS: readonly SystemEventName[] = [
  'open', 'close', 'error', 'message', 'ping', 'pong', 'pong-timeout', 'reconnect', 'repeat-limit',
  'recovery',
];

/** Close codes after which the default policy does not reconnect. */
export const NO_RECONNECT_CODES: readonly number[] = [4001, 4010, 4011, 4012];

export const DEFAULT_OPTIONS: Readonly<Omit<ResolvedOptions, 'url'>> = {
  pingInterval: 10000,
  pongTimeout: 2000,
  fastReconnectThreshold: 3,
  fastReconnectInterval: 3000,
  reconnectMaxInterval: 120000,
  pingMsg: '',
  callbackTimeout: 5000,
  repeatLimit: null,
  pendingTimeout: 100,
  customParams: {},
  reconnectOnClose: true,
  recover: false,
};

/**
 * The URL actually opened: `customParams` appended as form-encoded `String(value)` pairs,
 * after `?`, or after `&` when the URL already has a `?` (any `#fragment` stays last).
 */
export function buildUrl(url: string, customParams?: unknown): string {
  if (!customParams || typeof customParams !== 'object' || Array.isArray(customParams)) return url;
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(customParams)) search.append(key, String(value));
  const query = search.toString();
  if (!query) return url;
  const hashAt = url.indexOf('#');
  const hash = hashAt < 0 ? '' : url.slice(hashAt);
  const base = hashAt < 0 ? url : url.slice(0, hashAt);
  return base + (base.indexOf('?') < 0 ? '?' : '&') + query + hash;
}

/**
 * Delay before reconnect attempt number `repeat` (1-based): `fastReconnectInterval` for the first
 * `fastReconnectThreshold` attempts, then `2^(repeat-threshold) * interval` plus a jitter of
 * `random() * interval`, capped at `reconnectMaxInterval`, never below the interval, floored.
 */
export function computeReconnectDelay(
  repeat: number,
  options: Pick<ResolvedOptions, 'fastReconnectThreshold' | 'fastReconnectInterval' | 'reconnectMaxInterval'>,
  random: () => number = Math.random,
): number {
  const fast = options.fastReconnectInterval;
  if (repeat <= options.fastReconnectThreshold) return fast;
  const base = Math.pow(2, repeat - options.fastReconnectThreshold) * fast;
  const jitter = random() * fast;
  return Math.floor(Math.max(Math.min(base + jitter, options.reconnectMaxInterval), fast));
}

interface Entry {
  fn: Listener;
  tag?: Tag;
  once: boolean;
}

interface PendingAck {
  done: (err: EmitError | null, data?: any) => void;
  timer: ReturnType<typeof setTimeout>;
  pendingTimer?: ReturnType<typeof setTimeout>;
}

type Timer = ReturnType<typeof setTimeout> | null;

const OPEN = 1;
const noop = () => {};
let nodeWs: WebSocketConstructor | undefined;

function notOpen(): EmitError {
  return { error: 'WebSocket is not open', errorCode: 'WS_NOT_OPEN' };
}

function isPositiveInt(n: unknown): boolean {
  return typeof n === 'number' && n > 0 && n % 1 === 0;
}

function report(err: unknown): void {
  if (typeof console !== 'undefined') console.error('[wsfleet-client] listener error:', err);
}

export class WebSocketConnector {
  /** Effective options (defaults merged in). `customParams` is re-read on every (re)connect. */
  options: ResolvedOptions;
  /** The current socket, or null while disconnected / waiting to reconnect. */
  ws: WebSocketLike | null = null;
  /** Reconnect attempts since the last successful open. */
  repeat = 0;
  /** Last heartbeat round trip in ms (null before the first pong). */
  latency: number | null = null;

  private _sys = new Map<string, Entry[]>();
  private _srv = new Map<string, Entry[]>();
  private _acks = new Map<string, PendingAck>();
  private _counter = 0;
  private _reconnectTimer: Timer = null;
  private _pingTimer: Timer = null;
  private _pongTimer: Timer = null;
  private _pingAt = 0;
  private _forbid = false;
  private _loading = false;
  /** Recovery state (`recover: true`): session token and last positions; null otherwise. */
  recovery: Recovery | null = null;

  constructor(options: ConnectorOptions) {
    const merged: any = { ...DEFAULT_OPTIONS };
    const given: any = options || {};
    for (const key of Object.keys(given)) if (given[key] !== undefined) merged[key] = given[key];
    if (!merged.url || typeof merged.url !== 'string') {
      throw new TypeError('WebSocketConnector: the url option is required');
    }
    this.options = merged;
    if (merged.recover) this.recovery = new Recovery();
    // Connect right after the constructor returns, so listeners added synchronously see every event.
    Promise.resolve().then(() => this._connect());
  }

  // ---------------------------------------------------------------- listeners

  /**
   * Listen to a client event (`open`, `close`, `error`, `message`, `ping`, `pong`, `pong-timeout`,
   * `reconnect`, `repeat-limit`) or, for any other name, to the server-pushed event of that name.
   */
  on<K extends SystemEventName>(event: K, listener: SystemEvents[K], tag?: Tag): this;
  on(event: string, listener: (payload: any) => void, tag?: Tag): this;
  on(event: string, listener: Listener, tag?: Tag): this {
    return this._add(this._table(event), event, listener, tag, false);
  }

  /** Like `on`, removed after the first call. */
  once<K extends SystemEventName>(event: K, listener: SystemEvents[K], tag?: Tag): this;
  once(event: string, listener: (payload: any) => void, tag?: Tag): this;
  once(event: string, listener: Listener, tag?: Tag): this {
    return this._add(this._table(event), event, listener, tag, true);
  }

  /** Remove all listeners of `event`, one listener function, or every listener with a tag. */
  off(event: string, listenerOrTag?: Listener | Tag): this {
    return this._remove(this._table(event), event, listenerOrTag);
  }

  /** Listen to a server-pushed event, whatever its name (also `open`, `pong`, ...). */
  onServer(event: string, listener: (payload: any) => void, tag?: Tag): this {
    return this._add(this._srv, event, listener, tag, false);
  }

  /** Like `onServer`, removed after the first call. */
  onceServer(event: string, listener: (payload: any) => void, tag?: Tag): this {
    return this._add(this._srv, event, listener, tag, true);
  }

  /** `off` for listeners added with `onServer` / `onceServer`. */
  offServer(event: string, listenerOrTag?: Listener | Tag): this {
    return this._remove(this._srv, event, listenerOrTag);
  }

  // ---------------------------------------------------------------- sending

  /**
   * Send an event. With a callback, the server's ack arrives as `callback(null, data)`; failures as
   * `callback({error, errorCode}, null)` with errorCode WS_NOT_OPEN, CALLBACK_TIMEOUT or WS_CLOSED.
   * Returns whether the frame was handed to the socket.
   */
  emit<T = any>(event: string, data: unknown, callback?: EmitCallback<T>, options: EmitOptions = {}): boolean {
    if (typeof event !== 'string' || !event) throw new TypeError('Event must be a non-empty string');
    if (data === null || data === undefined) throw new TypeError('Data cannot be null or undefined');
    if (typeof callback !== 'function') {
      const text = JSON.stringify({ event, payload: data });
      return this._isOpen() && this._send(text);
    }
    const timeouts = this._timeouts(options || {});
    if (!this._isOpen()) {
      callback(notOpen(), null);
      return false;
    }
    return this._request(event, data, callback, 'Is callback timeout: ', timeouts, (options || {}).onPending);
  }

  /**
   * Send an event and wait for the ack. Always resolves: `{success: true, data}` or
   * `{success: false, error, errorCode?}`.
   */
  emitWithPromise<T = any>(event: string, data: unknown, options: EmitOptions = {}): Promise<EmitResult<T>> {
    return new Promise((resolve) => {
      if (typeof event !== 'string' || !event) {
        return resolve({ success: false, error: 'No event provided in emitWithPromise' });
      }
      if (data === null || data === undefined) {
        return resolve({ success: false, error: 'Data cannot be null or undefined' });
      }
      try {
        const timeouts = this._timeouts(options || {});
        if (!this._isOpen()) return resolve({ success: false, ...notOpen() });
        const done = (err: EmitError | null, payload?: any) =>
          resolve(err ? { success: false, error: err.error, errorCode: err.errorCode } : { success: true, data: payload });
        this._request(event, data, done, 'Is promise callback timeout: ', timeouts, (options || {}).onPending);
      } catch (err) {
        resolve({ success: false, error: String((err as Error).message || err), errorCode: 'INVALID_ARGUMENT' });
      }
    });
  }

  // ---------------------------------------------------------------- connection control

  /**
   * Schedule a reconnect attempt on the backoff schedule (closing the current socket with 4001).
   * If an attempt is already scheduled it is replaced, not doubled. `repeatReset` restarts the
   * schedule at attempt 1. Does nothing after `manualClose()`.
   */
  reconnect(repeatReset = false): void {
    if (this._forbid) return;
    if (this._reconnectTimer) {
      clearTimeout(this._reconnectTimer);
      this._reconnectTimer = null;
      if (this.repeat > 0) this.repeat--;
    }
    if (repeatReset) this.repeat = 0;
    this._schedule();
  }

  /** True while reconnect attempts are going on (attempts since the last open > 0). */
  reconnecting(): boolean {
    return this.repeat > 0;
  }

  /** Close with 4001 and stop reconnecting. No `close` event follows. `connect()` undoes it. */
  manualClose(): void {
    this._forbid = true;
    if (this._reconnectTimer) clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._drop(4001, 'client manual close');
  }

  /** Connect now if not connected (also after `manualClose()`); cancels a scheduled attempt. */
  connect(): void {
    this._forbid = false;
    if (this.ws) return;
    if (this._reconnectTimer) clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._connect();
  }

  /** Change the heartbeat interval; with `immediate`, re-arm a waiting ping timer now. */
  setPingInterval(ms: number, immediate = false): void {
    if (typeof ms !== 'number' || !(ms > 0)) throw new TypeError('Ping interval must be a positive number');
    this.options.pingInterval = ms;
    if (immediate && this._pingTimer) {
      clearTimeout(this._pingTimer);
      this._armPing();
    }
  }

  getPingInterval(): number {
    return this.options.pingInterval;
  }

  /** readyState of the current socket (3 = CLOSED when there is none). */
  get readyState(): number {
    return this.ws ? this.ws.readyState : 3;
  }

  // ---------------------------------------------------------------- internals

  private _table(event: string): Map<string, Entry[]> {
    return (SYSTEM_EVENTS as readonly string[]).indexOf(event) >= 0 ? this._sys : this._srv;
  }

  private _add(table: Map<string, Entry[]>, event: string, fn: Listener, tag: Tag | undefined, once: boolean): this {
    if (typeof event !== 'string' || !event) throw new TypeError('Event must be a non-empty string');
    if (typeof fn !== 'function') throw new TypeError('Listener must be a function');
    if (tag !== undefined && typeof tag !== 'string' && typeof tag !== 'number') {
      throw new TypeError('Tag must be a string or a number');
    }
    const list = table.get(event) || [];
    list.push({ fn, tag, once });
    table.set(event, list);
    return this;
  }

  private _remove(table: Map<string, Entry[]>, event: string, what?: Listener | Tag): this {
    const list = table.get(event);
    if (!list) return this;
    if (what === undefined) {
      table.delete(event);
      return this;
    }
    const rest = list.filter((e) => (typeof what === 'function' ? e.fn !== what : e.tag !== what));
    if (rest.length) table.set(event, rest);
    else table.delete(event);
    return this;
  }

  private _fire(table: Map<string, Entry[]>, event: string, args: any[]): void {
    const list = table.get(event);
    if (!list) return;
    for (const entry of list.slice()) {
      const current = table.get(event);
      const at = current ? current.indexOf(entry) : -1;
      if (at < 0) continue; // removed by an earlier listener
      if (entry.once) {
        current!.splice(at, 1);
        if (!current!.length) table.delete(event);
      }
      try {
        entry.fn.apply(this, args);
      } catch (err) {
        report(err);
      }
    }
  }

  private _emit(event: SystemEventName, ...args: any[]): void {
    this._fire(this._sys, event, args);
  }

  private _isOpen(): boolean {
    return !!this.ws && this.ws.readyState === OPEN;
  }

  private _send(text: string): boolean {
    try {
      this.ws!.send(text);
      return true;
    } catch {
      return false;
    }
  }

  private _timeouts(options: EmitOptions): [number, number] {
    const callbackTimeout = options.callbackTimeout || this.options.callbackTimeout;
    const pendingTimeout = options.pendingTimeout || this.options.pendingTimeout;
    if (!isPositiveInt(callbackTimeout)) throw new TypeError('callbackTimeout must be a positive integer');
    if (!isPositiveInt(pendingTimeout)) throw new TypeError('pendingTimeout must be a positive integer');
    return [callbackTimeout, pendingTimeout];
  }

  private _request(
    event: string,
    data: unknown,
    done: (err: EmitError | null, data?: any) => void,
    timeoutText: string,
    [callbackTimeout, pendingTimeout]: [number, number],
    onPending?: () => void,
  ): boolean {
    const id = `${Date.now().toString(36)}-${Math.random().toString(36).substring(2, 6)}-${(++this._counter).toString(36)}`;
    const text = JSON.stringify({ event, payload: data, callbackId: id });
    const entry: PendingAck = {
      done,
      timer: setTimeout(() => this._settle(id, { error: timeoutText + id, errorCode: 'CALLBACK_TIMEOUT' }), callbackTimeout),
    };
    if (typeof onPending === 'function' && pendingTimeout < callbackTimeout) {
      entry.pendingTimer = setTimeout(() => {
        entry.pendingTimer = undefined;
        try {
          onPending();
        } catch (err) {
          report(err);
        }
      }, pendingTimeout);
    }
    this._acks.set(id, entry);
    if (this._send(text)) return true;
    this._settle(id, notOpen());
    return false;
  }

  private _settle(id: string, err: EmitError | null, data?: any): void {
    const entry = this._acks.get(id);
    if (!entry) return;
    this._acks.delete(id);
    clearTimeout(entry.timer);
    if (entry.pendingTimer) clearTimeout(entry.pendingTimer);
    try {
      if (err) entry.done(err, null);
      else entry.done(null, data);
    } catch (e) {
      report(e);
    }
  }

  /** Fail every pending ack at once: their replies can never arrive on another connection. */
  private _flushAcks(): void {
    for (const id of Array.from(this._acks.keys())) {
      this._settle(id, { error: 'WebSocket closed before the ack arrived: ' + id, errorCode: 'WS_CLOSED' });
    }
  }

  private _connect(): void {
    if (this._forbid || this.ws || this._loading) return;
    const Impl: WebSocketConstructor | undefined =
      this.options.WebSocket || (globalThis as any).WebSocket || nodeWs;
    if (!Impl) {
      if (!__BROWSER__ && typeof process !== 'undefined' && process.versions && process.versions.node) {
        // Node.js without a global WebSocket (Node 20): load the optional `ws` package once.
        this._loading = true;
        const name = 'ws';
        import(/* webpackIgnore: true */ /* @vite-ignore */ name).then(
          (mod: any) => {
            this._loading = false;
            nodeWs = mod.WebSocket || (mod.default && mod.default.WebSocket) || mod.default;
            this._connect();
          },
          (err: unknown) => {
            this._loading = false;
            this._fail(err);
          },
        );
        return;
      }
      this._fail(new Error('No WebSocket implementation available'));
      return;
    }
    let ws: WebSocketLike;
    try {
      const rec = this.recovery;
      const params = rec ? { ...this.options.customParams, ...rec.params() } : this.options.customParams;
      ws = new Impl(buildUrl(this.options.url, params));
    } catch (err) {
      this._fail(err);
      return;
    }
    this.ws = ws;
    ws.onopen = (ev: any) => {
      this.repeat = 0;
      this._heartStart();
      this._emit('open', ev);
    };
    ws.onmessage = (ev: any) => this._onMessage(ev);
    ws.onerror = (ev: any) => {
      // An error is always fatal for a WebSocket: drop it (no `close` event follows, as in the
      // original) and schedule a reconnect.
      this._drop(4001, 'client manual close');
      this._emit('error', ev);
      this._autoReconnect();
    };
    ws.onclose = (ev: any) => this._onClose(ev);
  }

  /** The socket could not even be created (bad URL, no implementation): report and keep retrying. */
  private _fail(err: unknown): void {
    this._emit('error', err);
    this._autoReconnect();
  }

  private _onClose(event: CloseEventLike, closeCode?: number): void {
    this._drop(closeCode, event.reason);
    this._emit('close', event);
    // A `close` listener written for the original client may have called reconnect() or
    // manualClose() already: then the attempt is scheduled (or forbidden) and nothing is added.
    if (this._forbid || this._reconnectTimer) return;
    const policy = this.options.reconnectOnClose;
    let again = policy !== false && NO_RECONNECT_CODES.indexOf(event.code) < 0;
    if (typeof policy === 'function') {
      try {
        again = !!policy(event.code, event);
      } catch (err) {
        report(err);
        again = false;
      }
    }
    if (again) this._schedule();
  }

  private _onMessage(ev: any): void {
    const data = ev.data;
    this._emit('message', data);
    if (data === this.options.pingMsg) {
      this.latency = Date.now() - this._pingAt;
      this._heartStart();
      this._emit('pong', this.latency);
      return;
    }
    if (typeof data !== 'string') return;
    let msg: any;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    const rec = this.recovery;
    if (rec) {
      if (msg.event === RECOVERY_EVENT) {
        const info = rec.onEvent(msg.payload);
        if (info) this._emit('recovery', info);
        return;
      }
      if (rec.observe(msg.wsfp)) return;
    }
    if (msg.callbackId) {
      if (typeof msg.callbackId === 'string') this._settle(msg.callbackId, null, msg.payload);
      return;
    }
    if (typeof msg.event === 'string' && msg.event) this._fire(this._srv, msg.event, [msg.payload]);
  }

  /** Detach the socket (closing it with `code` if still connecting/open), stop timers, fail acks. */
  private _drop(code?: number, reason?: string): void {
    this._heartReset();
    const ws = this.ws;
    if (ws) {
      this.ws = null;
      ws.onopen = ws.onmessage = ws.onerror = ws.onclose = noop;
      if (code && ws.readyState < 2) {
        try {
          ws.close(code, reason);
        } catch {
          /* already closing */
        }
      }
    }
    this._flushAcks();
  }

  private _autoReconnect(): void {
    if (!this._forbid && !this._reconnectTimer) this._schedule();
  }

  private _schedule(): void {
    this._heartReset();
    const o = this.options;
    if (typeof o.repeatLimit === 'number' && o.repeatLimit <= this.repeat) {
      this._emit('repeat-limit', o.repeatLimit);
      return;
    }
    this._drop(4001, 'client manual close');
    const repeat = ++this.repeat;
    const timeout = computeReconnectDelay(repeat, o);
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      this._connect();
    }, timeout);
    this._emit('reconnect', { repeat, timeout });
  }

  private _heartReset(): void {
    if (this._pingTimer) clearTimeout(this._pingTimer);
    if (this._pongTimer) clearTimeout(this._pongTimer);
    this._pingTimer = this._pongTimer = null;
  }

  private _heartStart(): void {
    this._heartReset();
    if (!this._forbid && this.ws) this._armPing();
  }

  private _armPing(): void {
    this._pingTimer = setTimeout(() => {
      this._pingTimer = null;
      const ws = this.ws;
      this._emit('ping');
      if (!ws || this.ws !== ws) return; // a ping listener closed or reconnected
      this._pingAt = Date.now();
      if (ws.readyState === OPEN) this._send(this.options.pingMsg);
      this._pongTimer = setTimeout(() => {
        this._pongTimer = null;
        this._emit('pong-timeout');
        if (this.ws === ws && ws.readyState === OPEN) {
          this._onClose({ type: 'close', code: 4002, reason: 'pong timeout', wasClean: false }, 4002);
        }
      }, this.options.pongTimeout);
    }, this.options.pingInterval);
  }
}

/** Alias of {@link WebSocketConnector}. */
export const WsfleetClient = WebSocketConnector;
export type WsfleetClient = WebSocketConnector;
