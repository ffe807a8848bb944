/**
 * Connection state recovery, client side (`recover: true`). The server gives a session token
 * (event `wsf:recovery`) and appends a stream position (`"wsfp":"<stream>/<key>"`) to frames of
 * recovering clients; both go back on reconnect (`wsf_session`, `wsf_pos`). After a resume the
 * `recovery` event says whether the missed messages follow (`recovered: true`) or not (resync).
 */

/** Argument of the `recovery` event. */
export interface RecoveryInfo {
  recovered: boolean;
  reason: string | null;
  replayed: number;
}

export const RECOVERY_EVENT = 'wsf:recovery';

export class Recovery {
  session: string | null = null;
  /** Last position per stream. */
  positions: Record<string, string> = {};
  // Keys seen lately per stream: a message stored twice (a retried append) is dropped.
  private _seen: Record<string, string[]> = {};

  params(): Record<string, string> {
    const p: Record<string, string> = { wsf_recover: '1' };
    if (this.session) {
      p.wsf_session = this.session;
      const pos = Object.keys(this.positions).map((t) => t + '/' + this.positions[t]).join(',');
      if (pos) p.wsf_pos = pos;
    }
    return p;
  }

  /** Record a frame's position; true when the message was received already. */
  observe(wsfp: unknown): boolean {
    if (typeof wsfp !== 'string') return false;
    const at = wsfp.indexOf('/');
    const tag = wsfp.slice(0, at);
    const key = wsfp.slice(at + 1);
    const seen = this._seen[tag] || (this._seen[tag] = []);
    if (seen.indexOf(key) >= 0) return true;
    if (seen.push(key) > 256) seen.shift();
    this.positions[tag] = key;
    return false;
  }

  onEvent(p: any): RecoveryInfo | null {
    if (!p || typeof p !== 'object') return null;
    if (typeof p.session === 'string') {
      if (p.session !== this.session) this.positions = {}, this._seen = {};
      this.session = p.session;
    }
    if (p.resumed !== true) return null;
    const recovered = p.recovered === true;
    if (!recovered) this.positions = {};
    return {
      recovered,
      reason: typeof p.reason === 'string' ? p.reason : null,
      replayed: typeof p.replayed === 'number' ? p.replayed : 0,
    };
  }
}
