/**
 * SVG to PNG with resvg, with the fonts named explicitly. resvg draws no text at all when it finds no
 * font, and a chart without axis titles or legend still looks like a chart, so before trusting a font
 * setup we render a word and check that ink appeared.
 */
import * as fs from 'node:fs';
import { Resvg, type ResvgRenderOptions } from '@resvg/resvg-js';

/** A font family and the files that hold its faces. */
export interface FontSet {
  /** Family name as the font files declare it, e.g. `DejaVu Sans`. */
  family?: string;
  /** Font files handed to resvg. */
  files: string[];
  /** Let resvg scan the system font folders as well (slower; only when no known font was found). */
  loadSystemFonts: boolean;
}

// Regular face first: its presence decides whether the family is usable. Bold is for chart titles.
// fonts-dejavu-core (Debian/Ubuntu) comes first because `make` installs it.
const KNOWN_FONTS: ReadonlyArray<{ family: string; files: readonly string[] }> = [
  { family: 'DejaVu Sans', files: ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf'] },
  { family: 'DejaVu Sans', files: ['/usr/share/fonts/dejavu/DejaVuSans.ttf', '/usr/share/fonts/dejavu/DejaVuSans-Bold.ttf'] },
  { family: 'DejaVu Sans', files: ['/usr/share/fonts/TTF/DejaVuSans.ttf', '/usr/share/fonts/TTF/DejaVuSans-Bold.ttf'] },
  { family: 'Liberation Sans', files: ['/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf', '/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf'] },
  { family: 'Noto Sans', files: ['/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf', '/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf'] },
  { family: 'Arial', files: ['/System/Library/Fonts/Supplemental/Arial.ttf', '/System/Library/Fonts/Supplemental/Arial Bold.ttf'] },
];

/**
 * The first known sans-serif family whose regular face exists on this machine; when there is none,
 * an empty set that asks resvg to scan the system folders (which may or may not yield text).
 */
export function findFonts(): FontSet {
  for (const known of KNOWN_FONTS) {
    if (!fs.existsSync(known.files[0])) continue;
    return { family: known.family, files: known.files.filter((f) => fs.existsSync(f)), loadSystemFonts: false };
  }
  return { files: [], loadSystemFonts: true };
}

/** resvg options that render the SVG at `pixelRatio` times its own size with `fonts`. */
export function resvgOptions(fonts: FontSet, pixelRatio: number): ResvgRenderOptions {
  return {
    font: {
      fontFiles: fonts.files,
      loadSystemFonts: fonts.loadSystemFonts,
      // Vega writes font-family="sans-serif"; resvg maps that generic name to this family.
      ...(fonts.family ? { defaultFontFamily: fonts.family, sansSerifFamily: fonts.family } : {}),
    },
    fitTo: { mode: 'zoom', value: pixelRatio },
    background: 'white',
    logLevel: 'off',
  };
}

const PROBE_SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="60" height="24">'
  + '<text x="2" y="18" font-family="sans-serif" font-size="16">Ag</text></svg>';
const textCheckCache = new Map<string, boolean>();

/** Whether resvg draws text with these fonts: renders a word on transparency and looks for ink. */
export function rendersText(fonts: FontSet): boolean {
  const key = JSON.stringify(fonts);
  const cached = textCheckCache.get(key);
  if (cached !== undefined) return cached;
  const options = resvgOptions(fonts, 1);
  delete options.background;
  const pixels = new Resvg(PROBE_SVG, options).render().pixels;
  let ink = false;
  // RGBA: any pixel with non-zero alpha is a glyph, since the probe draws nothing else.
  for (let i = 3; i < pixels.length && !ink; i += 4) ink = pixels[i] !== 0;
  textCheckCache.set(key, ink);
  return ink;
}

/** A rendered PNG and its size in pixels. */
export interface PngImage {
  png: Buffer;
  width: number;
  height: number;
}

/** Rasterises an SVG document at `pixelRatio` times its declared size. */
export function svgToPng(svg: string, fonts: FontSet, pixelRatio: number): PngImage {
  const image = new Resvg(svg, resvgOptions(fonts, pixelRatio)).render();
  return { png: image.asPng(), width: image.width, height: image.height };
}
