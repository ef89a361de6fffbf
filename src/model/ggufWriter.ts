/**
 * Minimal GGUF v3 writer.
 *
 * Why: tests and local dev need real llama.cpp model files without downloading
 * hundreds of megabytes of weights. This module serialises typed metadata and
 * f32 tensors into the GGUF container format that llama.cpp (and therefore
 * node-llama-cpp) loads. It is deliberately generic; `tinyModel.ts` decides
 * what goes into the file.
 *
 * Layout (all little-endian): "GGUF" magic, u32 version 3, u64 tensor count,
 * u64 metadata count, the metadata key/values, the tensor infos, padding to
 * `alignment`, then the tensor data, each tensor starting on an aligned offset.
 */
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';

/** A typed metadata value; the type decides the on-disk encoding. */
export type GgufValue =
  | { type: 'uint32'; value: number }
  | { type: 'int32'; value: number }
  | { type: 'float32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'uint64'; value: bigint | number }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'float32[]'; value: readonly number[] | Float32Array }
  | { type: 'int32[]'; value: readonly number[] | Int32Array };

export type GgufKv = { key: string } & GgufValue;

/** An f32 tensor. `dims` are in ggml order: dims[0] is the contiguous (fastest) axis. */
export interface GgufTensor {
  name: string;
  dims: readonly number[];
  data: Float32Array;
}

export interface GgufSpec {
  metadata: readonly GgufKv[];
  tensors: readonly GgufTensor[];
  /** Alignment of the tensor data section; written as `general.alignment`. Default 32. */
  alignment?: number;
  /**
   * Skip the shape checks (dims ≥ 1, dims matching the data): only for tests that write
   * deliberately broken files to prove the gateway refuses them.
   */
  unchecked?: boolean;
}

export interface GgufWriteResult {
  bytes: number;
}

// gguf_type values from ggml/include/gguf.h.
const T_UINT32 = 4;
const T_INT32 = 5;
const T_FLOAT32 = 6;
const T_BOOL = 7;
const T_STRING = 8;
const T_ARRAY = 9;
const T_UINT64 = 10;
const GGML_TYPE_F32 = 0;
// ggml's GGML_MAX_NAME is 64 including the NUL terminator, so 63 usable bytes.
const MAX_TENSOR_NAME_BYTES = 63;
const GGML_MAX_DIMS = 4;

/** Accumulates the (small) header as a list of chunks; tensor data is streamed separately. */
class HeaderBuilder {
  private chunks: Buffer[] = [];
  length = 0;
  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }
  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }
  u64(v: bigint | number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  u8(v: number): void {
    this.push(Buffer.from([v]));
  }
  str(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }
  zeros(n: number): void {
    if (n > 0) this.push(Buffer.alloc(n));
  }
  concat(): Buffer {
    return Buffer.concat(this.chunks, this.length);
  }
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

function checkInt(key: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new RangeError(`GGUF metadata ${key}: ${v} is not an integer in [${min}, ${max}]`);
  }
}

function writeKv(h: HeaderBuilder, kv: GgufKv): void {
  h.str(kv.key);
  switch (kv.type) {
    case 'uint32':
      checkInt(kv.key, kv.value, 0, 0xffffffff);
      h.u32(T_UINT32);
      h.u32(kv.value);
      return;
    case 'int32':
      checkInt(kv.key, kv.value, -0x80000000, 0x7fffffff);
      h.u32(T_INT32);
      h.i32(kv.value);
      return;
    case 'float32':
      if (!Number.isFinite(kv.value)) throw new RangeError(`GGUF metadata ${kv.key}: not finite`);
      h.u32(T_FLOAT32);
      h.f32(kv.value);
      return;
    case 'bool':
      h.u32(T_BOOL);
      h.u8(kv.value ? 1 : 0);
      return;
    case 'string':
      h.u32(T_STRING);
      h.str(kv.value);
      return;
    case 'uint64': {
      const v = BigInt(kv.value);
      if (v < 0n || v > 0xffffffffffffffffn) throw new RangeError(`GGUF metadata ${kv.key}: out of u64 range`);
      h.u32(T_UINT64);
      h.u64(v);
      return;
    }
    case 'string[]':
      h.u32(T_ARRAY);
      h.u32(T_STRING);
      h.u64(kv.value.length);
      for (const s of kv.value) h.str(s);
      return;
    case 'float32[]':
      h.u32(T_ARRAY);
      h.u32(T_FLOAT32);
      h.u64(kv.value.length);
      for (const v of kv.value) h.f32(v);
      return;
    case 'int32[]':
      h.u32(T_ARRAY);
      h.u32(T_INT32);
      h.u64(kv.value.length);
      for (const v of kv.value) {
        checkInt(kv.key, v, -0x80000000, 0x7fffffff);
        h.i32(v);
      }
      return;
  }
}

function validate(spec: GgufSpec, alignment: number): void {
  if (!Number.isInteger(alignment) || alignment < 8 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`GGUF alignment must be a power of two >= 8, got ${alignment}`);
  }
  const keys = new Set<string>();
  for (const kv of spec.metadata) {
    if (kv.key.length === 0) throw new Error('GGUF metadata key must not be empty');
    if (kv.key === 'general.alignment') {
      throw new Error('GGUF metadata: pass `alignment` in the spec instead of a general.alignment key');
    }
    if (keys.has(kv.key)) throw new Error(`GGUF metadata key duplicated: ${kv.key}`);
    keys.add(kv.key);
  }
  const names = new Set<string>();
  for (const t of spec.tensors) {
    const nameBytes = Buffer.byteLength(t.name, 'utf8');
    if (nameBytes === 0 || nameBytes > MAX_TENSOR_NAME_BYTES) {
      throw new Error(`GGUF tensor name "${t.name}" must be 1..${MAX_TENSOR_NAME_BYTES} bytes, got ${nameBytes}`);
    }
    if (names.has(t.name)) throw new Error(`GGUF tensor name duplicated: ${t.name}`);
    names.add(t.name);
    if (t.dims.length < 1 || t.dims.length > GGML_MAX_DIMS) {
      throw new Error(`GGUF tensor ${t.name}: needs 1..${GGML_MAX_DIMS} dims, got ${t.dims.length}`);
    }
    if (spec.unchecked) continue;
    let product = 1;
    for (const d of t.dims) {
      if (!Number.isInteger(d) || d < 1) throw new Error(`GGUF tensor ${t.name}: bad dim ${d}`);
      product *= d;
    }
    if (product !== t.data.length) {
      throw new Error(
        `GGUF tensor ${t.name}: dims [${t.dims.join(', ')}] hold ${product} values but data has ${t.data.length}`,
      );
    }
  }
}

/** f32 data as little-endian bytes; a zero-copy view on little-endian hosts. */
function tensorBytes(data: Float32Array): Buffer {
  if (endianness() === 'LE') return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const b = Buffer.alloc(data.byteLength);
  for (let i = 0; i < data.length; i++) b.writeFloatLE(data[i] ?? 0, i * 4);
  return b;
}

/**
 * Write `spec` to `file` as GGUF v3 (overwriting it). The header is built in
 * memory (it is small), tensor data is written one tensor at a time.
 */
export async function writeGguf(file: string, spec: GgufSpec): Promise<GgufWriteResult> {
  const alignment = spec.alignment ?? 32;
  validate(spec, alignment);

  const h = new HeaderBuilder();
  h.u32(0x46554747); // "GGUF" read as a little-endian u32
  h.u32(3);
  h.u64(spec.tensors.length);
  h.u64(spec.metadata.length + 1);
  writeKv(h, { key: 'general.alignment', type: 'uint32', value: alignment });
  for (const kv of spec.metadata) writeKv(h, kv);

  // Offsets are relative to the start of the data section and must be aligned.
  const offsets: number[] = [];
  let dataSize = 0;
  for (const t of spec.tensors) {
    const offset = alignUp(dataSize, alignment);
    offsets.push(offset);
    dataSize = offset + t.data.byteLength;
    h.str(t.name);
    h.u32(t.dims.length);
    for (const d of t.dims) h.u64(d);
    h.u32(GGML_TYPE_F32);
    h.u64(offset);
  }
  h.zeros(alignUp(h.length, alignment) - h.length);
  const header = h.concat();

  const fh = await open(file, 'w');
  try {
    let pos = 0;
    const write = async (b: Buffer): Promise<void> => {
      let done = 0;
      while (done < b.length) {
        const { bytesWritten } = await fh.write(b, done, b.length - done, pos + done);
        done += bytesWritten;
      }
      pos += b.length;
    };
    await write(header);
    const dataStart = pos;
    for (let i = 0; i < spec.tensors.length; i++) {
      const t = spec.tensors[i]!;
      const pad = dataStart + (offsets[i] ?? 0) - pos;
      if (pad > 0) await write(Buffer.alloc(pad));
      await write(tensorBytes(t.data));
    }
    // ggml's own reader sizes the data blob as the sum of padded tensor sizes,
    // so pad the tail too rather than end mid-block.
    const tail = alignUp(pos - dataStart, alignment) - (pos - dataStart);
    if (tail > 0) await write(Buffer.alloc(tail));
    return { bytes: pos };
  } finally {
    await fh.close();
  }
}
