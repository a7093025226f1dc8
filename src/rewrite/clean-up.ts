// Clean-up passes after a rewrite: drop initializers and Constant nodes nothing reads, and restore
// topological order. Each pass reports whether it changed the graph.

import type { Graph } from '../ir/graph.js';
import type { Model } from '../ir/model.js';

export interface PassResult {
  pass: string;
  changed: boolean;
}

/** Removes Constant nodes whose output nothing reads (repeatedly, as removal frees others). */
export function removeUnusedConstants(graph: Graph): boolean {
  const dead = graph.nodes.filter((n) => n.is('Constant') && n.outputs.every((o) => o.useCount === 0 && !o.isGraphOutput));
  if (dead.length) graph.removeNodes(dead);
  return dead.length > 0;
}

/** Runs the clean-up passes on the main graph; an error names the pass and those before it. */
export function cleanUp(model: Model): PassResult[] {
  const passes: [string, (g: Graph) => boolean][] = [
    ['remove-unused-constants', removeUnusedConstants],
    ['remove-unused-initializers', (g) => g.removeUnusedInitializers()],
    ['topological-sort', (g) => g.topologicalSort()],
  ];
  const results: PassResult[] = [];
  for (const [name, run] of passes) {
    try {
      results.push({ pass: name, changed: run(model.graph) });
    } catch (cause) {
      const before = results.map((r) => r.pass).join(', ') || 'none';
      throw new Error(`pass ${name} failed (passes run before it: ${before}): ${(cause as Error).message}`, { cause });
    }
  }
  return results;
}
