import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";
import tailwindcss from "@tailwindcss/vite";

// `npm run dev` serves the app with hot reload and sends /api to a running gateway
// (`python -m gateway`), which holds the TorchServe keys; the browser never sees them.
export default defineConfig({
  plugins: [react(), tailwindcss()],
  server: {
    host: "127.0.0.1",
    proxy: { "/api": process.env.IMAGELAB_GATEWAY || "http://127.0.0.1:8090" },
  },
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false },
});
