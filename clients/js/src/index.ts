export {
  WebSocketConnector,
  WsfleetClient,
  buildUrl,
  computeReconnectDelay,
  SYSTEM_EVENTS,
  NO_RECONNECT_CODES,
  DEFAULT_OPTIONS,
} from './connector';
export type {
  ConnectorOptions,
  ResolvedOptions,
  EmitOptions,
  EmitError,
  EmitResult,
  EmitCallback,
  ErrorCode,
  CloseEventLike,
  ReconnectInfo,
  ReconnectOnClose,
  SystemEvents,
  SystemEventName,
  Listener,
  Tag,
  WebSocketLike,
  WebSocketConstructor,
} from './connector';
export { Recovery } from './recovery';
export type { RecoveryInfo } from './recovery';
import { WebSocketConnector } from './connector';
export default WebSocketConnector;
