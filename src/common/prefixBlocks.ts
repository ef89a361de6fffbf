/**
 * A conversation as chained block hashes: what a host advertises about the prefixes its
 * context sequences hold, and what a request is matched with (src/domain/prefixRouting.ts).
 * Text, not tokens, so the API can compute a request's chain without the model's tokenizer:
 * the conversation is serialised message by message (so turn n's text is a prefix of turn
 * n+1's), cut into fixed-size blocks, and block i's hash covers blocks 1..i. Only full blocks
 * count (a partial last block changes as the conversation grows). 64-bit hashes: a collision
 * only costs a routing preference. Uses node:crypto — never import it from workflow code.
 */
import { createHash } from 'node:crypto';
import type { InferenceInput } from './inference.js';

export const PREFIX_BLOCK_CHARS = 128;
/** Hashes a host advertises per loaded model at most (what a heartbeat may carry). */
export const MAX_ADVERTISED_PREFIXES = 1024;
/** Blocks a request's chain is computed over (a longer conversation matches on its first 32 KiB). */
export const MAX_REQUEST_BLOCKS = 256;

/** The text a prefix is judged on; undefined for what has no prefix to reuse (embeddings). */
export function conversationText(input: InferenceInput, answer?: string): string | undefined {
  if (input.kind === 'embedding') return undefined;
  const said = input.kind === 'chat' ? input.messages.map((m) => messageText(m.role, m.content)).join('') : input.prompt;
  if (answer === undefined) return said;
  // A chat's answer is the next turn's assistant message; a completion's continues the prompt.
  return said + (input.kind === 'chat' ? messageText('assistant', answer) : answer);
}

/**
 * The opening turn of a conversation: a chat with no assistant or tool message yet, so whatever
 * it matches is shared with other conversations (a system prompt), never its own history.
 */
export function isOpeningTurn(input: InferenceInput): boolean {
  return input.kind === 'chat' && !input.messages.some((m) => m.role === 'assistant' || m.role === 'tool');
}

const messageText = (role: string, content: string) => `${role}\u0000${content}\u0001`;

/** The chained hashes of `text`'s full blocks, first block first (at most `max`). */
export function prefixBlocks(text: string, max = MAX_REQUEST_BLOCKS): string[] {
  const out: string[] = [];
  let prev = '';
  for (let at = 0; at + PREFIX_BLOCK_CHARS <= text.length && out.length < max; at += PREFIX_BLOCK_CHARS) {
    prev = createHash('sha256').update(prev).update(text.slice(at, at + PREFIX_BLOCK_CHARS)).digest('hex').slice(0, 16);
    out.push(prev);
  }
  return out;
}

/** The chain of a request's conversation (with `answer`: as it stands after it); empty when it has no text. */
export function conversationBlocks(input: InferenceInput, answer?: string): string[] {
  const text = conversationText(input, answer);
  return text === undefined ? [] : prefixBlocks(text);
}

/**
 * The hashes a host advertises for one held conversation, bounded: its first `head` blocks
 * (the shared system prompt and early turns, what other conversations may share) and its last
 * `tail` (what this conversation's next turn will match).
 */
export function advertisedBlocks(chain: readonly string[], head = 16, tail = 4): string[] {
  if (chain.length <= head + tail) return [...chain];
  return [...chain.slice(0, head), ...chain.slice(-tail)];
}
