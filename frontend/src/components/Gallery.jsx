import { extensionOf } from "../api.js";
import { DownloadLink, useObjectUrl } from "./controls.jsx";

/** Results newest first, each with the parameters that made it. */
export function Gallery({ items, model, describe }) {
  if (!items.length)
    return (
      <div className="card flex min-h-48 items-center justify-center text-sm text-slate-500" aria-live="polite">
        Results show here, newest first.
      </div>
    );
  return (
    <ol className="space-y-4" aria-label="Results" aria-live="polite">
      {items.map((item) => (
        <li key={item.id} className="card space-y-3" data-result>
          <div className="grid grid-cols-2 gap-2 sm:grid-cols-4">
            {item.blobs.map((blob, index) => (
              <GalleryImage key={index} blob={blob} seed={item.answer.seeds?.[index]} model={model} />
            ))}
          </div>
          <dl className="grid grid-cols-[auto_1fr] gap-x-3 gap-y-1 text-xs">
            {describe(item.answer).filter(Boolean).map(([term, value]) => (
              <div key={term} className="contents">
                <dt className="font-medium text-slate-500">{term}</dt>
                <dd className="break-words text-slate-800">{value}</dd>
              </div>
            ))}
          </dl>
        </li>
      ))}
    </ol>
  );
}

function GalleryImage({ blob, seed, model }) {
  const url = useObjectUrl(blob);
  return (
    <figure className="space-y-1">
      <img src={url} alt={`Generated image, seed ${seed}`} className="aspect-square w-full rounded bg-slate-100 object-contain" />
      <figcaption className="flex items-center justify-between gap-1 text-xs text-slate-600">
        <span>seed {seed}</span>
        <DownloadLink blob={blob} filename={`${model}-${seed}.${extensionOf(blob)}`}>
          <span aria-hidden="true">⬇</span>
          <span className="sr-only">Download the image with seed {seed}</span>
        </DownloadLink>
      </figcaption>
    </figure>
  );
}
