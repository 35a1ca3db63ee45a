import { useEffect, useRef, useState } from "react";
import { ORDER, drawAdjusted } from "../adjust.js";
import { DownloadLink } from "./controls.jsx";

const factorsKey = (factors) => ORDER.map((name) => `${name}=${Number(factors[name])}`).join(" ");

/**
 * The image as the server made it, shown on a canvas with the colour factors applied in the
 * browser (the server's math, frontend/src/adjust.js): moving a slider redraws at once, no new
 * generation. Save writes the canvas, so the file is what is shown. Factors outside [min, max]
 * keep the last drawing (the field shows its own error).
 */
export function AdjustedImage({ blob, factors, limits, label, filename }) {
  const canvas = useRef(null);
  const [bitmap, setBitmap] = useState(null);
  const [shown, setShown] = useState(null); // { blob, key } of what the canvas holds
  useEffect(() => {
    let live = true;
    createImageBitmap(blob).then((made) => live && setBitmap(made));
    return () => {
      live = false;
    };
  }, [blob]);

  const valid = ORDER.every((name) => {
    const value = Number(factors[name]);
    return factors[name] !== "" && Number.isFinite(value) && value >= limits[name].min && value <= limits[name].max;
  });
  const key = factorsKey(factors);
  useEffect(() => {
    if (!bitmap || !valid || !canvas.current) return;
    drawAdjusted(canvas.current, bitmap, factors);
    let live = true;
    canvas.current.toBlob((png) => live && setShown({ blob: png, key }), "image/png");
    return () => {
      live = false;
    };
    // `key` stands for the three factors.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [bitmap, key, valid]);

  return (
    <>
      <canvas ref={canvas} role="img" aria-label={label} data-adjusted={shown?.key}
        className="mx-auto max-h-[28rem] w-full rounded bg-slate-100 object-contain" />
      {shown && (
        <span data-saved-factors={shown.key} className="inline-block">
          <DownloadLink blob={shown.blob} filename={filename}>Save image</DownloadLink>
        </span>
      )}
    </>
  );
}
