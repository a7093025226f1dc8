// How deeply subgraphs nest in serialized ModelProto bytes, read from the wire format with an
// explicit stack before protobufjs sees them: its decoder recurses once per message level, so a
// file with thousands of nested If branches would overflow the call stack instead of being refused.

/** Subgraphs nested deeper than this are refused (real models nest a handful of levels). */
export const MAX_SUBGRAPH_DEPTH = 64;

// Which length-delimited fields hold messages that can lead to a subgraph, per message kind.
type Kind = 'model' | 'graph' | 'node' | 'attribute' | 'function';
const CHILDREN: Record<Kind, Record<number, Kind>> = {
  model: { 7: 'graph', 25: 'function' },
  graph: { 1: 'node' },
  node: { 5: 'attribute' },
  attribute: { 6: 'graph', 11: 'graph' },
  function: { 7: 'node' },
};

/**
 * The deepest nesting of graphs (the main graph is 1), stopping as soon as it passes `limit`.
 * Malformed bytes end the scan of their message quietly: protobufjs reports them afterwards.
 */
export function subgraphDepth(bytes: Uint8Array, limit = MAX_SUBGRAPH_DEPTH): number {
  const stack: { kind: Kind; at: number; end: number; depth: number }[] = [{ kind: 'model', at: 0, end: bytes.length, depth: 0 }];
  let deepest = 0;
  const varint = (frame: { at: number; end: number }): number | undefined => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (frame.at >= frame.end) return undefined;
      const b = bytes[frame.at++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    return undefined;
  };
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]!;
    if (frame.at >= frame.end) {
      stack.pop();
      continue;
    }
    const tag = varint(frame);
    if (tag === undefined) {
      stack.pop();
      continue;
    }
    const wire = tag % 8;
    const number = Math.floor(tag / 8);
    let skip: number | undefined;
    if (wire === 0) skip = varint(frame) === undefined ? undefined : 0;
    else if (wire === 1) skip = 8;
    else if (wire === 5) skip = 4;
    else if (wire === 2) {
      const length = varint(frame);
      if (length !== undefined && frame.at + length <= frame.end) {
        const child = CHILDREN[frame.kind][number];
        if (child) {
          const depth = frame.depth + (child === 'graph' ? 1 : 0);
          deepest = Math.max(deepest, depth);
          if (deepest > limit) return deepest;
          stack.push({ kind: child, at: frame.at, end: frame.at + length, depth });
        }
        frame.at += length;
        continue;
      }
    }
    if (skip === undefined || frame.at + skip > frame.end) {
      stack.pop();
      continue;
    }
    frame.at += skip;
  }
  return deepest;
}
