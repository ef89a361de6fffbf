/**
 * The Express app: JSON body parsing with a size limit, API-key auth on `/v1/*`, the admin
 * token on `/admin/*`, the OpenAI routes, operator routes, health, Prometheus metrics, and
 * the one error middleware that turns anything thrown into the envelope.
 */
import type { DemotionPolicy } from '../domain/replicas.js';
import { randomBytes } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import { sql } from 'kysely';
import { METRICS_UNAUTHORIZED, metricsAllowed, recordRequestError, renderMetrics } from '../metrics.js';
import { adminAuthMiddleware, authMiddleware } from './auth.js';
import { corsMiddleware } from './cors.js';
import { anthropicErrorResponse, ApiError, toErrorResponse } from './errors.js';
import { isAnthropicPath } from './routes/messages.js';
import type { ApiDeps } from './callExecutor.js';
import { adminRoutes, type AdminDeps } from './routes/admin.js';
import { adminModelLifecycleRoutes } from './routes/adminModelLifecycle.js';
import { adminPoolRoutes } from './routes/adminPools.js';
import { adminKeyRoutes } from './routes/adminKeys.js';
import { inferenceRoutes } from './routes/inference.js';
import { messagesRoutes } from './routes/messages.js';
import { modelRoutes } from './routes/models.js';
import { signatureRoutes } from './routes/signatures.js';
import { usageRoutes } from './routes/usage.js';
import { codecRoutes } from './routes/codec.js';
import { adminProviderRoutes } from './routes/adminProviders.js';
import type { PayloadCodec } from '@temporalio/common';
import { keepRawBody } from './requestBody.js';

export interface AppOptions extends AdminDeps {
  bodyLimitBytes: number;
  /** FLEET_ADMIN_TOKEN; undefined leaves `/admin/*` open (and is warned about once). */
  adminToken: string | undefined;
  /** FLEET_METRICS_TOKEN; undefined leaves /metrics open to scrapers. */
  metricsToken?: string;
  /** The payload codec, for the codec endpoint (undefined: encryption is off). */
  codec?: PayloadCodec;
  /** Browser origins allowed to call the codec endpoint (the Temporal Web UI). */
  codecCorsOrigins?: readonly string[];
  /** Browser origins allowed to call `/v1` (FLEET_CORS_ORIGINS; `*`: any). */
  corsOrigins?: readonly string[];
  /** Provider keys by variable name (the admin API says whether each is set, never its value). */
  secrets: { get(name: string): string | undefined };
  demotion: DemotionPolicy;
}

/**
 * The endpoint label of an inference API path: the call kind fleet_request_duration_seconds
 * uses (chat covers the Chat Completions, Responses and Messages routes), from a fixed set so
 * a scanner cannot grow the series.
 */
const ENDPOINT_OF_PATH: Readonly<Record<string, string>> = {
  '/v1/chat/completions': 'chat',
  '/v1/responses': 'chat',
  '/v1/messages': 'chat',
  '/v1/completions': 'completion',
  '/v1/embeddings': 'embedding',
  '/v1/messages/count_tokens': 'count_tokens',
};
const endpointOfPath = (p: string): string => ENDPOINT_OF_PATH[p] ?? 'other';

export function createApp(o: AppOptions): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Every response carries a request id (errors too); an inference call replaces it with its workflow id.
  app.use((_req, res, next) => {
    res.setHeader('x-request-id', `req_${randomBytes(12).toString('hex')}`);
    next();
  });

  app.get('/health', async (_req, res) => {
    const db = await sql`select 1`.execute(o.db).then(
      () => true,
      () => false,
    );
    res.status(db ? 200 : 503).json({ status: db ? 'ok' : 'degraded', database: db });
  });

  // Before auth: scrapers carry no API key (FLEET_METRICS_TOKEN, when set, is their own). In `fleet dev` this covers every part of the
  // fleet, since the workers share the process and so the registry.
  app.get('/metrics', async (req, res) => {
    if (!metricsAllowed(req.headers.authorization, o.metricsToken)) {
      res.status(401).setHeader('Content-Type', 'text/plain; charset=utf-8').setHeader('WWW-Authenticate', 'Bearer');
      res.end(METRICS_UNAUTHORIZED);
      return;
    }
    const { contentType, body } = await renderMetrics();
    // setHeader + end, not send(): Express would re-order the content type's parameters.
    res.status(200).setHeader('Content-Type', contentType);
    res.end(body);
  });

  if (o.adminToken === undefined) {
    o.log.warn('FLEET_ADMIN_TOKEN is not set: /admin endpoints are open to anyone who can reach the API');
  }
  // Before the body parser and auth: a browser's preflight carries neither, and a bad body's 400 needs the headers too.
  app.use('/v1', corsMiddleware({ origins: o.corsOrigins ?? [], methods: 'GET, POST, OPTIONS' }));
  app.use(express.json({ limit: o.bodyLimitBytes, type: ['application/json', 'application/*+json'], verify: keepRawBody }));
  app.use(codecRoutes({ codec: o.codec, adminToken: o.adminToken, corsOrigins: o.codecCorsOrigins ?? [] }));
  // Before the key middleware: a signature may be read with the admin token too.
  app.use(signatureRoutes({ ...o, adminToken: o.adminToken }));
  // Each credential guards its own prefix: an admin token is no API key, and vice versa.
  app.use('/v1', authMiddleware({ requireAuth: o.requireAuth, resolveKey: (key) => o.keys.resolve(key) }));
  app.use('/admin', adminAuthMiddleware(o.adminToken));
  app.use(inferenceRoutes(o));
  app.use(messagesRoutes(o));
  app.use(usageRoutes(o));
  app.use(modelRoutes(o));
  app.use(adminRoutes(o));
  app.use(adminModelLifecycleRoutes(o));
  app.use(adminKeyRoutes(o));
  app.use(adminPoolRoutes(o));
  app.use(adminProviderRoutes(o));

  app.use((req: Request) => {
    throw new ApiError(404, `Unknown request URL: ${req.method} ${req.path}.`, 'invalid_request_error', 'unknown_url');
  });
  // Express recognises error middleware by its four parameters.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = toErrorResponse(err);
    // Refused before dispatch (bad body, no key, unknown model, too large): errors after
    // dispatch are counted where the call ends (callExecutor.ts).
    if (req.path.startsWith('/v1/')) recordRequestError({ endpoint: endpointOfPath(req.path), status: e.status, code: e.body.error.code });
    // An outage (503) is expected and transient: one line, no stack; anything else is a bug.
    if (e.status === 503) o.log.warn({ err: (err as Error)?.message, path: req.path }, 'request failed: dependency unavailable');
    else if (e.status >= 500) o.log.error({ err, path: req.path }, 'request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    // The Anthropic routes answer in Anthropic's envelope, auth and body-parser errors included.
    if (isAnthropicPath(req.path)) {
      const a = anthropicErrorResponse(err);
      res.status(a.status).set(a.headers).json(a.body);
      return;
    }
    res.status(e.status).set(e.headers).json(e.body);
  });
  return app;
}
