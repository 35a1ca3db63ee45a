import { useState } from "react";
import { decodeImages, predictStream } from "../api.js";
import { schedulerName, toFormData, useDescribe } from "../describe.js";
import { useFormValues, useJob } from "../hooks.js";
import { ChoiceField, FormError, LoadState, NumberField, SeedField, TextField, fieldError } from "../components/controls.jsx";
import { DenoisingProgress } from "../components/DenoisingProgress.jsx";
import { Gallery } from "../components/Gallery.jsx";
import { Page } from "../components/Page.jsx";

const MODEL = "txt2img";
const SHOWN = ["prompt", "negative_prompt", "style", "style_scale", "steps", "guidance", "seed", "width", "height", "num_images", "scheduler", "preview"];

export default function TextToImage() {
  const state = useDescribe(MODEL);
  return (
    <Page title="Text to image" intro="Stable Diffusion 1.5 with a style adapter chosen per request." info={state.info}>
      <LoadState state={state}>{(info) => <TextToImageForm info={info} />}</LoadState>
    </Page>
  );
}

function TextToImageForm({ info }) {
  const { fields } = info;
  const { values, set, error, setError } = useFormValues(fields, SHOWN);
  const [gallery, setGallery] = useState([]);
  const job = useJob(setError);
  const tokens = `up to ${info.max_prompt_tokens} CLIP tokens`;

  const submit = async (event) => {
    event.preventDefault();
    const answer = await job.run(({ signal, onProgress }) => predictStream(MODEL, toFormData(values), { signal, onProgress }));
    if (answer) setGallery((items) => [{ id: Date.now(), blobs: decodeImages(answer), answer }, ...items]);
  };

  return (
    <div className="grid gap-6 lg:grid-cols-[22rem_1fr]">
      <form onSubmit={submit} noValidate className="card space-y-4" aria-label="Text to image settings">
        <FormError error={error} shownFields={SHOWN} />
        <TextField name="prompt" multiline value={values.prompt} onChange={set("prompt")} error={fieldError(error, "prompt")}
          hint={tokens} placeholder="a lighthouse on a cliff at dusk" />
        <TextField name="negative_prompt" label="Negative prompt" value={values.negative_prompt} onChange={set("negative_prompt")}
          error={fieldError(error, "negative_prompt")} hint={`What to steer away from; ${tokens}`} />
        <div className="grid grid-cols-2 gap-3">
          <ChoiceField name="style" spec={fields.style} value={values.style} onChange={set("style")} error={fieldError(error, "style")} />
          <NumberField name="style_scale" label="Style strength" spec={fields.style_scale} value={values.style_scale}
            onChange={set("style_scale")} error={fieldError(error, "style_scale")} />
        </div>
        <ChoiceField name="scheduler" spec={fields.scheduler} value={values.scheduler} onChange={set("scheduler")}
          error={fieldError(error, "scheduler")} optionLabel={schedulerName} hint={values.scheduler === "lcm" ? fields.scheduler.note : undefined} />
        <NumberField name="steps" spec={fields.steps} value={values.steps} onChange={set("steps")} error={fieldError(error, "steps")} slider />
        <NumberField name="guidance" spec={fields.guidance} value={values.guidance} onChange={set("guidance")} error={fieldError(error, "guidance")} slider />
        <SeedField spec={fields.seed} value={values.seed} onChange={set("seed")} error={fieldError(error, "seed")}
          usedSeed={gallery[0]?.answer.seeds?.[0]} />
        <div className="grid grid-cols-2 gap-3">
          <NumberField name="width" spec={fields.width} value={values.width} onChange={set("width")} error={fieldError(error, "width")}
            hint={`${fields.width.min}-${fields.width.max}, ×${fields.width.multiple_of}`} />
          <NumberField name="height" spec={fields.height} value={values.height} onChange={set("height")} error={fieldError(error, "height")}
            hint={`${fields.height.min}-${fields.height.max}, ×${fields.height.multiple_of}`} />
        </div>
        <NumberField name="num_images" label="Images" spec={fields.num_images} value={values.num_images} onChange={set("num_images")}
          error={fieldError(error, "num_images")} hint={`1-${fields.num_images.max}`} />
        <DenoisingProgress job={job} fields={fields} values={values} set={set} error={error} />
      </form>
      <Gallery items={gallery} model={MODEL} describe={(answer) => [
        ["Prompt", answer.parameters.prompt],
        answer.parameters.negative_prompt && ["Negative", answer.parameters.negative_prompt],
        ["Style", `${answer.parameters.style} × ${answer.parameters.style_scale}`],
        ["Scheduler", schedulerName(answer.parameters.scheduler)],
        ["Steps / guidance", `${answer.parameters.steps} / ${answer.parameters.guidance}`],
        ["Size", `${answer.width}×${answer.height}`],
        ["Seeds", (answer.seeds || []).join(", ")],
      ]} />
    </div>
  );
}
