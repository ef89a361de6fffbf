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
