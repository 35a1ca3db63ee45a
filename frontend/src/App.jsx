import { useEffect, useState } from "react";
import Animals from "./pages/Animals.jsx";
import CustomStyle from "./pages/CustomStyle.jsx";
import FastStyle from "./pages/FastStyle.jsx";
import Models from "./pages/Models.jsx";
import TextToImage from "./pages/TextToImage.jsx";

// Hash routes: the gateway serves one index.html and needs no fallback routing.
const PAGES = [
  { path: "fast-style", title: "Fast style", Component: FastStyle },
  { path: "custom-style", title: "Custom style", Component: CustomStyle },
  { path: "text-to-image", title: "Text to image", Component: TextToImage },
  { path: "animals", title: "Animals", Component: Animals },
  { path: "models", title: "Models", Component: Models },
];

const currentPath = () => window.location.hash.replace(/^#\/?/, "") || PAGES[0].path;

export default function App() {
  const [path, setPath] = useState(currentPath);
  useEffect(() => {
    const onChange = () => setPath(currentPath());
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  const page = PAGES.find((p) => p.path === path) || PAGES[0];
  useEffect(() => {
    document.title = `${page.title} · imagelab`;
  }, [page]);

  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-10 focus:rounded focus:bg-white focus:p-2"
        onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header className="border-b border-slate-200 bg-white">
        <div className="mx-auto flex max-w-7xl flex-col gap-2 px-4 py-3 sm:flex-row sm:items-center sm:gap-6">
          <span className="text-lg font-bold tracking-tight text-indigo-700">imagelab</span>
          <nav aria-label="Pages">
            <ul className="flex flex-wrap gap-1">
              {PAGES.map((p) => (
                <li key={p.path}>
                  <a href={`#/${p.path}`} aria-current={p === page ? "page" : undefined}
                    className={`block rounded-md px-3 py-1.5 text-sm font-medium focus:outline-none focus-visible:ring-2 focus-visible:ring-indigo-500 ${
                      p === page ? "bg-indigo-600 text-white" : "text-slate-700 hover:bg-slate-100"
                    }`}>
                    {p.title}
                  </a>
                </li>
              ))}
            </ul>
          </nav>
        </div>
      </header>
      <main id="main" tabIndex={-1} className="mx-auto max-w-7xl px-4 py-6 focus:outline-none">
        <page.Component key={page.path} />
      </main>
    </div>
  );
}
