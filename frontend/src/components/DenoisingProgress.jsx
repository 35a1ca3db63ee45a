import { fieldError, JobButtons, ProgressBar } from "./controls.jsx";
import { LivePreview, LivePreviewToggle } from "./LivePreview.jsx";

/**
 * The foot of a diffusion page's form: Generate and Cancel for its job (from useJob), the
 * "Live preview" checkbox where the model takes `preview`, and the denoising progress bar with
 * the latest preview beside it. A fragment, so its parts stay direct children of the form.
 */
export function DenoisingProgress({ job, fields, values, set, error }) {
  return (
    <>
      <JobButtons job={job} idle="Generate" busy="Generating…" />
      <LivePreviewToggle fields={fields} value={values.preview} onChange={set("preview")} error={fieldError(error, "preview")} />
      <div className="flex items-center gap-3">
        <div aria-live="polite" className="min-w-0 flex-1">
          <ProgressBar progress={job.progress} label="Denoising" />
        </div>
        <LivePreview progress={job.progress} busy={job.busy} />
      </div>
    </>
  );
}
