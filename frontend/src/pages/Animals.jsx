import { useEffect, useState } from "react";
import { decodeImages, predictStream } from "../api.js";
import { schedulerName, toFormData, useDescribe } from "../describe.js";
import { useFormValues, useJob } from "../hooks.js";
import { AdjustedImage } from "../components/AdjustedImage.jsx";
import { AnimalPicker } from "../components/AnimalPicker.jsx";
import { FormError, LoadState, NumberField, SeedField, TextField, fieldError } from "../components/controls.jsx";
import { DenoisingProgress } from "../components/DenoisingProgress.jsx";
import { ModelSettings, useVersionChoice } from "../components/ModelSettings.jsx";
import { Page } from "../components/Page.jsx";
import { StepsComparison } from "../components/StepsComparison.jsx";

const MODEL = "animals";
const ADJUSTMENTS = ["contrast", "saturation", "brightness"];
const SHOWN = ["animal", "prompt_extra", "scheduler", "steps", "guidance", "seed", "width", "height", ...ADJUSTMENTS, "preview"];
// The page asks for the picture as made (factors left at the server's default, 1) and applies
// the sliders to it in the browser with the server's math, so moving one needs no new generation.
const AS_MADE = Object.fromEntries(ADJUSTMENTS.map((name) => [name, ""]));

export default function Animals() {
  const state = useDescribe(MODEL);
  return (
    <Page title="Animals" intro="Stable Diffusion 1.5 with the animals adapter: pick one of the classes." info={state.info}>
      <LoadState state={state}>{(info) => <AnimalsForm info={info} />}</LoadState>
    </Page>
  );
}

function AnimalsForm({ info: defaultInfo }) {
  // The chosen version's description (classes, ranges) once read; the default's until then.
  const choice = useVersionChoice(MODEL, defaultInfo);
  const { info } = choice;
  const { fields } = defaultInfo;
  const { values, set, error, setError } = useFormValues(fields, SHOWN);
  // Another version may serve other classes: a chosen animal it lacks is unpicked.
  useEffect(() => {
    if (values.animal && !info.classes.includes(values.animal)) set("animal")("");
  }, [info, values.animal, set]);
  const [result, setResult] = useState(null);
  const job = useJob(setError);

  const submit = async (event) => {
    event.preventDefault();
    const form = toFormData({ ...values, ...AS_MADE });
    const version = choice.version;
    const answer = await job.run(({ signal, onProgress }) => predictStream(MODEL, form, { signal, onProgress, version }));
    if (answer) setResult({ blob: decodeImages(answer)[0], answer });
  };

  const used = result?.answer.parameters;
  const factors = Object.fromEntries(ADJUSTMENTS.map((name) => [name, values[name]]));

  return (
    <div className="space-y-6">
      <div className="grid gap-6 lg:grid-cols-[24rem_1fr]">
        <form onSubmit={submit} noValidate className="card space-y-4" aria-label="Animals settings">
          <FormError error={error} shownFields={SHOWN} />
          <AnimalPicker classes={info.classes} value={values.animal} onChange={set("animal")} error={fieldError(error, "animal")} />
          <TextField name="prompt_extra" label="Extra prompt" value={values.prompt_extra} onChange={set("prompt_extra")}
            error={fieldError(error, "prompt_extra")} placeholder="in the snow, golden hour" />
          <ModelSettings choice={choice} values={values} set={set} error={error} />
          <SeedField spec={fields.seed} value={values.seed} onChange={set("seed")} error={fieldError(error, "seed")} usedSeed={result?.answer.seeds?.[0]} />
          <fieldset className="space-y-3">
            <legend className="text-sm font-semibold text-slate-800">Colour</legend>
            {ADJUSTMENTS.map((name) => (
              <NumberField key={name} name={name} spec={fields[name]} value={values[name]} onChange={set(name)} error={fieldError(error, name)} slider
                hint={`${fields[name].min} to ${fields[name].max}; 1 leaves the image as made; acts on the shown image at once`} />
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
          <DenoisingProgress job={job} fields={fields} values={values} set={set} error={error} />
        </form>
        <figure className="card space-y-3" aria-live="polite">
          <figcaption className="text-sm font-medium text-slate-700">
            {used ? `${used.animal.replace(/_/g, " ")}, seed ${result.answer.seeds?.[0]}` : "Preview"}
          </figcaption>
          {result ? (
            <AdjustedImage blob={result.blob} factors={factors} limits={fields} label={`Generated ${used.animal}`}
              filename={`animals-${used.animal}-${result.answer.seeds?.[0]}.png`} />
          ) : (
            <div className="flex aspect-square w-full items-center justify-center rounded bg-slate-100 text-sm text-slate-400">
              Pick an animal and generate
            </div>
          )}
          {used && <p className="text-xs text-slate-600">Prompt: {used.prompt}</p>}
          {used && (
            <p className="text-xs text-slate-600" data-served-by={result.answer.model_version}>
              Served by {MODEL} {result.answer.model_version}: {schedulerName(used.scheduler)}, {used.steps} steps, guidance {used.guidance}
            </p>
          )}
        </figure>
      </div>
      <StepsComparison model={MODEL} version={choice.version} values={values} />
    </div>
  );
}
