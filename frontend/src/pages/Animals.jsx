import { useState } from "react";
import { decodeImages, extensionOf, predictStream } from "../api.js";
import { toFormData, useDescribe } from "../describe.js";
import { useFormValues, useJob } from "../hooks.js";
import { AnimalPicker } from "../components/AnimalPicker.jsx";
import { DownloadLink, FormError, LoadState, NumberField, ProgressBar, SeedField, TextField, fieldError, useObjectUrl } from "../components/controls.jsx";
import { Page } from "../components/Page.jsx";

const MODEL = "animals";
const ADJUSTMENTS = ["contrast", "saturation", "brightness"];
const SHOWN = ["animal", "prompt_extra", "steps", "guidance", "seed", "width", "height", ...ADJUSTMENTS];
// CSS names of the same adjustments, for the in-browser preview.
const CSS_FILTER = { contrast: "contrast", saturation: "saturate", brightness: "brightness" };

export default function Animals() {
  const state = useDescribe(MODEL);
  return (
    <Page title="Animals" intro="Stable Diffusion 1.5 with the animals adapter: pick one of the classes." info={state.info}>
      <LoadState state={state}>{(info) => <AnimalsForm info={info} />}</LoadState>
    </Page>
  );
}

function AnimalsForm({ info }) {
  const { fields } = info;
  const { values, set, error, setError } = useFormValues(fields, SHOWN);
  const [result, setResult] = useState(null);
  const job = useJob(setError);
  const url = useObjectUrl(result?.blob);

  const submit = async (event) => {
    event.preventDefault();
    const answer = await job.run(({ signal, onProgress }) => predictStream(MODEL, toFormData(values), { signal, onProgress }));
    if (answer) setResult({ blob: decodeImages(answer)[0], answer });
  };

  // The server applied the adjustments the image was made with; the sliders' changes since are
  // previewed with CSS filters (close to, not the same as, the server's) until the next Generate.
  const used = result?.answer.parameters;
  const preview = used
    ? ADJUSTMENTS.map((name) => {
        const ratio = Number(values[name]) / (Number(used[name]) || 1);
        return `${CSS_FILTER[name]}(${Number.isFinite(ratio) ? ratio : 1})`;
      }).join(" ")
    : undefined;
  const changed = used && ADJUSTMENTS.some((name) => Number(values[name]) !== Number(used[name]));

  return (
    <div className="grid gap-6 lg:grid-cols-[24rem_1fr]">
      <form onSubmit={submit} noValidate className="card space-y-4" aria-label="Animals settings">
        <FormError error={error} shownFields={SHOWN} />
        <AnimalPicker classes={info.classes} value={values.animal} onChange={set("animal")} error={fieldError(error, "animal")} />
        <TextField name="prompt_extra" label="Extra prompt" value={values.prompt_extra} onChange={set("prompt_extra")}
          error={fieldError(error, "prompt_extra")} placeholder="in the snow, golden hour" />
        <NumberField name="steps" spec={fields.steps} value={values.steps} onChange={set("steps")} error={fieldError(error, "steps")} slider />
        <NumberField name="guidance" spec={fields.guidance} value={values.guidance} onChange={set("guidance")} error={fieldError(error, "guidance")} slider />
        <SeedField spec={fields.seed} value={values.seed} onChange={set("seed")} error={fieldError(error, "seed")} usedSeed={result?.answer.seeds?.[0]} />
        <fieldset className="space-y-3">
          <legend className="text-sm font-semibold text-slate-800">Colour</legend>
          {ADJUSTMENTS.map((name) => (
            <NumberField key={name} name={name} spec={fields[name]} value={values[name]} onChange={set(name)} error={fieldError(error, name)} slider
              hint={`${fields[name].min} to ${fields[name].max}; 1 leaves the image as made`} />
          ))}
        </fieldset>
        <details>
          <summary className="cursor-pointer text-sm font-semibold text-slate-800">Size</summary>
          <div className="mt-3 grid grid-cols-2 gap-3">
            {["width", "height"].map((name) => (
              <NumberField key={name} name={name} spec={fields[name]} value={values[name]} onChange={set(name)} error={fieldError(error, name)} />
            ))}
          </div>
        </details>
        <div className="flex gap-2">
          <button type="submit" className="btn-primary flex-1" disabled={job.busy}>
            {job.busy ? "Generating…" : "Generate"}
          </button>
          <button type="button" className="btn-secondary" onClick={job.cancel} disabled={!job.busy}>
            Cancel
          </button>
        </div>
        <div aria-live="polite">
          <ProgressBar progress={job.progress} label="Denoising" />
        </div>
      </form>
      <figure className="card space-y-3" aria-live="polite">
        <figcaption className="text-sm font-medium text-slate-700">
          {used ? `${used.animal.replace(/_/g, " ")}, seed ${result.answer.seeds?.[0]}` : "Preview"}
        </figcaption>
        {url ? (
          <img src={url} alt={`Generated ${used.animal}`} style={{ filter: preview }}
            className="mx-auto max-h-[28rem] w-full rounded bg-slate-100 object-contain" />
        ) : (
          <div className="flex aspect-square w-full items-center justify-center rounded bg-slate-100 text-sm text-slate-400">
            Pick an animal and generate
          </div>
        )}
        {changed && <p className="text-xs text-amber-800">Colour sliders previewed in the browser; Generate applies them (reuse the seed to keep the picture).</p>}
        {used && <p className="text-xs text-slate-600">Prompt: {used.prompt}</p>}
        {result && (
          <DownloadLink blob={result.blob} filename={`animals-${used.animal}-${result.answer.seeds?.[0]}.${extensionOf(result.blob)}`}>
            Save image
          </DownloadLink>
        )}
      </figure>
    </div>
  );
}
