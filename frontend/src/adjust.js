// Colour adjustment on canvas pixels with exactly the server's math (imagelab/diffusion/adjust.py,
// which is Pillow's ImageEnhance): brightness, then contrast, then saturation, each a blend
// `degenerate + factor * (image - degenerate)` computed in 32-bit float and truncated to a byte,
// as Pillow's ImagingBlend does (clipped to [0, 255] first when the factor is outside [0, 1]).
//   brightness: degenerate is black
//   contrast:   degenerate is flat grey at the rounded mean luma of the image
//   saturation: degenerate is the image's own luma (greyscale)
// Luma is Pillow's RGB -> L: (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (ITU-R 601-2).
// tests/frontend/test_e2e.py compares the browser's pixels with the server's function.

export const ORDER = ["brightness", "contrast", "saturation"];

const f32 = Math.fround;
const luma = (r, g, b) => (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;

/** One blend channel value: Pillow's (UINT8)(in1 + alpha * (in2 - in1)), clipped outside [0, 1]. */
function blendByte(degenerate, value, factor, extrapolate) {
  const t = f32(degenerate + f32(factor * (value - degenerate)));
  if (extrapolate) {
    if (t <= 0) return 0;
    if (t >= 255) return 255;
  }
  return Math.trunc(t);
}

function blendAll(data, factor, degenerateOf) {
  const k = f32(factor);
  const extrapolate = !(k >= 0 && k <= 1);
  for (let i = 0; i < data.length; i += 4) {
    const [dr, dg, db] = degenerateOf(data[i], data[i + 1], data[i + 2]);
    data[i] = blendByte(dr, data[i], k, extrapolate);
    data[i + 1] = blendByte(dg, data[i + 1], k, extrapolate);
    data[i + 2] = blendByte(db, data[i + 2], k, extrapolate);
  }
}

function meanLuma(data) {
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += luma(data[i], data[i + 1], data[i + 2]);
  return Math.trunc(sum / (data.length / 4) + 0.5);
}

/**
 * Adjusts RGBA pixels (an ImageData's `data`) in place; alpha is left as it is.
 * `factors` holds brightness, contrast and saturation, each in [0, 3]; 1 skips that step.
 */
export function adjustPixels(data, factors) {
  for (const name of ORDER) {
    const factor = Number(factors[name] ?? 1);
    if (factor === 1) continue; // skipped on the server too
    if (name === "brightness") blendAll(data, factor, () => [0, 0, 0]);
    else if (name === "contrast") {
      const mean = meanLuma(data);
      blendAll(data, factor, () => [mean, mean, mean]);
    } else {
      blendAll(data, factor, (r, g, b) => {
        const l = luma(r, g, b);
        return [l, l, l];
      });
    }
  }
  return data;
}

/** Draws `bitmap` (the image as the server made it) adjusted onto `canvas`. */
export function drawAdjusted(canvas, bitmap, factors) {
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const pixels = context.getImageData(0, 0, bitmap.width, bitmap.height);
  adjustPixels(pixels.data, factors);
  context.putImageData(pixels, 0, 0);
}
