// What a model's statistics cover, found the same way wherever statistics are collected (audit
// and prune in process, --workers threads, `condense collect` shards): the layers, with attention
// projections marked as head blocks before the dependency groups are found, then the group
// tensors that consumers read (groupWatchLayers), whose moments approximate group merges, budget
// candidates and residual-stream merges refit on.

import { findAttention, markAttentionLayers, type AttentionBlock } from '../analysis/attention.js';
import { findChannelGroups, groupWatchLayers, type DependencyGroup } from '../analysis/channel-groups.js';
import { findLayers, type NeuronLayer } from '../analysis/find-layers.js';
import type { Model } from '../ir/model.js';

export interface WatchedLayers {
  layers: NeuronLayer[];
  attention: AttentionBlock[];
  groups: DependencyGroup[];
  /** layers, then one entry per group tensor read (its name is groupStatisticsKey). */
  watched: NeuronLayer[];
}

/** On a BatchNorm-folded, dequantized model (as measureModel prepares it). */
export function findWatchedLayers(folded: Model): WatchedLayers {
  const layers = findLayers(folded);
  const attention = findAttention(folded, layers);
  markAttentionLayers(attention);
  const groups = findChannelGroups(layers);
  return { layers, attention, groups, watched: [...layers, ...groupWatchLayers(groups)] };
}
