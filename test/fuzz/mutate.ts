// Inputs for the decoders' fuzz properties: random bytes, and valid inputs (the seeds) mutated the
// ways damaged or forged files are: bit flips, bytes set, truncation, insertions and deletions,
// 32-bit fields set to boundary values (a length or count made huge), and, for formats with a JSON
// part, that JSON's values replaced, removed or nested deeper before the bytes are rebuilt.
import fc from 'fast-check';

/** One change to a byte string; positions wrap around its length. */
type Mutation =
  | { op: 'flip'; pos: number; bit: number }
  | { op: 'set'; pos: number; value: number }
  | { op: 'truncate'; pos: number }
  | { op: 'insert'; pos: number; bytes: Uint8Array }
  | { op: 'delete'; pos: number; length: number }
  | { op: 'duplicate'; pos: number; length: number }
  | { op: 'u32'; pos: number; value: number; bigEndian: boolean };

/** Values a length or count field is set to: zero, one, the boundaries of 8, 16, 31 and 32 bits. */
const BOUNDARY_U32 = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

const position = fc.nat({ max: 1 << 20 });
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('flip' as const), pos: position, bit: fc.nat({ max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('set' as const), pos: position, value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('truncate' as const), pos: position }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('insert' as const), pos: position, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), pos: position, length: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('duplicate' as const), pos: position, length: fc.integer({ min: 1, max: 64 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('u32' as const),
      pos: position,
      value: fc.oneof(fc.constantFrom(...BOUNDARY_U32), fc.nat({ max: 0xffffffff })),
      bigEndian: fc.boolean(),
    }),
  },
);

function apply(input: Uint8Array, m: Mutation): Uint8Array {
  const n = input.length;
  const at = n === 0 ? 0 : m.pos % (n + (m.op === 'insert' || m.op === 'truncate' ? 1 : 0));
  switch (m.op) {
    case 'flip':
      if (n === 0) return input;
      input[at] = input[at]! ^ (1 << m.bit);
      return input;
    case 'set':
      if (n === 0) return input;
      input[at] = m.value;
      return input;
    case 'truncate':
      return input.slice(0, at);
    case 'insert':
      return concat(input.subarray(0, at), m.bytes, input.subarray(at));
    case 'delete':
      return concat(input.subarray(0, at), input.subarray(at + m.length));
    case 'duplicate':
      return concat(input.subarray(0, at + m.length), input.subarray(at));
    case 'u32': {
      if (n < 4) return input;
      const p = at % (n - 3);
      new DataView(input.buffer, input.byteOffset, input.byteLength).setUint32(p, m.value, !m.bigEndian);
      return input;
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A seed changed by 1 to 8 mutations (a fresh copy: the seed itself is never changed). */
export function mutatedBytes(seeds: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.record({ seed: fc.nat({ max: seeds.length - 1 }), ops: fc.array(mutation, { minLength: 1, maxLength: 8 }) }).map(({ seed, ops }) => {
    let bytes: Uint8Array = seeds[seed]!.slice();
    for (const m of ops) bytes = apply(bytes, m);
    return bytes;
  });
}

/** JSON values that stress a decoder: boundary numbers, wrong types, long and nested values. */
export const hostileJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(null, true, false, 0, -0, -1, 0.5, 1e300, -1e300, 2 ** 32, 2 ** 53, 2 ** 31 - 1, Number.MAX_SAFE_INTEGER + 2, '', '__proto__', 'NaN', [], {}),
  fc.jsonValue({ maxDepth: 3 }),
  fc.array(fc.nat({ max: 0xffffffff }), { maxLength: 6 }),
  fc.nat({ max: 64 }).map((depth) => {
    let v: unknown = 1;
    for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { a: v };
    return v;
  }),
);

/** Every path to a value inside a JSON value (the root is []). */
function paths(value: unknown, prefix: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => paths(v, [...prefix, i], out));
  else if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) paths(v, [...prefix, k], out);
  return out;
}

/**
 * A JSON value changed by 1 to 4 edits: a value at a random path replaced by a hostile one, or
 * removed (an object's key deleted, an array's element cut), or a new key added.
 */
export function mutatedJson(seeds: readonly unknown[]): fc.Arbitrary<{ seed: number; value: unknown }> {
  const edit = fc.record({ at: fc.nat(), kind: fc.constantFrom('replace', 'replace', 'remove', 'add'), value: hostileJson, key: fc.constantFrom('x', 'size', 'length', 'kind', '__proto__', 'constructor') });
  return fc.record({ seed: fc.nat({ max: seeds.length - 1 }), edits: fc.array(edit, { minLength: 1, maxLength: 4 }) }).map(({ seed, edits }) => {
    let root = structuredClone(seeds[seed]);
    for (const e of edits) {
      const all = paths(root);
      const path = all[e.at % all.length]!;
      if (path.length === 0) {
        if (e.kind === 'replace') root = e.value;
        continue;
      }
      let parent = root as Record<string | number, unknown>;
      for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
      const last = path[path.length - 1]!;
      if (e.kind === 'replace') parent[last] = e.value;
      else if (e.kind === 'remove') {
        if (Array.isArray(parent)) parent.splice(last as number, 1);
        else delete parent[last];
      } else if (!Array.isArray(parent)) Object.defineProperty(parent, e.key, { value: e.value, enumerable: true, configurable: true, writable: true });
    }
    return { seed, value: root };
  });
}

/** Random bytes, up to 4 KiB, some starting with a format's magic bytes. */
export function randomBytes(magics: readonly Uint8Array[] = []): fc.Arbitrary<Uint8Array> {
  const plain = fc.uint8Array({ maxLength: 4096 });
  if (magics.length === 0) return plain;
  return fc.oneof(plain, fc.tuple(fc.constantFrom(...magics), plain).map(([m, rest]) => concat(m, rest)));
}
