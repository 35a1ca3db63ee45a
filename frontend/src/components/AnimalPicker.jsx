import { useMemo, useState } from "react";

const normalise = (text) => text.toLowerCase().replace(/[-_\s]+/g, " ").trim();

/** A searchable radio group over the model's classes: typing filters, arrow keys move. */
export function AnimalPicker({ classes, value, onChange, error }) {
  const [query, setQuery] = useState("");
  const shown = useMemo(() => classes.filter((name) => normalise(name).includes(normalise(query))), [classes, query]);
  return (
    <fieldset className="space-y-2" data-field="animal" aria-describedby={error ? "f-animal-error" : undefined}>
      <legend className="text-sm font-medium text-slate-700">
        Animal <span className="font-normal text-slate-500">({classes.length} classes{value ? `; chosen: ${value.replace(/_/g, " ")}` : ""})</span>
      </legend>
      <label htmlFor="f-animal-search" className="sr-only">Search animals</label>
      <input id="f-animal-search" type="search" className="input" placeholder="Search animals…" value={query}
        aria-controls="animal-options" onChange={(e) => setQuery(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === "Enter") {
            e.preventDefault();
            if (shown.length) onChange(shown[0]);
          }
        }} />
      <div id="animal-options" role="radiogroup" aria-label="Animals"
        className="flex max-h-48 flex-wrap gap-1.5 overflow-y-auto rounded-md border border-slate-200 bg-slate-50 p-2">
        {shown.map((name) => (
          <label key={name}
            className={`cursor-pointer rounded-full border px-2.5 py-1 text-xs focus-within:ring-2 focus-within:ring-indigo-500 ${
              value === name ? "border-indigo-600 bg-indigo-600 text-white" : "border-slate-300 bg-white text-slate-800 hover:bg-slate-100"
            }`}>
            <input type="radio" name="animal" value={name} checked={value === name} className="sr-only" onChange={() => onChange(name)} />
            {name.replace(/_/g, " ")}
          </label>
        ))}
        {!shown.length && <p className="text-xs text-slate-500">No class matches “{query}”.</p>}
      </div>
      {error && (
        <p id="f-animal-error" className="text-sm font-medium text-red-700" data-field-error="animal" role="alert">
          {error}
        </p>
      )}
    </fieldset>
  );
}
