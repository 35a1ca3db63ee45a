import { useState } from "react";
import { extensionOf, predictImage } from "../api.js";
import { toFormData, useDescribe } from "../describe.js";
import { useFormValues, useJob } from "../hooks.js";
import { ChoiceField, DownloadLink, FormError, ImageInput, LoadState, NumberField, fieldError, useObjectUrl } from "../components/controls.jsx";
import { Page, ResultFigure } from "../components/Page.jsx";

const MODEL = "fast_style";
const SHOWN = ["image", "style", "max_side_px", "format"];

export default function FastStyle() {
  const state = useDescribe(MODEL);
  return (
    <Page title="Fast style" intro="One pass through a trained style network: a photo in, a painting out, in about a second." info={state.info}>
      <LoadState state={state}>{(info) => <FastStyleForm info={info} />}</LoadState>
    </Page>
  );
}

function FastStyleForm({ info }) {
  const { fields } = info;
  const { values, set, error, setError } = useFormValues(fields, SHOWN);
  const [image, setImage] = useState(null);
  const [result, setResult] = useState(null);
  const job = useJob(setError);
  const original = useObjectUrl(image);
  const stylised = useObjectUrl(result?.blob);

  const submit = async (event) => {
    event.preventDefault();
    const answer = await job.run(({ signal }) => predictImage(MODEL, toFormData({ ...values, image }), signal));
    if (answer) setResult({ ...answer, style: values.style });
  };

  return (
    <div className="grid gap-6 lg:grid-cols-[20rem_1fr]">
      <form onSubmit={submit} noValidate className="card space-y-4" aria-label="Fast style settings">
        <FormError error={error} shownFields={SHOWN} />
        <ImageInput name="image" label="Photo" spec={fields.image} file={image} error={fieldError(error, "image")}
          onFile={(file) => { setImage(file); if (error?.field === "image") setError(null); }} />
        <ChoiceField name="style" spec={fields.style} value={values.style} onChange={set("style")} error={fieldError(error, "style")} />
        <NumberField name="max_side_px" label="Longest side (px)" spec={fields.max_side_px} value={values.max_side_px}
          onChange={set("max_side_px")} error={fieldError(error, "max_side_px")} />
        <ChoiceField name="format" label="Output format" spec={fields.format} value={values.format} onChange={set("format")}
          error={fieldError(error, "format")} />
        <button type="submit" className="btn-primary w-full" disabled={job.busy}>
          {job.busy ? "Stylising…" : "Stylise"}
        </button>
      </form>
      <div className="grid grid-cols-2 gap-3 sm:gap-4" aria-live="polite">
        <ResultFigure src={original} alt="Original photo" caption="Original" />
        <ResultFigure src={stylised} alt={result ? `Photo in the ${result.style} style` : "The result shows here"}
          caption={result ? `Result: ${result.style.replace(/_/g, " ")}` : "Result"}>
          {result && <DownloadLink blob={result.blob} filename={`fast_style-${result.style}.${extensionOf(result.blob)}`} />}
        </ResultFigure>
      </div>
    </div>
  );
}
