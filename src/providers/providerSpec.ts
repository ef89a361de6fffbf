/**
 * What defines a remote provider, validated once with zod wherever one comes from: the config
 * file (`FLEET_CONFIG`), `POST/PATCH /admin/providers`, or `fleet providers add`. The key itself
 * never appears here — only the NAME of the environment variable that holds it, so neither the
 * database, nor a config file in a repository, nor an answer of the admin API carries a secret.
 */
import { z } from 'zod';
import { parseCanonicalMap } from '../domain/canonicalIds.js';

export const PROVIDER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export const timeoutsSchema = z
  .object({
    /** TCP (and TLS) connect. @default 5000 */
    connect_ms: z.number().int().min(100).max(120_000).default(5_000),
    /** From the request to the response headers (the upstream's time to first byte). @default 60000 */
    first_byte_ms: z.number().int().min(100).max(600_000).default(60_000),
    /** Longest silence between two chunks of the body. @default 30000 */
    idle_ms: z.number().int().min(100).max(600_000).default(30_000),
  })
  .strict();

const baseUrl = z
  .string()
  .url('must be an http(s) URL, e.g. https://api.example.com/v1')
  .refine((u) => /^https?:$/.test(new URL(u).protocol), 'must be an http or https URL')
  .refine((u) => !new URL(u).username && !new URL(u).password, 'must not carry credentials (use api_key_env)')
  .transform((u) => u.replace(/\/+$/, ''));

const ipAddress = z.union([z.ipv4(), z.ipv6()], { error: 'must be an IP address (the URL keeps its port)' });
const hostOrWildcard = z
  .string()
  .max(253)
  .regex(/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/i, 'a host name or *.suffix')
  .transform((h) => h.toLowerCase());

/**
 * How to reach the provider: `resolve` dials a host (or every host under `*.suffix`) at a fixed
 * address while TLS and Host still name the host — curl's `--resolve`, for split-horizon
 * deployments and the test proxy; `ca_file` adds a PEM CA bundle to the system's roots.
 */
export const transportSchema = z
  .object({
    resolve: z.record(hostOrWildcard, ipAddress).default({}),
    ca_file: z.string().min(1).max(4096).nullable().default(null),
  })
  .strict();
export type ProviderTransport = z.output<typeof transportSchema>;

const modelsSpec = z.string().max(20_000).superRefine((s, ctx) => {
  for (const e of parseCanonicalMap(s).errors) ctx.addIssue({ code: 'custom', message: e });
});

const providerFields = z
  .object({
    id: z.string().regex(PROVIDER_ID_PATTERN, 'letters, digits and _ . - (max 63), starting with a letter or digit'),
    base_url: baseUrl,
    tier: z.enum(['attested', 'plaintext']).default('plaintext'),
    /**
     * The name of the environment variable that holds the provider's API key: one ending in
     * `_KEY` or `_TOKEN`, and none of the fleet's own (`FLEET_*` but `FLEET_PROVIDER_KEY_*`) — so a
     * provider can never be pointed at the database URL, the admin token or the payload keys.
     */
    api_key_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, 'an environment variable name')
      .refine((n) => /(_KEY|_TOKEN)$/.test(n), 'must name a variable ending in _KEY or _TOKEN')
      .refine((n) => !n.startsWith('FLEET_') || n.startsWith('FLEET_PROVIDER_KEY_'), "must not name one of the fleet's own variables (FLEET_*)")
      .nullable()
      .optional(),
    /** `canonical=slug,…`; a bare entry serves the slug under its own name. */
    models: modelsSpec.default(''),
    streaming: z.boolean().default(true),
    /** Clients may encrypt end to end to this provider (recorded for later; not used yet). */
    e2ee: z.boolean().default(false),
    enabled: z.boolean().default(true),
    /** Assumed for its models when its /v1/models does not say. */
    context_length: z.number().int().min(16).max(10_000_000).default(8192),
    timeouts: timeoutsSchema.default({ connect_ms: 5_000, first_byte_ms: 60_000, idle_ms: 30_000 }),
    transport: transportSchema.default({ resolve: {}, ca_file: null }),
    /** Attested providers: seconds between two discovery cycles of each of its models. @default 300 */
    discovery_interval_s: z.number().int().min(10).max(86_400).default(300),
  })
  .strict();

export const providerSpecSchema = providerFields.refine((p) => p.tier !== 'attested' || p.base_url.startsWith('https://'), {
  message: 'an attested provider needs an https base_url: its backends are pinned by their TLS keys',
  path: ['base_url'],
});
export type ProviderSpec = z.output<typeof providerSpecSchema>;
export type ProviderSpecInput = z.input<typeof providerSpecSchema>;

/** `PATCH /admin/providers/:id`: any field but the id. */
export const providerPatchSchema = providerFields.omit({ id: true }).partial().strict();

/** The config file (`FLEET_CONFIG`, YAML or JSON). */
export const fleetConfigFileSchema = z
  .object({
    providers: z.array(providerSpecSchema).default([]),
  })
  .strict();
export type FleetConfigFile = z.output<typeof fleetConfigFileSchema>;
