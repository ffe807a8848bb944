// Entry of the <script> build (dist/wsfleet-client.min.js): defines the globals
// `WebSocketConnector` and `WsfleetClient`.
import { WebSocketConnector } from './connector';

const g = globalThis as any;
g.WebSocketConnector = g.WsfleetClient = WebSocketConnector;
