import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  bfloat16BitsToFloat32,
  float16ArrayToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../../src/numeric/float16.js';

describe('float16', () => {
  it('decodes the landmark bit patterns to their values', () => {
    expect(float16BitsToFloat32(0x0000)).toBe(0);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0xc000)).toBe(-2);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x03ff)).toBe(1023 * 2 ** -24);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
  });

  it('round-trips every non-NaN bit pattern exactly', () => {
    const mismatches: number[] = [];
    for (let bits = 0; bits < 65536; bits++) {
      const isNaN = (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;
      if (!isNaN && float32ToFloat16Bits(float16BitsToFloat32(bits)) !== bits) mismatches.push(bits);
    }
    expect(mismatches).toEqual([]);
  });

  it('keeps NaN a NaN', () => {
    for (const bits of [0x7c01, 0x7e00, 0xfe00, 0x7fff]) {
      const back = float32ToFloat16Bits(float16BitsToFloat32(bits));
      expect(Number.isNaN(float16BitsToFloat32(back))).toBe(true);
    }
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN)))).toBe(true);
  });

  it('rounds halfway cases to even, in the normal and subnormal ranges', () => {
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties go to the even mantissa (1).
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00);
    // 1 + 3 * 2^-11 is halfway between 1 + 2^-10 (odd) and 1 + 2^-9 (even).
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(float32ToFloat16Bits(1 + 2 ** -11 + 2 ** -20)).toBe(0x3c01);
    // 2^-25 is half the smallest subnormal: ties to zero; anything above rounds up.
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000);
    expect(float32ToFloat16Bits(2 ** -25 * 1.5)).toBe(0x0001);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002);
    expect(float32ToFloat16Bits(-(2 ** -30))).toBe(0x8000);
  });

  it('overflows to infinity past the largest finite value and rounds up into the normal range', () => {
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00);
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400);
  });

  it('matches rounding of the nearest representable value for random inputs', () => {
    fc.assert(
      fc.property(fc.float({ min: -65000, max: 65000, noNaN: true }), (x) => {
        const decoded = float16BitsToFloat32(float32ToFloat16Bits(x));
        // Nearest rounding: no other float16 neighbour is strictly closer.
        const bits = float32ToFloat16Bits(decoded);
        const sign = bits & 0x8000;
        const magnitude = bits & 0x7fff;
        const up = float16BitsToFloat32(sign | (magnitude + 1));
        const down = float16BitsToFloat32(magnitude > 0 ? sign | (magnitude - 1) : (sign ^ 0x8000) | 1);
        const error = Math.abs(decoded - x);
        return error <= Math.abs(up - x) && error <= Math.abs(down - x);
      }),
    );
  });

  it('decodes whole arrays with the same values as the scalar conversion', () => {
    const bits = new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00]);
    expect(Array.from(float16ArrayToFloat32(bits))).toEqual([1, -2, 2 ** -24, Infinity]);
  });
});

describe('bfloat16', () => {
  it('round-trips every non-NaN bit pattern exactly', () => {
    const mismatches: number[] = [];
    for (let bits = 0; bits < 65536; bits++) {
      const isNaN = (bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0;
      if (!isNaN && float32ToBfloat16Bits(bfloat16BitsToFloat32(bits)) !== bits) mismatches.push(bits);
    }
    expect(mismatches).toEqual([]);
  });

  it('rounds to nearest with ties to even and keeps NaN quiet', () => {
    expect(bfloat16BitsToFloat32(0x3f80)).toBe(1);
    expect(float32ToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(float32ToBfloat16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81);
    expect(float32ToBfloat16Bits(3.4e38)).toBe(0x7f80);
    expect(Number.isNaN(bfloat16BitsToFloat32(float32ToBfloat16Bits(NaN)))).toBe(true);
  });
});
