// The condensation papers' pictures of one layer, as figures: the cosine heatmaps of input weights
// and of outputs with neurons ordered by cluster, the cluster sizes, and (for inputs of one or two
// dimensions) the feature map, orientation angle of u_k against amplitude A_k.

import { inputWeightVectors } from '../analysis/input-weights.js';
import type { Clusters, LayerCondensation } from '../analysis/measure-condensation.js';
import { clusterColor, STATIC_GREY } from './color-scale.js';
import type { BarChartFigure, HeatmapFigure, ScatterFigure } from './figure.js';
import { orderNeuronsByCluster, permuteMatrix, type NeuronOrder } from './neuron-order.js';

export interface LayerFigures {
  weightHeatmap: HeatmapFigure;
  /** Present when the audit ran probe data. */
  outputHeatmap?: HeatmapFigure;
  clusterSizes: BarChartFigure;
  /** Present when u_k has 2 or 3 entries (a 1-D or 2-D input, with or without bias). */
  featureMap?: ScatterFigure;
}

function heatmap(title: string, cosine: Float64Array, order: NeuronOrder): HeatmapFigure {
  return {
    kind: 'heatmap',
    title,
    values: permuteMatrix(cosine, order.order),
    size: order.order.length,
    groups: order.groups.map((g) => ({ start: g.start, size: g.size, color: clusterColor(g.rank) })),
    axisLabel: 'neurons, ordered by cluster',
  };
}

function order(m: LayerCondensation, clusters: Clusters, cosine: Float64Array): NeuronOrder {
  return orderNeuronsByCluster(clusters.labels, m.amplitude, cosine);
}

/**
 * Orientation angle of each neuron's input weights in degrees: atan2(u[1], u[0]). For a 1-D input
 * with bias, u = (w, b); for a 2-D input, the direction of (w1, w2) (the bias, if any, is not shown).
 */
export function orientationAngles(rows: Float64Array, width: number, dim: number): Float64Array {
  const angles = new Float64Array(width);
  for (let k = 0; k < width; k++) angles[k] = (Math.atan2(rows[k * dim + 1]!, rows[k * dim]!) * 180) / Math.PI;
  return angles;
}

/** The layer's figures, colours matching across them (cluster rank by the input-weight clusters). */
export function layerFigures(m: LayerCondensation): LayerFigures {
  const name = m.layer.name;
  const weightOrder = order(m, m.weightClusters, m.weightCosine);
  const sign = m.usesAbsoluteCosine ? ' (odd activation: clusters by |cos|)' : '';
  const figures: LayerFigures = {
    weightHeatmap: heatmap(`${name}: input-weight cosine${sign}`, m.weightCosine, weightOrder),
    clusterSizes: {
      kind: 'bars',
      title: `${name}: cluster sizes (${m.weightClusters.count} cluster${m.weightClusters.count === 1 ? '' : 's'}, ${m.staticNeurons.length} static)`,
      xLabel: 'cluster, largest first',
      yLabel: 'neurons',
      bars: [
        ...weightOrder.groups.filter((g) => g.rank >= 0).map((g) => ({ label: String(g.rank + 1), value: g.size, color: clusterColor(g.rank) })),
        ...(m.staticNeurons.length ? [{ label: 'static', value: m.staticNeurons.length, color: STATIC_GREY }] : []),
      ],
    },
  };
  if (m.outputCosine && m.outputClusters) {
    figures.outputHeatmap = heatmap(`${name}: output cosine${sign}`, m.outputCosine, order(m, m.outputClusters, m.outputCosine));
  }
  const { rows, dim } = inputWeightVectors(m.layer);
  if (dim === 2 || dim === 3) {
    const angles = orientationAngles(rows, m.width, dim);
    const rank = weightOrder.rankOf;
    const clusterLegend = weightOrder.groups.filter((g) => g.rank >= 0).slice(0, 6).map((g) => ({ label: `cluster ${g.rank + 1}`, color: clusterColor(g.rank) }));
    figures.featureMap = {
      kind: 'scatter',
      title: `${name}: feature map`,
      xLabel: dim === 2 ? 'orientation angle of u = (w, b), degrees' : 'orientation angle of (w1, w2), degrees',
      yLabel: m.outgoingWeightNorms ? 'amplitude |u| |a|' : 'amplitude |u|',
      xRange: [-180, 180],
      xTicks: [-180, -90, 0, 90, 180],
      points: Array.from(angles, (x, k) => ({ x, y: m.amplitude[k]!, color: clusterColor(rank[k]!), isMuted: rank[k]! < 0 })),
      legend: [...clusterLegend, ...(m.staticNeurons.length ? [{ label: 'static', color: STATIC_GREY }] : [])],
    };
  }
  return figures;
}
