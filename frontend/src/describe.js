import { useEffect, useState } from "react";
import { describeModel } from "./api.js";

/** A model's describe output, fetched once per mount: {info, error}. */
export function useDescribe(model) {
  const [state, setState] = useState({ info: null, error: null });
  useEffect(() => {
    const controller = new AbortController();
    describeModel(model, null, controller.signal)
      .then((info) => setState({ info, error: null }))
      .catch((error) => controller.signal.aborted || setState({ info: null, error }));
    return () => controller.abort();
  }, [model]);
  return state;
}

/** Form values from the described defaults, as the strings inputs hold. A default of
 * "random" (seeds) becomes empty: the server picks and reports it. */
export function defaultValues(fields, names) {
  const values = {};
  for (const name of names) {
    const spec = fields[name];
    if (!spec) continue;
    const value = spec.default;
    values[name] = value === undefined || value === "random" ? "" : spec.type === "boolean" ? !!value : String(value);
  }
  return values;
}

/** FormData of the non-empty values; files as files. */
export function toFormData(values) {
  const form = new FormData();
  for (const [name, value] of Object.entries(values)) {
    if (value === "" || value === null || value === undefined) continue;
    if (value instanceof Blob) form.set(name, value, value.name || name);
    else form.set(name, String(value));
  }
  return form;
}

/** "max_side_px" -> "Max side (px)", for fields without a label of their own. */
export function humanize(name) {
  const words = name.replace(/_px$/, " (px)").replace(/_s$/, " (s)").replace(/_/g, " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

// Display names only; which schedulers exist, and their step ranges, come from the server.
const SCHEDULER_NAMES = { lcm: "LCM: fast (2-8 steps)", dpmpp: "DPM++", ddim: "DDIM", euler_a: "Euler ancestral" };
export const schedulerName = (name) => SCHEDULER_NAMES[name] || name;

/** A number field's spec for the chosen scheduler: describe's `by_scheduler` range and
 * default (the playground offers 20-100 steps for DDIM, LCM's few steps for LCM, ...). */
export function forScheduler(spec, scheduler) {
  const range = spec?.by_scheduler?.[scheduler];
  return range ? { ...spec, ...range } : spec;
}

export function stepOf(spec) {
  if (spec.multiple_of) return spec.multiple_of;
  if (spec.type === "integer") return 1;
  const span = (spec.max ?? 1) - (spec.min ?? 0);
  return span > 100 ? 1 : span > 10 ? 0.5 : 0.05;
}

export function formatBytes(bytes) {
  if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(bytes % (1024 * 1024) ? 1 : 0)} MiB`;
  if (bytes >= 1024) return `${Math.round(bytes / 1024)} KiB`;
  return `${bytes} B`;
}
