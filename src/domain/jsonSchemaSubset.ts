/**
 * The JSON Schema subset our own hosts can enforce by grammar (what node-llama-cpp's
 * `createGrammarForJsonSchema` compiles), decided here so a client's `response_format` or a
 * tool's `parameters` either becomes a grammar whose every output validates against the
 * client's schema, or is refused with the keyword that cannot be honoured — never loosened.
 *
 * Annotations (`title`, `description`, `default`, `examples`, `$schema`, …) do not constrain a
 * value and are dropped. `anyOf` becomes `oneOf` (producing one alternative satisfies both),
 * `definitions` and `#/definitions/…` refs become `$defs`. Every declared property is
 * produced, which satisfies any `required` list; so an object with declared properties gets
 * no others (valid whatever `additionalProperties` allows), and bounds that contradict that
 * are refused. Integers are produced with at most 15 digits, so `minimum` / `maximum` as wide
 * as JavaScript's safe integers (what the SDKs' zod helpers write for `.int()`) are accepted.
 * Recursive definitions are refused: every property is produced, so a recursion never ends.
 * Pure: no I/O.
 */

/** A schema in the subset (plain JSON, a Temporal payload). */
export type GrammarSchema = { readonly [key: string]: unknown };

export type SchemaCheck = { ok: true; schema: GrammarSchema } | { ok: false; keyword: string; path: string; message: string };

const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly', 'strict']);
const SIMPLE_TYPES = new Set(['string', 'number', 'integer', 'boolean', 'null']);
const FORMATS = new Set(['date-time', 'time', 'date']);
const MAX_DEPTH = 32;
/** The largest integer the grammar produces (15 digits; src/activities/llama/grammars.ts). */
export const GRAMMAR_INTEGER_LIMIT = 999_999_999_999_999;

class Refusal extends Error {
  constructor(
    readonly keyword: string,
    readonly path: string,
    message: string,
  ) {
    super(message);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;

/** Checks `schema` and returns it in the subset, or the first keyword it cannot enforce. */
export function toGrammarSchema(schema: unknown): SchemaCheck {
  try {
    if (!isObject(schema)) throw new Refusal('type', '', 'the schema must be a JSON object');
    const defs = collectDefs(schema);
    const out = convert(schema, '', 0, defs);
    const convertedDefs = Object.fromEntries(Object.entries(defs).map(([k, d]) => [k, convert(d, `/$defs/${k}`, 1, defs)]));
    refuseRecursion(out, convertedDefs);
    const converted = Object.keys(defs).length ? { ...out, $defs: convertedDefs } : out;
    return { ok: true, schema: converted };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, keyword: err.keyword, path: err.path, message: err.message };
    throw err;
  }
}

function collectDefs(schema: Record<string, unknown>): Record<string, unknown> {
  const defs: Record<string, unknown> = {};
  for (const key of ['$defs', 'definitions']) {
    const d = schema[key];
    if (d === undefined) continue;
    if (!isObject(d)) throw new Refusal(key, '', `${key} must be an object`);
    for (const [name, s] of Object.entries(d)) {
      if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new Refusal(key, `/${key}/${name}`, `definition names are letters, digits and _ . - (max 64)`);
      defs[name] = s;
    }
  }
  return defs;
}

function convert(s: unknown, path: string, depth: number, defs: Record<string, unknown>): GrammarSchema {
  if (depth > MAX_DEPTH) throw new Refusal('depth', path, `schemas nested deeper than ${MAX_DEPTH} levels are not supported`);
  if (s === true || (isObject(s) && Object.keys(s).every((k) => ANNOTATIONS.has(k)))) throw new Refusal('{}', path, 'an unconstrained value (true or {}) is not supported; give a type');
  if (!isObject(s)) throw new Refusal('type', path, 'each schema must be a JSON object');
  const out: Record<string, unknown> = {};
  const unsupported = Object.keys(s).find((k) => !ANNOTATIONS.has(k) && !HANDLED.has(k));
  if (unsupported) throw new Refusal(unsupported, path, `the JSON Schema keyword '${unsupported}' is not supported`);
  if (s.description !== undefined && typeof s.description === 'string') out.description = s.description;

  if ('$ref' in s) {
    const ref = s.$ref;
    const m = typeof ref === 'string' ? /^#\/(?:\$defs|definitions)\/([A-Za-z0-9_.-]+)$/.exec(ref) : null;
    if (!m || !Object.hasOwn(defs, m[1]!)) throw new Refusal('$ref', path, "$ref must name a definition that exists, as '#/$defs/<name>' (or '#/definitions/<name>')");
    if (Object.keys(s).some((k) => !ANNOTATIONS.has(k) && k !== '$ref' && k !== '$defs' && k !== 'definitions')) throw new Refusal('$ref', path, '$ref cannot be combined with other keywords');
    return { ...out, $ref: `#/$defs/${m[1]}` };
  }
  if ('const' in s) return { ...out, const: scalar(s.const, 'const', path) };
  if ('enum' in s) {
    if (!Array.isArray(s.enum) || s.enum.length === 0) throw new Refusal('enum', path, 'enum must be a non-empty array');
    return { ...out, enum: s.enum.map((v) => scalar(v, 'enum', path)) };
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    if (!(key in s)) continue;
    const alts = s[key];
    if (!Array.isArray(alts) || alts.length === 0) throw new Refusal(key, path, `${key} must be a non-empty array`);
    if ('type' in s) throw new Refusal(key, path, `${key} cannot be combined with type`);
    return { ...out, oneOf: alts.map((a, i) => convert(a, `${path}/${key}/${i}`, depth + 1, defs)) };
  }

  const type = s.type;
  if (type === 'object') return { ...out, ...objectSchema(s, path, depth, defs) };
  if (type === 'array') return { ...out, ...arraySchema(s, path, depth, defs) };
  const types = Array.isArray(type) ? type : [type];
  if (types.length === 0 || !types.every((t) => typeof t === 'string' && SIMPLE_TYPES.has(t))) {
    throw new Refusal('type', path, "type must be one of string, number, integer, boolean, null, object, array (a list only of the first five)");
  }
  if (types.length === 1 && type === 'string') return { ...out, ...stringSchema(s, path) };
  for (const k of ['minLength', 'maxLength', 'format']) if (k in s) throw new Refusal(k, path, `${k} applies only to type string`);
  for (const k of ['minimum', 'maximum'] as const) {
    if (!(k in s)) continue;
    const bound = s[k];
    const wide = typeof bound === 'number' && (k === 'minimum' ? bound <= -GRAMMAR_INTEGER_LIMIT : bound >= GRAMMAR_INTEGER_LIMIT);
    if (type !== 'integer' || !wide) throw new Refusal(k, path, `the JSON Schema keyword '${k}' is not supported (only integer bounds as wide as ±${GRAMMAR_INTEGER_LIMIT})`);
  }
  return { ...out, type };
}

const HANDLED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'minProperties', 'maxProperties',
  'items', 'prefixItems', 'minItems', 'maxItems', 'enum', 'const', 'anyOf', 'oneOf',
  '$defs', 'definitions', '$ref', 'minLength', 'maxLength', 'format', 'minimum', 'maximum',
]);

/** Refuses a definition that reaches itself through refs (its output would never end). */
function refuseRecursion(root: GrammarSchema, defs: Record<string, GrammarSchema>): void {
  const refsOf = (s: unknown, out: Set<string>): Set<string> => {
    if (Array.isArray(s)) s.forEach((x) => refsOf(x, out));
    else if (isObject(s)) {
      if (typeof s.$ref === 'string') out.add(s.$ref.slice('#/$defs/'.length));
      for (const [k, v] of Object.entries(s)) if (k !== '$defs') refsOf(v, out);
    }
    return out;
  };
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') throw new Refusal('$ref', `/$defs/${name}`, `recursive definitions are not supported ('${name}' refers to itself)`);
    state.set(name, 'visiting');
    for (const next of refsOf(defs[name], new Set())) visit(next);
    state.set(name, 'done');
  };
  for (const name of refsOf(root, new Set())) visit(name);
}

function scalar(v: unknown, keyword: string, path: string): string | number | boolean | null {
  if (v === null || typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) return v;
  throw new Refusal(keyword, path, `${keyword} values must be strings, numbers, booleans or null`);
}

function stringSchema(s: Record<string, unknown>, path: string): GrammarSchema {
  if ('format' in s) {
    if (typeof s.format !== 'string' || !FORMATS.has(s.format)) throw new Refusal('format', path, "format must be 'date-time', 'time' or 'date'");
    if ('minLength' in s || 'maxLength' in s) throw new Refusal('format', path, 'format cannot be combined with minLength or maxLength');
    return { type: 'string', format: s.format };
  }
  const out: Record<string, unknown> = { type: 'string' };
  for (const k of ['minLength', 'maxLength']) {
    if (!(k in s)) continue;
    if (!isCount(s[k])) throw new Refusal(k, path, `${k} must be a non-negative integer`);
    out[k] = s[k];
  }
  if (out.minLength !== undefined && out.maxLength !== undefined && (out.minLength as number) > (out.maxLength as number)) throw new Refusal('minLength', path, 'minLength is larger than maxLength');
  return out;
}

function objectSchema(s: Record<string, unknown>, path: string, depth: number, defs: Record<string, unknown>): GrammarSchema {
  for (const k of ['items', 'prefixItems', 'minItems', 'maxItems', 'minLength', 'maxLength', 'format']) if (k in s) throw new Refusal(k, path, `${k} does not apply to type object`);
  const props = s.properties ?? {};
  if (!isObject(props)) throw new Refusal('properties', path, 'properties must be an object');
  const properties = Object.fromEntries(Object.entries(props).map(([k, p]) => [k, convert(p, `${path}/properties/${k}`, depth + 1, defs)]));
  if (s.required !== undefined) {
    if (!Array.isArray(s.required) || !s.required.every((r) => typeof r === 'string')) throw new Refusal('required', path, 'required must be an array of property names');
    const missing = s.required.find((r) => !Object.hasOwn(properties, r));
    if (missing !== undefined) throw new Refusal('required', path, `required names '${missing}', which is not in properties`);
  }
  const out: Record<string, unknown> = { type: 'object', properties };
  const declared = Object.keys(properties).length;
  const extra = s.additionalProperties;
  if (extra !== undefined && typeof extra !== 'boolean' && !isObject(extra)) throw new Refusal('additionalProperties', path, 'additionalProperties must be a boolean or a schema');
  // With declared properties only those are produced (valid whatever else is allowed, and no key
  // can repeat one of them); with none, the object is a map of what additionalProperties allows.
  const open = declared === 0 && extra !== undefined && extra !== false;
  if (open) out.additionalProperties = extra === true ? true : convert(extra, `${path}/additionalProperties`, depth + 1, defs);
  for (const k of ['minProperties', 'maxProperties']) {
    if (!(k in s)) continue;
    if (!isCount(s[k])) throw new Refusal(k, path, `${k} must be a non-negative integer`);
    out[k] = s[k];
  }
  const min = out.minProperties as number | undefined;
  const max = out.maxProperties as number | undefined;
  if (min !== undefined && max !== undefined && min > max) throw new Refusal('minProperties', path, 'minProperties is larger than maxProperties');
  if (max !== undefined && max < declared) throw new Refusal('maxProperties', path, `maxProperties (${max}) is below the ${declared} declared properties, which are all produced`);
  if (min !== undefined && min > declared && !open) throw new Refusal('minProperties', path, `minProperties (${min}) is above the ${declared} declared properties and no others are allowed`);
  return out;
}

function arraySchema(s: Record<string, unknown>, path: string, depth: number, defs: Record<string, unknown>): GrammarSchema {
  for (const k of ['properties', 'required', 'additionalProperties', 'minProperties', 'maxProperties', 'minLength', 'maxLength', 'format']) if (k in s) throw new Refusal(k, path, `${k} does not apply to type array`);
  const out: Record<string, unknown> = { type: 'array' };
  const closed = s.items === false;
  if ('items' in s && !closed) out.items = convert(s.items, `${path}/items`, depth + 1, defs);
  if ('prefixItems' in s) {
    if (!Array.isArray(s.prefixItems)) throw new Refusal('prefixItems', path, 'prefixItems must be an array of schemas');
    out.prefixItems = s.prefixItems.map((p, i) => convert(p, `${path}/prefixItems/${i}`, depth + 1, defs));
  }
  if (out.items === undefined && out.prefixItems === undefined) throw new Refusal('items', path, 'an array needs items (or prefixItems)');
  if (out.items === undefined) delete out.items;
  for (const k of ['minItems', 'maxItems']) {
    if (!(k in s)) continue;
    if (!isCount(s[k])) throw new Refusal(k, path, `${k} must be a non-negative integer`);
    out[k] = s[k];
  }
  const prefix = (out.prefixItems as unknown[] | undefined)?.length ?? 0;
  // A closed tuple (items: false) holds exactly its prefix items at most.
  if (closed) out.maxItems = Math.min((out.maxItems as number | undefined) ?? prefix, prefix);
  if (out.minItems !== undefined && out.maxItems !== undefined && (out.minItems as number) > (out.maxItems as number)) throw new Refusal('minItems', path, 'minItems is larger than maxItems (or than a closed tuple)');
  if (out.maxItems !== undefined && (out.maxItems as number) < prefix) throw new Refusal('maxItems', path, `maxItems is below the ${prefix} prefixItems`);
  return out;
}
