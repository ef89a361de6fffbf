/**
 * Starts the HTTP API on a host and port; `close()` stops accepting and ends open streams.
 * Requests Node's HTTP parser rejects before Express sees them (a raw CR or NUL in a header,
 * an oversized header block) still get our JSON envelope instead of Node's bare 400.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import { listen } from '../httpListen.js';
import { createApp, type AppOptions } from './app.js';
import { rawErrorResponse } from './errors.js';

/** Node's parser error codes → what the client is told. */
function parserRejection(code: string | undefined): string {
  if (code === 'HPE_HEADER_OVERFLOW') return rawErrorResponse(431, 'The request headers are too large.', 'headers_too_large');
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return rawErrorResponse(408, 'The request took too long to arrive.', 'request_timeout');
  return rawErrorResponse(400, 'The request is not valid HTTP (a header holds a forbidden character, or the framing is broken).', 'invalid_http');
}

export interface ApiServer {
  url: string;
  close(): Promise<void>;
}

export async function startApiServer(o: AppOptions & { host: string; port: number }): Promise<ApiServer> {
  const server = http.createServer(createApp(o));
  server.keepAliveTimeout = 65_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // A reset or a half-written response is not ours to answer.
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(parserRejection(err.code));
  });
  const listening = await listen(server, o.host, o.port);
  o.log.info({ url: listening.url }, 'api listening');
  return listening;
}
