import { useCallback, useEffect, useState } from "react";
import { describeModel, gatewayInfo, listModels, modelVersions, setDefaultVersion } from "../api.js";
import { formatBytes } from "../describe.js";
import { Page } from "../components/Page.jsx";

/** Every registered model: its versions, which one is the default, and each version's manifest. */
export default function Models() {
  const [state, setState] = useState({ models: null, error: null, canSetDefault: false });
  const load = useCallback(async (signal) => {
    try {
      const [models, gateway] = await Promise.all([listModels(signal), gatewayInfo(signal)]);
      const details = await Promise.all(
        models.map(async ({ modelName }) => {
          const [versions, current] = await Promise.all([modelVersions(modelName, signal), describeModel(modelName, null, signal)]);
          return { name: modelName, versions, defaultVersion: current.entry.modelVersion, current };
        }),
      );
      setState({ models: details, error: null, canSetDefault: gateway.set_default });
    } catch (error) {
      if (!signal?.aborted) setState({ models: null, error, canSetDefault: false });
    }
  }, []);
  useEffect(() => {
    const controller = new AbortController();
    load(controller.signal);
    return () => controller.abort();
  }, [load]);

  return (
    <Page title="Models" intro="What this server serves: each model's versions, the default one, and what its archive holds.">
      {state.error && (
        <div role="alert" className="rounded-md border border-red-300 bg-red-50 p-4 text-sm text-red-800">
          Could not list the models: {state.error.message}
        </div>
      )}
      {!state.models && !state.error && <p className="text-sm text-slate-500">Loading…</p>}
      <div className="grid gap-4 xl:grid-cols-2">
        {state.models?.map((model) => (
          <ModelCard key={model.name} model={model} canSetDefault={state.canSetDefault} onChanged={() => load()} />
        ))}
      </div>
    </Page>
  );
}

function ModelCard({ model, canSetDefault, onChanged }) {
  const [chosen, setChosen] = useState(model.defaultVersion);
  const [manifest, setManifest] = useState({ version: model.defaultVersion, info: model.current, error: null });
  const [actionError, setActionError] = useState(null);

  const show = async (version) => {
    setChosen(version);
    try {
      setManifest({ version, info: await describeModel(model.name, version), error: null });
    } catch (error) {
      setManifest({ version, info: null, error });
    }
  };
  const makeDefault = async (version) => {
    setActionError(null);
    try {
      await setDefaultVersion(model.name, version);
      onChanged();
    } catch (error) {
      setActionError(error.message);
    }
  };
  const info = manifest.info;
  const weights = info?.manifest?.weights || [];

  return (
    <article className="card space-y-3" aria-labelledby={`model-${model.name}`} data-model={model.name}>
      <h2 id={`model-${model.name}`} className="text-lg font-semibold">{model.name}</h2>
      <table className="w-full text-left text-sm">
        <caption className="sr-only">Versions of {model.name}</caption>
        <thead className="text-xs text-slate-500">
          <tr><th scope="col" className="py-1">Version</th><th scope="col">Archive</th><th scope="col">Workers</th><th scope="col"><span className="sr-only">Actions</span></th></tr>
        </thead>
        <tbody>
          {model.versions.map((version) => (
            <tr key={version.modelVersion} className="border-t border-slate-100">
              <td className="py-1.5">
                {version.modelVersion}{" "}
                {version.modelVersion === model.defaultVersion && (
                  <span className="rounded bg-emerald-100 px-1.5 py-0.5 text-xs font-medium text-emerald-800">default</span>
                )}
              </td>
              <td className="break-all text-xs text-slate-600">{version.modelUrl}</td>
              <td className="text-xs text-slate-600">{(version.workers || []).map((w) => w.status).join(", ") || "–"}</td>
              <td className="space-x-1 text-right">
                <button type="button" className="btn-secondary px-2 py-1 text-xs" aria-pressed={chosen === version.modelVersion}
                  onClick={() => show(version.modelVersion)}>
                  Manifest
                </button>
                {canSetDefault && version.modelVersion !== model.defaultVersion && (
                  <button type="button" className="btn-secondary px-2 py-1 text-xs" onClick={() => makeDefault(version.modelVersion)}>
                    Make default
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {actionError && <p role="alert" className="text-sm text-red-700">{actionError}</p>}
      <section aria-label={`Manifest of ${model.name} ${manifest.version}`} className="space-y-2">
        <h3 className="text-sm font-semibold">Manifest of {manifest.version}</h3>
        {manifest.error && <p role="alert" className="text-sm text-red-700">{manifest.error.message}</p>}
        {info && (
          <>
            <p className="text-xs text-slate-600">
              Built {info.manifest?.created || "–"}
              {info.styles ? `; styles: ${info.styles.join(", ")}` : ""}
              {info.classes ? `; ${info.classes.length} classes` : ""}
            </p>
            <div className="max-h-56 overflow-auto rounded border border-slate-100">
              <table className="w-full text-left text-xs">
                <caption className="sr-only">Weights in the archive</caption>
                <thead className="sticky top-0 bg-slate-50 text-slate-500">
                  <tr><th scope="col" className="p-1">File</th><th scope="col" className="px-2">Size</th><th scope="col" className="hidden sm:table-cell">sha256</th><th scope="col">Kind</th></tr>
                </thead>
                <tbody>
                  {weights.map((w) => (
                    <tr key={w.path} className="border-t border-slate-100">
                      <td className="break-all p-1">{w.path}</td>
                      <td className="whitespace-nowrap px-2">{formatBytes(w.bytes)}</td>
                      <td className="hidden sm:table-cell"><code title={w.sha256}>{w.sha256?.slice(0, 12)}…</code></td>
                      <td>{w.synthetic ? <span className="text-amber-800">tiny synthetic</span> : "real"}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <details>
              <summary className="cursor-pointer text-xs text-slate-600">Raw manifest</summary>
              <pre className="mt-2 max-h-64 overflow-auto rounded bg-slate-900 p-2 text-xs text-slate-100">{JSON.stringify(info.manifest, null, 2)}</pre>
            </details>
          </>
        )}
      </section>
    </article>
  );
}
