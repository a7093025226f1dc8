// Half-precision conversions: IEEE float16 and bfloat16 bit patterns to and from numbers.
// numeric/ owns typed-array math with no IR; it imports nothing of ours.

// One scratch word shared by every conversion: reinterpreting bits through a typed-array view is
// far cheaper than arithmetic with Math.pow and avoids allocating per call.
const scratchFloat = new Float32Array(1);
const scratchBits = new Uint32Array(scratchFloat.buffer);

// All 65536 float16 values, so decoding is one table read (256 KiB, built once at import).
const float16Table = buildFloat16Table();

function buildFloat16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = (bits & 0x8000) << 16;
    const exponent = (bits >>> 10) & 0x1f;
    const mantissa = bits & 0x3ff;
    let word: number;
    if (exponent === 0x1f) {
      word = sign | 0x7f800000 | (mantissa << 13);
    } else if (exponent !== 0) {
      word = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa === 0) {
      word = sign;
    } else {
      // A float16 subnormal is a normal float32: shift the leading one into the hidden bit.
      let shift = 0;
      let m = mantissa;
      while ((m & 0x400) === 0) {
        m <<= 1;
        shift++;
      }
      word = sign | ((113 - shift) << 23) | ((m & 0x3ff) << 13);
    }
    scratchBits[0] = word >>> 0;
    table[bits] = scratchFloat[0]!;
  }
  return table;
}

/** Returns the value of an IEEE 754 binary16 bit pattern (the low 16 bits of `bits`). */
export function float16BitsToFloat32(bits: number): number {
  return float16Table[bits & 0xffff]!;
}

/**
 * Returns the binary16 bit pattern nearest to `x` after rounding `x` to float32, ties to even;
 * overflow gives infinity, NaN stays NaN (quiet), tiny values become subnormals or signed zero.
 */
export function float32ToFloat16Bits(x: number): number {
  scratchFloat[0] = x;
  const word = scratchBits[0]!;
  const sign = (word >>> 16) & 0x8000;
  const exponent = (word >>> 23) & 0xff;
  let mantissa = word & 0x7fffff;
  if (exponent === 0xff) {
    // Keep the quiet bit set so a NaN never turns into infinity when its payload is cut.
    return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00 | (mantissa >>> 13);
  }
  const halfExponent = exponent - 112;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    let half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    // A carry out of the subnormal range lands exactly on the smallest normal, as it should.
    return sign | half;
  }
  let half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  // A carry out of the mantissa bumps the exponent, up to infinity: that is correct rounding.
  return sign | half;
}

/** Decodes a whole array of binary16 bit patterns into float32 values. */
export function float16ArrayToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = float16Table[bits[i]!]!;
  return out;
}

/** Returns the value of a bfloat16 bit pattern (the low 16 bits of `bits`). */
export function bfloat16BitsToFloat32(bits: number): number {
  scratchBits[0] = (bits & 0xffff) << 16;
  return scratchFloat[0]!;
}

/** Returns the bfloat16 bit pattern nearest to `x` after rounding `x` to float32, ties to even. */
export function float32ToBfloat16Bits(x: number): number {
  scratchFloat[0] = x;
  const word = scratchBits[0]!;
  if ((word & 0x7f800000) === 0x7f800000 && (word & 0x7fffff) !== 0) {
    return ((word >>> 16) | 0x40) & 0xffff;
  }
  // Adding 0x7fff plus the kept lowest bit rounds to nearest with ties to even; carries into the
  // exponent (and up to infinity) are the correct result.
  return ((word + 0x7fff + ((word >>> 16) & 1)) >>> 16) & 0xffff;
}
