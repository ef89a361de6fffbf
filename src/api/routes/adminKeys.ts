/**
 * Operator endpoints for API keys: create (the only time the secret is shown), list (never a
 * secret or a hash), revoke (takes effect in this process at once). Behind the admin token
 * like every `/admin/*` route.
 */
import { Router } from 'express';
import { createKey, listKeys, revokeKey } from '../../db/keysRepo.js';
import type { ApiKeyRow } from '../../db/schema.js';
import { generateApiKey, KEY_ID_PATTERN } from '../apiKey.js';
import { ApiError, invalidRequest } from '../errors.js';
import type { ApiDeps } from '../callExecutor.js';
import { ACCOUNT_ID_PATTERN, createKeyBody, parseOr400 } from '../schemas.js';

const iso = (d: Date | null) => (d === null ? null : new Date(d).toISOString());

/** A key as operators see it: its budget and spend, no secret material. */
export function keyObject(k: ApiKeyRow) {
  return {
    id: k.id,
    object: 'api_key',
    account: k.account_id,
    name: k.name,
    balance_tokens: k.balance_limit,
    window_tokens: k.window_limit,
    window_seconds: k.window_seconds,
    spent: k.spent,
    created_at: iso(k.created_at),
    last_used_at: iso(k.last_used_at),
    revoked_at: iso(k.revoked_at),
  };
}

// The id is echoed only once it is known to be an id: a whole key pasted by mistake must not be.
const keyNotFound = (id?: string) =>
  new ApiError(404, id ? `No API key with id '${id}'.` : 'No API key with that id.', 'invalid_request_error', 'key_not_found', 'id');

export function adminKeyRoutes(deps: ApiDeps): Router {
  const r = Router();

  r.post('/admin/keys', async (req, res) => {
    const b = parseOr400(createKeyBody, req.body ?? {});
    const key = generateApiKey();
    const row = await createKey(deps.db, {
      id: key.keyId,
      accountId: b.account,
      name: b.name ?? null,
      secretHash: key.secretHash,
      balanceLimit: b.balance_tokens ?? null,
      window: b.window_tokens != null && b.window_seconds != null ? { limit: b.window_tokens, seconds: b.window_seconds } : null,
    });
    deps.log.info({ keyId: row.id, account: row.account_id }, 'api key created');
    res.status(201).json({ ...keyObject(row), key: key.plaintext });
  });

  r.get('/admin/keys', async (req, res) => {
    const account = typeof req.query.account === 'string' ? req.query.account : undefined;
    if (account !== undefined && !ACCOUNT_ID_PATTERN.test(account)) throw invalidRequest('Invalid account id.', 'account');
    const rows = await listKeys(deps.db, { accountId: account });
    res.json({ object: 'list', data: rows.map(keyObject) });
  });

  r.delete('/admin/keys/:id', async (req, res) => {
    const id = req.params.id;
    if (!KEY_ID_PATTERN.test(id)) throw keyNotFound();
    const row = await revokeKey(deps.db, id);
    if (!row) throw keyNotFound(id);
    deps.keys.invalidate(id);
    deps.log.info({ keyId: id }, 'api key revoked');
    res.json(keyObject(row));
  });
  return r;
}
