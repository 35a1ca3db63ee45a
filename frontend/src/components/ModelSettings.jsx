import { useCallback, useEffect, useRef, useState } from "react";
import { describeModel, modelVersions } from "../api.js";
import { forScheduler, schedulerName } from "../describe.js";
import { ChoiceField, NumberField, fieldError } from "./controls.jsx";

const byVersion = (a, b) => a.localeCompare(b, undefined, { numeric: true });
const classesNote = (info) =>
  `${info.classes?.length ?? 0} classes, ${info.classes_source === "lora" ? "its LoRA's own list" : "the built-in list"}`;

/**
 * Which archive version answers the page's requests, and that version's own description: the
 * default version's (the page's describe) until another is chosen, then the chosen one's, so
 * the classes and ranges shown are those of the version that will serve. A version whose
 * description cannot be read is not chosen; the error says why.
 * -> {versions, defaultVersion, version, info, loading, error, choose}
 */
export function useVersionChoice(model, defaultInfo) {
  const defaultVersion = defaultInfo.entry.modelVersion;
  const [versions, setVersions] = useState([defaultVersion]);
  const [chosen, setChosen] = useState({ version: defaultVersion, info: defaultInfo });
  const [loading, setLoading] = useState(null);
  const [error, setError] = useState(null);
  const latest = useRef(null);

  useEffect(() => {
    const controller = new AbortController();
    modelVersions(model, controller.signal)
      .then((entries) => setVersions(entries.map((entry) => entry.modelVersion).sort(byVersion)))
      .catch((failure) => controller.signal.aborted || setError(`Could not list the versions: ${failure.message}`));
    return () => controller.abort();
  }, [model]);

  const choose = useCallback(
    async (version) => {
      latest.current = version;
      setError(null);
      if (version === defaultVersion) return setChosen({ version, info: defaultInfo });
      setLoading(version);
      try {
        const info = await describeModel(model, version);
        if (latest.current === version) setChosen({ version, info });
      } catch (failure) {
        if (latest.current === version) setError(`Could not read version ${version}: ${failure.message}`);
      } finally {
        if (latest.current === version) setLoading(null);
      }
    },
    [model, defaultVersion, defaultInfo],
  );

  return { versions, defaultVersion, version: chosen.version, info: chosen.info, loading, error, choose };
}

/**
 * The seed's "Model settings" panel: the archive version (LoRA) serving the request, the
 * scheduler with the LCM fast mode, steps and guidance in the chosen scheduler's range (from
 * describe's `by_scheduler`), and, read-only, the device and dtype the version runs on.
 */
export function ModelSettings({ choice, values, set, error }) {
  const { fields, device, dtype } = choice.info;
  const steps = forScheduler(fields.steps, values.scheduler);
  const guidance = forScheduler(fields.guidance, values.scheduler);
  const scheduler = schedulerName(values.scheduler).split(":")[0]; // "LCM", "DPM++", ...

  // A scheduler's own range: a value outside it moves to that scheduler's default.
  const chooseScheduler = (name) => {
    set("scheduler")(name);
    for (const field of ["steps", "guidance"]) {
      const spec = forScheduler(fields[field], name);
      const value = Number(values[field]);
      if (values[field] === "" || !(value >= spec.min && value <= spec.max)) set(field)(String(spec.default));
    }
  };

  return (
    <fieldset className="space-y-3" aria-label="Model settings" data-model-settings data-version={choice.version}>
      <legend className="text-sm font-semibold text-slate-800">Model settings</legend>
      <ChoiceField name="version" label="Version (LoRA)" spec={{ choices: choice.versions }} value={choice.version}
        onChange={choice.choose}
        optionLabel={(version) => (version === choice.defaultVersion ? `${version} (default)` : version)}
        error={choice.error}
        hint={choice.loading ? `Reading version ${choice.loading}…` : classesNote(choice.info)} />
      <ChoiceField name="scheduler" spec={fields.scheduler} value={values.scheduler} onChange={chooseScheduler}
        error={fieldError(error, "scheduler")} optionLabel={schedulerName}
        hint={values.scheduler === "lcm" ? fields.scheduler.note : undefined} />
      <NumberField name="steps" spec={steps} value={values.steps} onChange={set("steps")} error={fieldError(error, "steps")} slider
        hint={`${steps.min} to ${steps.max} with ${scheduler}`} />
      <NumberField name="guidance" spec={guidance} value={values.guidance} onChange={set("guidance")}
        error={fieldError(error, "guidance")} slider hint={`${guidance.min} to ${guidance.max} with ${scheduler}`} />
      <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 rounded-md bg-slate-50 p-2 text-xs" aria-label="Where the model runs">
        <dt className="text-slate-500">Device</dt>
        <dd className="font-medium text-slate-800" data-device>{device ?? "unknown"}</dd>
        <dt className="text-slate-500">Precision</dt>
        <dd className="font-medium text-slate-800" data-dtype>{dtype ?? "unknown"}</dd>
      </dl>
    </fieldset>
  );
}
