import { useCallback, useRef, useState } from "react";
import { ApiError } from "./api.js";
import { defaultValues } from "./describe.js";

/** Form values seeded from the describe output; editing a field clears the error naming it. */
export function useFormValues(fields, names) {
  const [values, setValues] = useState(() => defaultValues(fields, names));
  const [error, setError] = useState(null);
  const set = useCallback(
    (name) => (value) => {
      setValues((current) => ({ ...current, [name]: value }));
      setError((current) => (current?.field === name ? null : current));
    },
    [],
  );
  return { values, setValues, set, error, setError };
}

/** One job at a time: busy flag, streamed progress, cancel through an AbortController. */
export function useJob(setError) {
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState(null);
  const controller = useRef(null);

  const run = useCallback(
    async (work) => {
      controller.current?.abort();
      const current = new AbortController();
      controller.current = current;
      setBusy(true);
      setProgress(null);
      setError(null);
      try {
        return await work({ signal: current.signal, onProgress: setProgress });
      } catch (error) {
        if (current.signal.aborted) setError(new ApiError({ type: "Cancelled", message: "the job was cancelled" }));
        else if (error instanceof ApiError) setError(error);
        else setError(new ApiError({ type: "NetworkError", message: `the gateway could not be reached: ${error.message}` }));
        return null;
      } finally {
        if (controller.current === current) {
          controller.current = null;
          setBusy(false);
        }
      }
    },
    [setError],
  );

  const cancel = useCallback(() => controller.current?.abort(), []);
  return { busy, progress, run, cancel };
}
