import { useState } from "react";
import { decodeImages, predictStream } from "../api.js";
import { toFormData } from "../describe.js";
import { useJob } from "../hooks.js";
import { FormError, ProgressBar, useObjectUrl } from "./controls.jsx";

const parseList = (text) => text.split(",").map((part) => part.trim()).filter(Boolean);

/**
 * The same seed at several step counts (columns) and/or for several animals (rows), one request
 * per cell in turn, shown as one labelled grid: the original generator's steps comparison.
 * The CLI's `imagelab compare-steps` makes the same grid as one PNG. Class names are the
 * server's to check: an unknown one comes back as its 400 with the closest names.
 */
export function StepsComparison({ model, version, values }) {
  const [steps, setSteps] = useState("2,4,8");
  const [animals, setAnimals] = useState("");
  const [cells, setCells] = useState([]);
  const [error, setError] = useState(null);
  const job = useJob(setError);
  const rows = parseList(animals).length ? parseList(animals) : values.animal ? [values.animal] : [];

  const compare = async (event) => {
    event.preventDefault();
    const counts = parseList(steps);
    if (!rows.length) return setError({ message: "pick an animal above, or list animals to compare", field: null });
    if (!counts.length || counts.some((n) => !/^\d+$/.test(n)))
      return setError({ message: `steps must be whole numbers separated by commas, got "${steps}"`, field: null });
    const seed = values.seed || String(Math.floor(Math.random() * 2 ** 31));
    setCells([]);
    await job.run(async ({ signal, onProgress }) => {
      for (const animal of rows)
        for (const count of counts) {
          // No live previews: the grid shows finished cells only.
          const form = toFormData({ ...values, animal, steps: count, seed, contrast: "", saturation: "", brightness: "", preview: "" });
          const answer = await predictStream(model, form, { signal, onProgress, version });
          const blob = decodeImages(answer)[0];
          setCells((made) => [...made, { animal, steps: Number(count), seed: answer.seeds?.[0] ?? seed, blob }]);
        }
      return true;
    });
  };

  const columns = Math.max(1, parseList(steps).length);
  return (
    <section className="card space-y-3" aria-label="Steps comparison" data-comparison>
      <h2 className="text-sm font-semibold text-slate-800">Compare steps</h2>
      <p className="text-xs text-slate-600">The same seed (the seed above, or one rolled for all cells) at several step counts or for several animals.</p>
      <form onSubmit={compare} noValidate className="grid gap-3 sm:grid-cols-[1fr_1fr_auto] sm:items-end">
        <label className="space-y-1 text-sm font-medium text-slate-700">
          <span>Step counts</span>
          <input id="f-compare-steps" className="input" value={steps} onChange={(e) => setSteps(e.target.value)} placeholder="20,50,100" />
        </label>
        <label className="space-y-1 text-sm font-medium text-slate-700">
          <span>Animals (optional)</span>
          <input id="f-compare-animals" className="input" value={animals} onChange={(e) => setAnimals(e.target.value)}
            placeholder={values.animal ? values.animal.replace(/_/g, " ") : "tiger, lion"} />
        </label>
        <div className="flex gap-2">
          <button type="submit" className="btn-primary" disabled={job.busy}>{job.busy ? "Comparing…" : "Compare"}</button>
          <button type="button" className="btn-secondary" onClick={job.cancel} disabled={!job.busy}>Stop</button>
        </div>
      </form>
      <FormError error={error} shownFields={[]} />
      <ProgressBar progress={job.progress} label={`Cell ${cells.length + 1}`} />
      {cells.length > 0 && (
        <ol className="grid gap-2" style={{ gridTemplateColumns: `repeat(${columns}, minmax(0, 1fr))` }} aria-label="Comparison grid">
          {cells.map((cell) => (
            <ComparisonCell key={`${cell.animal}-${cell.steps}`} cell={cell} />
          ))}
        </ol>
      )}
    </section>
  );
}

function ComparisonCell({ cell }) {
  const url = useObjectUrl(cell.blob);
  const label = `${cell.animal.replace(/_/g, " ")}, ${cell.steps} steps`;
  return (
    <li>
      <figure className="space-y-1" data-cell={label}>
        <img src={url} alt={`${label}, seed ${cell.seed}`} className="aspect-square w-full rounded bg-slate-100 object-contain" />
        <figcaption className="text-center text-xs text-slate-700">{label}</figcaption>
      </figure>
    </li>
  );
}
