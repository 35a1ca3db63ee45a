import { useState } from "react";
import { decodeImages, predictStream } from "../api.js";
import { toFormData, useDescribe } from "../describe.js";
import { useFormValues, useJob } from "../hooks.js";
import {
  CheckboxField, ChoiceField, DownloadLink, FormError, ImageInput, JobButtons, LoadState, NumberField, ProgressBar, SeedField,
  fieldError, useObjectUrl,
} from "../components/controls.jsx";
import { Page, ResultFigure } from "../components/Page.jsx";

const MODEL = "neural_style";
const SETTINGS = ["steps", "max_side_px", "content_weight", "style_weight", "tv_weight", "init", "preserve_color", "seed"];
const SHOWN = ["content", "style_image", ...SETTINGS];

export default function CustomStyle() {
  const state = useDescribe(MODEL);
  return (
    <Page title="Custom style" intro="Any style image: the picture is optimised step by step to match its textures (Gatys et al.)." info={state.info}>
      <LoadState state={state}>{(info) => <CustomStyleForm info={info} />}</LoadState>
    </Page>
  );
}

function CustomStyleForm({ info }) {
  const { fields } = info;
  const { values, set, error, setError } = useFormValues(fields, SETTINGS);
  const [images, setImages] = useState({ content: null, style_image: null });
  const [result, setResult] = useState(null);
  const job = useJob(setError);
  const output = useObjectUrl(result?.blob);
  const setImage = (name) => (file) => {
    setImages((current) => ({ ...current, [name]: file }));
    if (error?.field === name) setError(null);
  };

  const submit = async (event) => {
    event.preventDefault();
    const form = toFormData({ ...values, ...images });
    const answer = await job.run(({ signal, onProgress }) => predictStream(MODEL, form, { signal, onProgress }));
    if (answer) setResult({ blob: decodeImages(answer)[0], seed: answer.seeds?.[0], answer });
  };
  const lastLoss = job.progress?.style_loss;

  return (
    <div className="grid gap-6 lg:grid-cols-[22rem_1fr]">
      <form onSubmit={submit} noValidate className="card space-y-4" aria-label="Custom style settings">
        <FormError error={error} shownFields={SHOWN} />
        <div className="grid grid-cols-2 gap-3">
          <ImageInput name="content" label="Content" spec={fields.content} file={images.content} onFile={setImage("content")}
            error={fieldError(error, "content")} />
          <ImageInput name="style_image" label="Style" spec={fields.style_image} file={images.style_image}
            onFile={setImage("style_image")} error={fieldError(error, "style_image")} />
        </div>
        <NumberField name="steps" spec={fields.steps} value={values.steps} onChange={set("steps")} error={fieldError(error, "steps")} slider />
        <NumberField name="max_side_px" label="Longest side (px)" spec={fields.max_side_px} value={values.max_side_px}
          onChange={set("max_side_px")} error={fieldError(error, "max_side_px")} />
        <fieldset className="space-y-3">
          <legend className="text-sm font-semibold text-slate-800">Weights</legend>
          {["content_weight", "style_weight", "tv_weight"].map((name) => (
            <NumberField key={name} name={name} label={{ content_weight: "Content", style_weight: "Style", tv_weight: "Smoothness (total variation)" }[name]}
              spec={fields[name]} value={values[name]} onChange={set(name)} error={fieldError(error, name)} />
          ))}
        </fieldset>
        <details className="space-y-3">
          <summary className="cursor-pointer text-sm font-semibold text-slate-800">More</summary>
          <div className="mt-3 space-y-3">
            <ChoiceField name="init" label="Start from" spec={fields.init} value={values.init} onChange={set("init")} error={fieldError(error, "init")} />
            <CheckboxField name="preserve_color" label="Keep the content's colours" value={values.preserve_color}
              onChange={set("preserve_color")} error={fieldError(error, "preserve_color")} />
            <SeedField spec={fields.seed} value={values.seed} onChange={set("seed")} error={fieldError(error, "seed")} usedSeed={result?.seed} />
          </div>
        </details>
        <JobButtons job={job} idle="Transfer style" busy="Painting…" />
        <div aria-live="polite">
          <ProgressBar progress={job.progress} label={lastLoss !== undefined ? `Style loss ${Number(lastLoss).toPrecision(3)}` : "Optimising"} />
        </div>
      </form>
      <div aria-live="polite">
        <ResultFigure src={output} alt={result ? "The content image in the style image's style" : "The result shows here"}
          caption={result ? `Result: ${result.answer.steps_done} steps${result.answer.truncated ? " (stopped by the time budget)" : ""}, seed ${result.seed}` : "Result"}>
          {result && <DownloadLink blob={result.blob} filename={`neural_style-${result.seed}.${result.answer.format || "png"}`} />}
        </ResultFigure>
      </div>
    </div>
  );
}
