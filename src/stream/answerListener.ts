/**
 * The API's side of the stream channel for one request: puts the replica's chunks in offset order
 * for a stream, and notices the replica's early answer (EarlyAnswer) — a stream's end marker once
 * every chunk before it arrived, or an unstreamed answer's whole text — so the executor can answer
 * without waiting for the workflow to close. One replica attempt owns the answer (the first whose
 * chunk arrives; `source` names the attempt): another attempt's chunks are dropped, so the client
 * never gets two answers spliced, and only the first complete answer counts.
 */
import type { EarlyAnswer, StreamChunk } from '../common/inference.js';

/** An answer as the replica published it: its text and how it ended. */
export type PublishedAnswer = EarlyAnswer & { text: string };

/** Puts one attempt's chunks in offset order; `onComplete` once its end marker's offset is reached. */
export class ChunkOrder {
  sent = '';
  private owner: string | null = null;
  private readonly pending = new Map<number, string>();
  /** The owner's end marker (it may overtake the last chunks); null once reported. */
  private final: { at: number; answer: EarlyAnswer } | null | undefined;
  constructor(
    private readonly emit: (text: string) => void,
    private readonly onComplete: (text: string, answer: EarlyAnswer) => void = () => undefined,
  ) {}
  push(c: StreamChunk): void {
    if (this.owner !== null && c.source !== this.owner) return;
    this.owner ??= c.source;
    if (c.text) {
      if (c.offset > this.sent.length) this.pending.set(c.offset, c.text);
      else if (c.offset === this.sent.length) this.write(c.text); // else a duplicate
    }
    if (c.final && this.final === undefined) this.final = { at: c.offset + c.text.length, answer: c.final };
    for (let next = this.pending.get(this.sent.length); next !== undefined; next = this.pending.get(this.sent.length)) {
      this.pending.delete(this.sent.length);
      this.write(next);
    }
    if (this.final && this.final.at === this.sent.length) {
      const { answer } = this.final;
      this.final = null;
      this.onComplete(this.sent, answer);
    }
  }
  /** The rest of the answer from the durable record (whatever the channel did not deliver). */
  finishWith(text: string): void {
    this.write(text);
  }
  private write(text: string): void {
    if (!text) return;
    this.sent += text;
    this.emit(text);
  }
}

export interface AnswerListener {
  onChunk(c: StreamChunk): void;
  /** Resolves with the first complete answer a replica published; never rejects. */
  early: Promise<PublishedAnswer>;
  /** A stream's text as relayed so far. */
  order: ChunkOrder;
}

/** `emit`: a stream's next text, in order (unused for an unstreamed answer). */
export function createAnswerListener(o: { stream: boolean; emit: (text: string) => void }): AnswerListener {
  let resolve!: (a: PublishedAnswer) => void;
  const early = new Promise<PublishedAnswer>((r) => (resolve = r));
  const order = new ChunkOrder(o.emit, (text, f) => resolve({ ...f, text }));
  return {
    early,
    order,
    onChunk(c) {
      if (o.stream) order.push(c);
      else if (c.final && c.offset === 0) resolve({ ...c.final, text: c.text });
    },
  };
}
