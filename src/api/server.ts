/** Starts the HTTP API on a host and port; `close()` stops accepting and ends open streams. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type AppOptions } from './app.js';

export interface ApiServer {
  url: string;
  close(): Promise<void>;
}

export async function startApiServer(o: AppOptions & { host: string; port: number }): Promise<ApiServer> {
  const server = http.createServer(createApp(o));
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
  o.log.info({ url }, 'api listening');
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
