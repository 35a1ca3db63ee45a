import { useCallback, useRef, useState } from "react";
import { ApiError, cancelJob } from "./api.js";
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

/**
 * One job at a time: busy flag, streamed progress, cancel. Cancel tells the server first
 * (POST /api/cancel/{job_id}, the id from the job's first progress event: the worker stops at
 * its next step and takes the next request), then drops the stream (AbortController).
 */
export function useJob(setError) {
  const [busy, setBusy] = useState(false);
  const [progress, setProgress] = useState(null);
  const controller = useRef(null);
  const jobId = useRef(null);

  const stop = useCallback(() => {
    if (jobId.current) cancelJob(jobId.current).catch(() => {}); // the stream's end says the rest
    jobId.current = null;
    controller.current?.abort();
  }, []);

  const run = useCallback(
    async (work) => {
      stop();
      const current = new AbortController();
      controller.current = current;
      setBusy(true);
      setProgress(null);
      setError(null);
      const onProgress = (event) => {
        if (event.job_id && controller.current === current) jobId.current = event.job_id;
        setProgress(event);
      };
      try {
        return await work({ signal: current.signal, onProgress });
      } catch (error) {
        if (current.signal.aborted) setError(new ApiError({ type: "Cancelled", message: "the job was cancelled" }));
        else if (error instanceof ApiError) setError(error);
        else setError(new ApiError({ type: "NetworkError", message: `the gateway could not be reached: ${error.message}` }));
        return null;
      } finally {
        if (controller.current === current) {
          controller.current = null;
          jobId.current = null;
          setBusy(false);
        }
      }
    },
    [setError, stop],
  );

  return { busy, progress, run, cancel: stop };
}
