import { useEffect, useState } from "react";
import { CheckboxField } from "./controls.jsx";

// Only these become a data: URL; anything else a stream might say is not shown.
const MIME = { jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };

/** The "Live preview" checkbox (the request's `preview` field), where the model takes it. */
export function LivePreviewToggle({ fields, value, onChange, error }) {
  if (!fields.preview) return null;
  return <CheckboxField name="preview" label="Live preview" value={value} onChange={onChange} error={error} />;
}

/**
 * The latest preview of a running job, beside its progress bar. With `preview: true` every few
 * progress events carry one ({image: base64, format, width, height}, at most 128 px a side);
 * the ones between carry none, so the last one seen stays up until the next arrives. A new job
 * (progress back to null) clears it, and it goes when the job ends and the result shows.
 */
export function LivePreview({ progress, busy }) {
  const [latest, setLatest] = useState(null);
  useEffect(() => {
    if (!progress) setLatest(null);
    else if (progress.preview && MIME[progress.preview.format]) {
      setLatest({ ...progress.preview, step: progress.step, of: progress.of });
    }
  }, [progress]);
  if (!busy || !latest) return null;
  const { format, image, width, height, step, of } = latest;
  return (
    <img src={`data:${MIME[format]};base64,${image}`} width={width} height={height} data-testid="live-preview" data-step={step}
      alt={`Live preview at step ${step} of ${of}`} title={`Step ${step} of ${of}`}
      className="h-auto max-h-32 w-auto max-w-32 shrink-0 rounded border border-slate-200 bg-slate-100" />
  );
}
