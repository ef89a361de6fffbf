/** Function calling on our hosts: the grammar schema per tool_choice, and reading the answer back. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { compactJson } from '../../src/activities/llama/grammars.js';
import { MAX_PARALLEL_CALLS, mayBeToolCall, planTools, readToolOutput, renderToolCalls, type ToolChoice } from '../../src/domain/toolCalls.js';

const tools = [
  { name: 'a', parameters: { type: 'object', properties: { x: { type: 'integer' } } } },
  { name: 'b', description: 'the b', parameters: { type: 'object', properties: {} } },
];

describe('tool plans', () => {
  const rows: { choice: ToolChoice; parallel: boolean; constraint: boolean; allowText?: boolean; names?: string[]; maxItems?: number }[] = [
    { choice: { kind: 'none' }, parallel: true, constraint: false },
    { choice: { kind: 'auto' }, parallel: true, constraint: true, allowText: true, names: ['a', 'b'], maxItems: MAX_PARALLEL_CALLS },
    { choice: { kind: 'required' }, parallel: true, constraint: true, allowText: false, names: ['a', 'b'], maxItems: MAX_PARALLEL_CALLS },
    { choice: { kind: 'required' }, parallel: false, constraint: true, allowText: false, names: ['a', 'b'], maxItems: 1 },
    { choice: { kind: 'function', name: 'b' }, parallel: true, constraint: true, allowText: false, names: ['b'], maxItems: 1 },
  ];
  for (const r of rows) {
    test(`${JSON.stringify(r.choice)} parallel=${r.parallel}`, () => {
      const plan = planTools(tools, r.choice, r.parallel);
      if (!r.constraint) return assert.deepEqual(plan, { prompt: null, constraint: null });
      assert.equal(plan.constraint?.kind, 'toolCalls');
      if (plan.constraint?.kind !== 'toolCalls') return;
      assert.equal(plan.constraint.allowText, r.allowText);
      const arr = (plan.constraint.schema.properties as { tool_calls: { items: unknown; minItems: number; maxItems: number } }).tool_calls;
      assert.equal(arr.minItems, 1);
      assert.equal(arr.maxItems, r.maxItems);
      const items = arr.items as { oneOf?: { properties: { name: { const: string } } }[]; properties?: { name: { const: string } } };
      const names = items.oneOf ? items.oneOf.map((o) => o.properties.name.const) : [items.properties!.name.const];
      assert.deepEqual(names, r.names);
      for (const n of r.names!) assert.match(plan.prompt!, new RegExp(`"name":"${n}"`));
    });
  }
});

describe('reading an answer back', () => {
  const rows: { text: string; out: ReturnType<typeof readToolOutput> }[] = [
    { text: 'plain words', out: { kind: 'text' } },
    { text: '{"tool_calls":[{"name":"a","arguments":{"x":1}}]}', out: { kind: 'calls', calls: [{ name: 'a', arguments: '{"x":1}' }] } },
    { text: ' {"tool_calls":[{"name":"a","arguments":{}},{"name":"b","arguments":{}}]}', out: { kind: 'calls', calls: [{ name: 'a', arguments: '{}' }, { name: 'b', arguments: '{}' }] } },
    { text: '{"tool_calls":[{"name":"a","argum', out: { kind: 'text' } }, // cut short by max_tokens
    { text: '{"tool_calls":[]}', out: { kind: 'text' } },
    { text: '{"tool_calls":[{"arguments":{}}]}', out: { kind: 'text' } },
  ];
  for (const r of rows) test(JSON.stringify(r.text), () => assert.deepEqual(readToolOutput(r.text), r.out));

  test('a streamed answer is held while it may become a call', () => {
    assert.equal(mayBeToolCall(''), true);
    assert.equal(mayBeToolCall('  '), true);
    assert.equal(mayBeToolCall(' {"to'), true);
    assert.equal(mayBeToolCall('Hello'), false);
  });

  test('an assistant turn with calls renders as the model writes one, and reads back the same', () => {
    const text = renderToolCalls([{ name: 'a', arguments: '{"x":2}' }]);
    assert.deepEqual(readToolOutput(text), { kind: 'calls', calls: [{ name: 'a', arguments: '{"x":2}' }] });
  });
});

describe('grammar rewrites', () => {
  test('integers lose their exponent, exponents stay finite, whitespace is one optional space', () => {
    const g = [
      'root ::= "{" whitespace-b-1-4-rule "}"',
      'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15}) ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?',
      'fractional-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? ("0" | [1-9] [0-9]{0,15}))?',
      'whitespace-b-1-4-rule ::= [\\n] ("    " | "\\t") | [ ]?',
      'comma-whitespace-b-2-4-rule ::= "," ([\\n] (" "{8} | "\\t\\t") | [ ]?)',
    ].join('\n');
    const out = compactJson(g).split('\n');
    assert.equal(out[0], g.split('\n')[0]);
    assert.equal(out[1], 'integer-number-rule ::= "-"? ("0" | [1-9] [0-9]{0,14})');
    assert.match(out[2]!, /\[eE\] \[-\+\]\? \[0-9\]\{1,2\}\)\?$/);
    assert.equal(out[3], 'whitespace-b-1-4-rule ::= [ ]?');
    assert.equal(out[4], 'comma-whitespace-b-2-4-rule ::= "," [ ]?');
  });
});
