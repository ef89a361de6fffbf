/** Starts the HTTP API on a host and port; `close()` stops accepting and ends open streams. */
import http from 'node:http';
import { listen } from '../httpListen.js';
import { createApp, type AppOptions } from './app.js';

export interface ApiServer {
  url: string;
  close(): Promise<void>;
}

export async function startApiServer(o: AppOptions & { host: string; port: number }): Promise<ApiServer> {
  const server = http.createServer(createApp(o));
  server.keepAliveTimeout = 65_000;
  const listening = await listen(server, o.host, o.port);
  o.log.info({ url: listening.url }, 'api listening');
  return listening;
}
