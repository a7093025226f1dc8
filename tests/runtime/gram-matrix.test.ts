// The runtime's Gram matrix against plain dot products, in one block and as an upper triangle of
// uneven blocks mirrored into the lower one.

import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/numeric/seeded-random.js';
import { encodeModel } from '../../src/onnx/encode-model.js';
import { cosineMatrix } from '../../src/numeric/cosine.js';
import { cosineMatrixOnRuntime, gramMatrix } from '../../src/runtime/gram-matrix.js';

const encode = (model: Parameters<typeof encodeModel>[0]): Uint8Array => encodeModel(model).modelBytes;

describe('gramMatrix', () => {
  it('computes every dot product of the rows in float64, whatever the blocks', async () => {
    const random = new SeededRandom(4);
    const n = 37;
    const dim = 5;
    const rows = Float64Array.from({ length: n * dim }, () => random.gaussian() * 1e3);
    for (const blockRows of [undefined, 8, 1]) {
      const gram = await gramMatrix(rows, n, dim, encode, blockRows ? { blockRows } : {});
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let k = 0; k < dim; k++) dot += rows[i * dim + k]! * rows[j * dim + k]!;
          expect(gram[i * n + j]).toBeCloseTo(dot, 6);
        }
      }
    }
  });

  it('gives the cosines cosineMatrix gives, zero rows and exact copies included, in float64 or float32', async () => {
    const random = new SeededRandom(5);
    const n = 30;
    const dim = 7;
    const rows = Float64Array.from({ length: n * dim }, () => random.gaussian());
    rows.fill(0, 3 * dim, 4 * dim);
    rows.copyWithin(5 * dim, 6 * dim, 7 * dim);
    const expected = cosineMatrix(rows, n, dim);
    for (const [precision, digits] of [['float64', 12], ['float32', 6]] as const) {
      const cosine = await cosineMatrixOnRuntime(rows, n, dim, encode, { precision, blockRows: 9 });
      for (let k = 0; k < expected.length; k++) expect(cosine[k]).toBeCloseTo(expected[k]!, digits);
      expect(cosine[3 * n + 4]).toBe(0);
      expect(cosine[3 * n + 3]).toBe(1);
    }
  });

  it('handles no rows and refuses a matrix of the wrong size', async () => {
    expect(await gramMatrix(new Float64Array(0), 0, 3, encode)).toEqual(new Float64Array(0));
    await expect(gramMatrix(new Float64Array(5), 2, 3, encode)).rejects.toThrow(RangeError);
  });
});
