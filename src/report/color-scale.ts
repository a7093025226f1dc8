// Colours of the pictures: the diverging scale of the condensation papers' cosine heatmaps
// (-1 blue, 0 white, +1 red) and a categorical palette for clusters, static neurons in grey.

/** An sRGB colour, each channel 0..255. */
export type Rgb = readonly [number, number, number];

export const WHITE: Rgb = [255, 255, 255];
export const BLACK: Rgb = [0, 0, 0];
export const INK: Rgb = [34, 34, 34];
export const AXIS_GREY: Rgb = [120, 120, 120];
export const GRID_GREY: Rgb = [225, 225, 225];
/** Static neurons (negligible amplitude) are drawn in this grey everywhere. */
export const STATIC_GREY: Rgb = [170, 170, 170];
/** Cells whose value is not a number (a zero vector's cosine, say). */
export const MISSING: Rgb = [235, 235, 235];

/**
 * Maps a value in [-1, 1] to blue-white-red, linear in each half (the "bwr" map of the papers'
 * figures): -1 is pure blue, 0 white, +1 pure red. Values outside are clamped.
 */
export function divergingColor(value: number): Rgb {
  if (Number.isNaN(value)) return MISSING;
  const v = Math.max(-1, Math.min(1, value));
  const fade = Math.round(255 * (1 - Math.abs(v)));
  return v >= 0 ? [255, fade, fade] : [fade, fade, 255];
}

// Tableau's ten colours without their grey, which is reserved for static neurons.
const PALETTE: Rgb[] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
  [140, 86, 75], [227, 119, 194], [188, 189, 34], [23, 190, 207],
];

/** Colour of the cluster with the given rank (0: the largest); -1 means static. */
export function clusterColor(rank: number): Rgb {
  return rank < 0 ? STATIC_GREY : PALETTE[rank % PALETTE.length]!;
}

/** `#rrggbb` for SVG and CSS. */
export function rgbHex(c: Rgb): string {
  return `#${c.map((x) => x.toString(16).padStart(2, '0')).join('')}`;
}
