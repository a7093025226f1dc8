// protobufjs hands 64-bit integers over as Long objects (or numbers); the IR uses bigint.

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}

/** A protobuf int64 field as bigint, whatever form protobufjs chose. */
export function toBigInt(x: number | LongLike | null | undefined): bigint {
  if (x === null || x === undefined) return 0n;
  if (typeof x === 'number') return BigInt(x);
  const combined = (BigInt(x.high >>> 0) << 32n) | BigInt(x.low >>> 0);
  return x.unsigned ? combined : BigInt.asIntN(64, combined);
}

/** A protobuf int64 field as a number (exact up to 2^53). */
export function toNumber(x: number | LongLike | null | undefined): number {
  return typeof x === 'number' ? x : Number(toBigInt(x));
}

/** A bigint as the value protobufjs encodes for an int64 field, without losing bits. */
export function fromBigInt(x: bigint): number | LongLike {
  if (x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(x);
  const u = BigInt.asUintN(64, x);
  return { low: Number(u & 0xffffffffn) | 0, high: Number(u >> 32n) | 0, unsigned: false };
}
