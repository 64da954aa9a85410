/** `ringwire/http`: HTTP exchanges as ring records (docs/http.md): an undici Dispatcher and a (req, res) server. */
export { RingwireDispatcher, type RingwireDispatcherOptions } from './client.js';
export { HttpServer, createHttpServer, httpServerFactory, serveHttp, type HttpServerOptions, type RequestListener } from './server.js';
export { duplexConnector } from './connector.js';
export { FrameType, ResetCode, INITIAL_WINDOW, WINDOW_UPDATE_BYTES } from './wire.js';
