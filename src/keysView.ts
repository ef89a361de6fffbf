/**
 * Renders `fleet keys list` and validates what `fleet keys create|list` read from the admin
 * API (the CLI may talk to an API of another version). Pure, tested on its own.
 */
import { z } from 'zod';
import { renderTable } from './textTable.js';

const keySchema = z.object({
  id: z.string(),
  account: z.string(),
  name: z.string().nullable(),
  balance_tokens: z.number().nullable(),
  window_tokens: z.number().nullable(),
  window_seconds: z.number().nullable(),
  spent: z.number(),
  created_at: z.string(),
  revoked_at: z.string().nullable(),
});
export type KeyView = z.infer<typeof keySchema>;

export const keysListSchema = z.object({ data: z.array(keySchema) });
/** POST /admin/keys answers the key once, in `key`. */
export const keyAnswerSchema = keySchema.extend({ key: z.string() });

const budgetOf = (k: KeyView) =>
  [
    k.balance_tokens !== null ? `balance ${k.balance_tokens}` : null,
    k.window_tokens !== null ? `${k.window_tokens}/${k.window_seconds}s` : null,
  ]
    .filter(Boolean)
    .join(', ') || 'unlimited';

/** One line per key: id, account, name, budget, spend, status. */
export function renderKeys(keys: readonly KeyView[]): string {
  if (keys.length === 0) return 'no API keys\n';
  const rows = [
    ['KEY', 'ACCOUNT', 'NAME', 'BUDGET', 'SPENT', 'STATUS'],
    ...keys.map((k) => [k.id, k.account, k.name ?? '-', budgetOf(k), String(k.spent), k.revoked_at ? `revoked ${k.revoked_at}` : 'active']),
  ];
  return renderTable(rows);
}
