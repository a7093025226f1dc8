// PNG files are the SVG figures rasterised by resvg (@resvg/resvg-js: a prebuilt native package
// per platform from the npm registry, nothing downloaded or compiled at install). Text stays
// real text in a real font (DejaVu Sans, loaded from dejavu-fonts-ttf, never from the system, so
// the same figure gives the same pixels on every machine). The only importer of resvg.

import { Resvg } from '@resvg/resvg-js';
import { fontFiles, PNG_FONT_FAMILY } from './font-metrics.js';

/** PNG bytes of an SVG document, at its own size times `zoom`. */
export function rasteriseSvg(svg: string, zoom = 1): Buffer {
  const files = fontFiles();
  const resvg = new Resvg(svg, {
    font: { fontFiles: [files.regular, files.bold], loadSystemFonts: false, defaultFontFamily: PNG_FONT_FAMILY, sansSerifFamily: PNG_FONT_FAMILY },
    fitTo: zoom === 1 ? { mode: 'original' } : { mode: 'zoom', value: zoom },
    background: '#ffffff',
  });
  return resvg.render().asPng();
}
