/**
 * Grammars for constrained output (src/domain/toolCalls.ts's `OutputConstraint`), compiled by
 * node-llama-cpp once per distinct constraint and kept in a small LRU: the same schema on every
 * request of an agent loop is a map hit, not a GBNF compile.
 *
 * `toolCalls` with `allowText` (tool_choice `auto`) is the call object's grammar under one more
 * rule: the answer is either that object or free text whose first character is not `{`.
 *
 * The library's number rules allow an exponent on integers (`1e-5` is not an integer) and
 * exponents of 16 digits (`9e999` is not a finite number); both are narrowed here so every
 * output validates against the client's schema. Its whitespace rules (newlines and indents,
 * several tokens each on a small vocabulary) become one optional space: compact JSON, fewer
 * tokens out of the client's max_tokens.
 */
import type { Llama, LlamaGrammar } from 'node-llama-cpp';
import type { OutputConstraint } from '../../domain/toolCalls.js';
import { setRecent } from '../../common/recentMap.js';

const CAPACITY = 64;

export class GrammarCache {
  private readonly grammars = new Map<string, Promise<LlamaGrammar>>();

  constructor(private readonly llama: () => Promise<Llama>) {}

  get(c: OutputConstraint): Promise<LlamaGrammar> {
    const key = JSON.stringify(c);
    const hit = this.grammars.get(key);
    if (hit) {
      setRecent(this.grammars, key, hit, CAPACITY);
      return hit;
    }
    const made = this.compile(c);
    made.catch(() => this.grammars.delete(key));
    setRecent(this.grammars, key, made, CAPACITY);
    return made;
  }

  private async compile(c: OutputConstraint): Promise<LlamaGrammar> {
    const llama = await this.llama();
    if (c.kind === 'json') return llama.getGrammarFor('json');
    // The subset was checked by the API (jsonSchemaSubset.ts); the library's types are stricter than JSON.
    const generated = await llama.createGrammarForJsonSchema(c.schema as never);
    const grammar = compactJson(generated.grammar);
    if (c.kind === 'jsonSchema' || !c.allowText) return llama.createGrammar({ grammar, rootRuleName: generated.rootRuleName, trimWhitespaceSuffix: true });
    return llama.createGrammar({
      grammar: `${grammar}\nfleet-answer ::= ${generated.rootRuleName} | fleet-text\nfleet-text ::= [^{ \\t\\n] [^\\x00]*\n`,
      rootRuleName: 'fleet-answer',
      trimWhitespaceSuffix: true,
    });
  }
}

/** 15 digits at most: every integer produced is a safe JavaScript integer (GRAMMAR_INTEGER_LIMIT). */
const INTEGER = '"-"? ("0" | [1-9] [0-9]{0,14})';
const FRACTIONAL = `${INTEGER} ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?`;

/** Rewrites the library's number and whitespace rules (by their reserved names), as above. */
export function compactJson(grammar: string): string {
  return grammar
    .replace(/^(whitespace-[\w-]+-rule) ::= .*$/gm, '$1 ::= [ ]?')
    .replace(/^(comma-whitespace-[\w-]+-rule) ::= .*$/gm, '$1 ::= "," [ ]?')
    .replace(/^integer-number-rule ::= .*$/m, `integer-number-rule ::= ${INTEGER}`)
    .replace(/^fractional-number-rule ::= .*$/m, `fractional-number-rule ::= ${FRACTIONAL}`);
}
