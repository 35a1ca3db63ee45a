/** A page's heading, with a warning when the model serves tiny synthetic stand-in weights. */
export function Page({ title, intro, info, children }) {
  const synthetic =
    info && (info.manifest?.synthetic || (Array.isArray(info.synthetic_weights) ? info.synthetic_weights.length : info.synthetic_weights));
  return (
    <section aria-labelledby="page-title" className="space-y-4">
      <header className="space-y-1">
        <h1 id="page-title" className="text-2xl font-semibold tracking-tight">
          {title}
        </h1>
        {intro && <p className="text-sm text-slate-600">{intro}</p>}
        {synthetic ? (
          <p className="inline-block rounded bg-amber-100 px-2 py-1 text-xs text-amber-900">
            This server runs tiny synthetic stand-in weights for {info.model} {info.version}: the pictures show the
            code path works, they are not art.
          </p>
        ) : null}
      </header>
      {children}
    </section>
  );
}

export function ResultFigure({ src, alt, caption, children }) {
  return (
    <figure className="card space-y-2">
      <figcaption className="text-sm font-medium text-slate-700">{caption}</figcaption>
      {src ? (
        <img src={src} alt={alt} className="mx-auto max-h-[28rem] w-full rounded bg-slate-100 object-contain [image-rendering:auto]" />
      ) : (
        <div className="flex aspect-square w-full items-center justify-center rounded bg-slate-100 text-sm text-slate-400">
          {alt}
        </div>
      )}
      {children}
    </figure>
  );
}
