import { useEffect, useId, useMemo, useState } from "react";
import { formatBytes, humanize, stepOf } from "../describe.js";

/** The server's message for this field, if its error names it. */
export const fieldError = (error, name) => (error?.field === name ? error.message : null);

export function FieldShell({ id, name, label, hint, error, children }) {
  return (
    <div className="space-y-1" data-field={name}>
      <label htmlFor={id} className="block text-sm font-medium text-slate-700">
        {label}
      </label>
      {children}
      {hint && (
        <p id={`${id}-hint`} className="text-xs text-slate-500">
          {hint}
        </p>
      )}
      {error && (
        <p id={`${id}-error`} className="text-sm font-medium text-red-700" data-field-error={name} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

function describedBy(id, hint, error) {
  return [hint && `${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ") || undefined;
}

export function NumberField({ name, spec, value, onChange, error, label = humanize(name), slider = false, hint }) {
  const id = `f-${name}`;
  const step = stepOf(spec);
  const range = `${spec.min} to ${spec.max}${spec.multiple_of ? `, a multiple of ${spec.multiple_of}` : ""}`;
  const fullHint = hint ?? range;
  return (
    <FieldShell id={id} name={name} label={label} hint={fullHint} error={error}>
      <div className="flex items-center gap-3">
        {slider && (
          <input
            type="range"
            aria-label={`${label} slider`}
            className="h-2 min-w-0 flex-1 cursor-pointer accent-indigo-600"
            min={spec.min}
            max={spec.max}
            step={step}
            value={value === "" ? spec.default ?? spec.min : value}
            onChange={(e) => onChange(e.target.value)}
          />
        )}
        <input
          id={id}
          name={name}
          type="number"
          inputMode={spec.type === "integer" ? "numeric" : "decimal"}
          className={`input ${slider ? "w-24 flex-none" : ""}`}
          min={spec.min}
          max={spec.max}
          step={step}
          value={value}
          aria-invalid={!!error}
          aria-describedby={describedBy(id, fullHint, error)}
          onChange={(e) => onChange(e.target.value)}
        />
      </div>
    </FieldShell>
  );
}

export function ChoiceField({ name, spec, value, onChange, error, label = humanize(name), optionLabel, hint }) {
  const id = `f-${name}`;
  return (
    <FieldShell id={id} name={name} label={label} hint={hint} error={error}>
      <select
        id={id}
        name={name}
        className="input"
        value={value}
        aria-invalid={!!error}
        aria-describedby={describedBy(id, hint, error)}
        onChange={(e) => onChange(e.target.value)}
      >
        {spec.choices.map((choice) => (
          <option key={choice} value={choice}>
            {optionLabel ? optionLabel(choice) : choice.replace(/_/g, " ")}
          </option>
        ))}
      </select>
    </FieldShell>
  );
}

export function TextField({ name, value, onChange, error, label = humanize(name), hint, multiline, placeholder }) {
  const id = `f-${name}`;
  const Tag = multiline ? "textarea" : "input";
  return (
    <FieldShell id={id} name={name} label={label} hint={hint} error={error}>
      <Tag
        id={id}
        name={name}
        className="input"
        rows={multiline ? 3 : undefined}
        value={value}
        placeholder={placeholder}
        aria-invalid={!!error}
        aria-describedby={describedBy(id, hint, error)}
        onChange={(e) => onChange(e.target.value)}
      />
    </FieldShell>
  );
}

export function CheckboxField({ name, value, onChange, error, label = humanize(name) }) {
  const id = `f-${name}`;
  return (
    <div data-field={name}>
      <label htmlFor={id} className="inline-flex items-center gap-2 text-sm font-medium text-slate-700">
        <input id={id} type="checkbox" className="h-4 w-4 accent-indigo-600" checked={!!value}
          aria-invalid={!!error} onChange={(e) => onChange(e.target.checked)} />
        {label}
      </label>
      {error && <p className="text-sm font-medium text-red-700" data-field-error={name} role="alert">{error}</p>}
    </div>
  );
}

/** Seed: empty lets the server choose (it reports the one it used); the dice picks one here. */
export function SeedField({ spec, value, onChange, error, usedSeed }) {
  const id = "f-seed";
  const hint = usedSeed !== undefined && usedSeed !== null ? `Last image used seed ${usedSeed}` : "Empty: a random seed";
  return (
    <FieldShell id={id} name="seed" label="Seed" hint={hint} error={error}>
      <div className="flex gap-2">
        <input
          id={id}
          name="seed"
          type="number"
          inputMode="numeric"
          className="input"
          min={spec.min}
          max={spec.max}
          step={1}
          placeholder="random"
          value={value}
          aria-invalid={!!error}
          aria-describedby={describedBy(id, hint, error)}
          onChange={(e) => onChange(e.target.value)}
        />
        <button
          type="button"
          className="btn-secondary flex-none px-3"
          aria-label="Roll a random seed"
          title="Roll a random seed"
          onClick={() => onChange(String(spec.min + Math.floor(Math.random() * (spec.max - spec.min + 1))))}
        >
          <DiceIcon />
        </button>
        {usedSeed !== undefined && usedSeed !== null && (
          <button type="button" className="btn-secondary flex-none px-3 text-xs" onClick={() => onChange(String(usedSeed))}>
            Reuse
          </button>
        )}
      </div>
    </FieldShell>
  );
}

function DiceIcon() {
  return (
    <svg aria-hidden="true" viewBox="0 0 24 24" className="h-5 w-5" fill="none" stroke="currentColor" strokeWidth="1.8">
      <rect x="3.5" y="3.5" width="17" height="17" rx="3.5" />
      {[[8.5, 8.5], [15.5, 8.5], [12, 12], [8.5, 15.5], [15.5, 15.5]].map(([cx, cy]) => (
        <circle key={`${cx}-${cy}`} cx={cx} cy={cy} r="1.3" fill="currentColor" stroke="none" />
      ))}
    </svg>
  );
}

const FORMAT_MIME = { jpeg: "image/jpeg", png: "image/png", webp: "image/webp" };

/** An image field: click, keyboard or drag and drop; the limits come from the describe spec. */
export function ImageInput({ name, label, spec, file, onFile, error }) {
  const id = `f-${name}`;
  const [dragging, setDragging] = useState(false);
  const preview = useObjectUrl(file);
  const accept = (spec.formats || []).map((f) => FORMAT_MIME[f] || `image/${f}`).join(",");
  const hint = `${(spec.formats || []).map((f) => f.toUpperCase()).join(", ")}; up to ${formatBytes(spec.max_bytes)}`;
  const take = (files) => files && files[0] && onFile(files[0]);
  return (
    <div className="space-y-1" data-field={name}>
      <span className="block text-sm font-medium text-slate-700" id={`${id}-label`}>
        {label}
      </span>
      <label
        htmlFor={id}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={(e) => {
          e.preventDefault();
          setDragging(false);
          take(e.dataTransfer.files);
        }}
        className={`flex min-h-36 cursor-pointer flex-col items-center justify-center gap-2 rounded-lg border-2 border-dashed p-3 text-center text-sm focus-within:ring-2 focus-within:ring-indigo-500 ${
          error ? "border-red-500" : dragging ? "border-indigo-500 bg-indigo-50" : "border-slate-300 bg-white hover:bg-slate-50"
        }`}
      >
        {preview ? (
          <img src={preview} alt={`${label} preview`} className="max-h-48 rounded object-contain" />
        ) : (
          <span className="text-slate-600">Drop an image here, or choose a file</span>
        )}
        {file && <span className="max-w-full truncate text-xs text-slate-500">{file.name}</span>}
        <input
          id={id}
          name={name}
          type="file"
          accept={accept}
          className="sr-only"
          aria-labelledby={`${id}-label`}
          aria-invalid={!!error}
          aria-describedby={[`${id}-hint`, error && `${id}-error`].filter(Boolean).join(" ")}
          onChange={(e) => take(e.target.files)}
        />
      </label>
      <p id={`${id}-hint`} className="text-xs text-slate-500">
        {hint}
      </p>
      {error && (
        <p id={`${id}-error`} className="text-sm font-medium text-red-700" data-field-error={name} role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

/** An object URL for a Blob, revoked when the Blob changes or the component goes. */
export function useObjectUrl(blob) {
  const url = useMemo(() => (blob ? URL.createObjectURL(blob) : null), [blob]);
  useEffect(() => () => url && URL.revokeObjectURL(url), [url]);
  return url;
}

/** A job form's submit button (`idle` / `busy` labels) and Cancel for its job (from useJob). */
export function JobButtons({ job, idle, busy }) {
  return (
    <div className="flex gap-2">
      <button type="submit" className="btn-primary flex-1" disabled={job.busy}>
        {job.busy ? busy : idle}
      </button>
      <button type="button" className="btn-secondary" onClick={job.cancel} disabled={!job.busy}>
        Cancel
      </button>
    </div>
  );
}

export function ProgressBar({ progress, label = "Progress" }) {
  const id = useId();
  if (!progress) return null;
  const percent = progress.of ? Math.round((100 * progress.step) / progress.of) : 0;
  return (
    <div className="space-y-1">
      <div className="flex justify-between text-xs text-slate-600" id={id}>
        <span>{label}</span>
        <span data-testid="progress-text">
          step {progress.step} of {progress.of}
        </span>
      </div>
      <div
        role="progressbar"
        aria-labelledby={id}
        aria-valuemin={0}
        aria-valuemax={progress.of}
        aria-valuenow={progress.step}
        className="h-3 w-full overflow-hidden rounded-full bg-slate-200"
      >
        <div className="h-full rounded-full bg-indigo-600 transition-[width] duration-200" style={{ width: `${percent}%` }} />
      </div>
    </div>
  );
}

/** Errors that name no field on this form (or none at all) show at the top of the form. */
export function FormError({ error, shownFields }) {
  if (!error || (error.field && shownFields.includes(error.field))) return null;
  return (
    <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-800" data-form-error>
      <strong className="font-semibold">{error.type || "Error"}{error.code ? ` (${error.code})` : ""}:</strong> {error.message}
    </div>
  );
}

export function DownloadLink({ blob, filename, children = "Download" }) {
  const url = useObjectUrl(blob);
  if (!url) return null;
  return (
    <a href={url} download={filename} className="btn-secondary">
      {children}
    </a>
  );
}

export function LoadState({ state, children }) {
  if (state.error)
    return (
      <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-4 text-sm text-red-800">
        Could not read the model's description: {state.error.message}
      </div>
    );
  if (!state.info) return <p className="text-sm text-slate-500" aria-live="polite">Loading the model's description…</p>;
  return children(state.info);
}
