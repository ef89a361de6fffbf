/**
 * The codec endpoint (Temporal's "remote codec server" protocol): `POST /codec/decode` and
 * `POST /codec/encode`, body and answer `{"payloads": [{"metadata": {k: base64}, "data":
 * base64}]}`. The Web UI (its Codec Server setting, or `fleet dev`, which points its UI here)
 * and `temporal workflow show --codec-endpoint … --codec-auth "Bearer <token>"` call it to show
 * operators the prompts that are encrypted at rest.
 *
 * It is guarded like `/admin/*`: the admin token when one is configured (open otherwise, as
 * the admin endpoints are). CORS preflights are answered before auth, for the allowed origins
 * only (the Web UI runs on another origin and sends Authorization and X-Namespace).
 */
import type { PayloadCodec } from '@temporalio/common';
import { Router } from 'express';
import { corsMiddleware } from '../cors.js';
import { z } from 'zod';
import { adminAuthMiddleware } from '../auth.js';
import { ApiError, invalidRequest } from '../errors.js';
import { parseOr400 } from '../schemas.js';

const wirePayload = z.object({
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  data: z.string().nullable().optional(),
});
const codecBody = z.object({ payloads: z.array(wirePayload).max(1000) });
type WirePayload = z.infer<typeof wirePayload>;

const fromWire = (p: WirePayload) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, new Uint8Array(Buffer.from(v, 'base64'))])),
  data: new Uint8Array(Buffer.from(p.data ?? '', 'base64')),
});
const toWire = (p: { metadata?: Record<string, Uint8Array> | null; data?: Uint8Array | null }) => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
});

export interface CodecRouteOptions {
  codec: PayloadCodec | undefined;
  adminToken: string | undefined;
  /** Origins allowed to call from a browser (the Temporal Web UI's). */
  corsOrigins: readonly string[];
}

export function codecRoutes(o: CodecRouteOptions): Router {
  const r = Router();
  const cors = corsMiddleware({ origins: o.corsOrigins, methods: 'POST, OPTIONS', credentials: true, allowHeaders: 'Content-Type, Authorization, X-Namespace' });
  // The app's JSON parser has read the body already (same limit as every route).
  r.use('/codec', cors, adminAuthMiddleware(o.adminToken));
  for (const op of ['encode', 'decode'] as const) {
    r.post(`/codec/${op}`, async (req, res) => {
      if (!o.codec) {
        throw new ApiError(404, 'Payload encryption is off on this API (FLEET_PAYLOAD_KEYS is not set): there is nothing to decode.', 'invalid_request_error', 'codec_disabled');
      }
      const body = parseOr400(codecBody, req.body ?? {});
      let out;
      try {
        out = await o.codec[op](body.payloads.map(fromWire));
      } catch (err) {
        throw invalidRequest(`The payloads cannot be ${op}d: ${(err as Error).message}`, 'payloads');
      }
      res.json({ payloads: out.map(toWire) });
    });
  }
  return r;
}
