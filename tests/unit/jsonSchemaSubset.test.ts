/** The JSON Schema subset our hosts enforce by grammar: what is kept, rewritten, or refused (naming the keyword). */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { toGrammarSchema } from '../../src/domain/jsonSchemaSubset.js';

const accepted: { name: string; schema: unknown; out: unknown }[] = [
  { name: 'annotations are dropped, description kept', schema: { title: 'T', $schema: 'x', type: 'string', description: 'd', default: 'a' }, out: { type: 'string', description: 'd' } },
  { name: 'string bounds', schema: { type: 'string', minLength: 1, maxLength: 5 }, out: { type: 'string', minLength: 1, maxLength: 5 } },
  { name: 'date format', schema: { type: 'string', format: 'date' }, out: { type: 'string', format: 'date' } },
  { name: 'type list of scalars', schema: { type: ['string', 'null'] }, out: { type: ['string', 'null'] } },
  { name: 'anyOf becomes oneOf', schema: { anyOf: [{ type: 'integer' }, { type: 'null' }] }, out: { oneOf: [{ type: 'integer' }, { type: 'null' }] } },
  { name: 'enum and const', schema: { type: 'object', properties: { a: { enum: ['x', 1, null] }, b: { const: true } } }, out: { type: 'object', properties: { a: { enum: ['x', 1, null] }, b: { const: true } } } },
  {
    name: "integer bounds as wide as the SDKs' zod helpers write them",
    schema: { type: 'integer', minimum: -9007199254740991, maximum: 9007199254740991 },
    out: { type: 'integer' },
  },
  {
    name: 'declared properties only, whatever additionalProperties allows',
    schema: { type: 'object', properties: { a: { type: 'null' } }, additionalProperties: true },
    out: { type: 'object', properties: { a: { type: 'null' } } },
  },
  {
    name: 'a map: no declared properties, additionalProperties a schema',
    schema: { type: 'object', additionalProperties: { type: 'number' } },
    out: { type: 'object', properties: {}, additionalProperties: { type: 'number' } },
  },
  {
    name: 'a closed tuple holds its prefix items at most',
    schema: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }], items: false },
    out: { type: 'array', prefixItems: [{ type: 'string' }, { type: 'number' }], maxItems: 2 },
  },
  {
    name: 'object with required and additionalProperties false',
    schema: { type: 'object', properties: { a: { type: 'number' } }, required: ['a'], additionalProperties: false },
    out: { type: 'object', properties: { a: { type: 'number' } } },
  },
  { name: 'array bounds', schema: { type: 'array', items: { type: 'boolean' }, minItems: 1, maxItems: 3 }, out: { type: 'array', items: { type: 'boolean' }, minItems: 1, maxItems: 3 } },
  {
    name: 'definitions and their refs become $defs',
    schema: { type: 'object', properties: { p: { $ref: '#/definitions/P' } }, definitions: { P: { type: 'integer' } } },
    out: { type: 'object', properties: { p: { $ref: '#/$defs/P' } }, $defs: { P: { type: 'integer' } } },
  },
];

const refused: { name: string; schema: unknown; keyword: string; path?: string }[] = [
  { name: 'pattern', schema: { type: 'object', properties: { a: { type: 'string', pattern: '^x' } } }, keyword: 'pattern', path: '/properties/a' },
  { name: 'minimum', schema: { type: 'integer', minimum: 0 }, keyword: 'minimum' },
  { name: 'allOf', schema: { allOf: [{ type: 'string' }] }, keyword: 'allOf' },
  { name: 'not', schema: { not: { type: 'string' } }, keyword: 'not' },
  { name: 'an unknown format', schema: { type: 'string', format: 'email' }, keyword: 'format' },
  { name: 'a dangling ref', schema: { $ref: '#/$defs/X' }, keyword: '$ref' },
  { name: 'a remote ref', schema: { $defs: { X: { type: 'string' } }, $ref: 'https://example.com/x.json' }, keyword: '$ref' },
  { name: 'required naming no property', schema: { type: 'object', properties: {}, required: ['a'] }, keyword: 'required' },
  { name: 'an unconstrained value', schema: { type: 'object', properties: { a: {} } }, keyword: '{}', path: '/properties/a' },
  { name: 'an array without items', schema: { type: 'array' }, keyword: 'items' },
  { name: 'minLength on a number', schema: { type: 'number', minLength: 1 }, keyword: 'minLength' },
  { name: 'an object type in a list', schema: { type: ['object', 'null'] }, keyword: 'type' },
  { name: 'minItems above maxItems', schema: { type: 'array', items: { type: 'null' }, minItems: 3, maxItems: 1 }, keyword: 'minItems' },
  { name: 'not an object', schema: 'string', keyword: 'type' },
  { name: 'a tight integer bound', schema: { type: 'integer', minimum: 0 }, keyword: 'minimum' },
  { name: 'a bound on a number', schema: { type: 'number', maximum: 9007199254740991 }, keyword: 'maximum' },
  { name: 'a recursive definition', schema: { $defs: { node: { type: 'object', properties: { next: { $ref: '#/$defs/node' } } } }, $ref: '#/$defs/node' }, keyword: '$ref' },
  { name: 'mutually recursive definitions', schema: { type: 'object', properties: { a: { $ref: '#/$defs/A' } }, $defs: { A: { type: 'array', items: { $ref: '#/$defs/B' } }, B: { anyOf: [{ type: 'null' }, { $ref: '#/$defs/A' }] } } }, keyword: '$ref' },
  { name: 'required naming an inherited name', schema: { type: 'object', properties: {}, required: ['constructor'] }, keyword: 'required' },
  { name: 'a ref to an inherited name', schema: { $defs: {}, $ref: '#/$defs/toString' }, keyword: '$ref' },
  { name: 'maxProperties below the declared ones', schema: { type: 'object', properties: { a: { type: 'null' }, b: { type: 'null' } }, maxProperties: 1 }, keyword: 'maxProperties' },
  { name: 'minProperties above the declared ones, no others allowed', schema: { type: 'object', properties: { a: { type: 'null' } }, minProperties: 2 }, keyword: 'minProperties' },
  { name: 'maxItems below the prefix', schema: { type: 'array', prefixItems: [{ type: 'null' }, { type: 'null' }], maxItems: 1 }, keyword: 'maxItems' },
  { name: 'minItems above a closed tuple', schema: { type: 'array', prefixItems: [{ type: 'null' }], items: false, minItems: 2 }, keyword: 'minItems' },
];

describe('JSON Schema subset', () => {
  for (const c of accepted) {
    test(`keeps: ${c.name}`, () => {
      assert.deepEqual(toGrammarSchema(c.schema), { ok: true, schema: c.out });
    });
  }
  for (const c of refused) {
    test(`refuses: ${c.name}`, () => {
      const r = toGrammarSchema(c.schema);
      assert.equal(r.ok, false);
      if (r.ok) return;
      assert.equal(r.keyword, c.keyword);
      if (c.path !== undefined) assert.equal(r.path, c.path);
      assert.ok(r.message.length > 0);
    });
  }
  test('refuses schemas nested past the depth limit instead of recursing without end', () => {
    let s: Record<string, unknown> = { type: 'string' };
    for (let i = 0; i < 40; i++) s = { type: 'array', items: s };
    const r = toGrammarSchema(s);
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.keyword, 'depth');
  });
});
