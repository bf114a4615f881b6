// Vite: builds the page into dist/ (served by Flask at /), and in dev proxies the relay so the
// page keeps one origin: Socket.IO (with its websocket upgrade), the HTTP stream and /models.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const relay = process.env.RELAY_URL ?? "http://127.0.0.1:8000";
// Objects, not plain strings: Vite expands a string target with `changeOrigin: true`, which rewrites `Host` to the
// relay's address while the browser's `Origin` stays the dev page's, and the relay then refuses every HTTP stream
// (403 origin_not_allowed). Keeping the browser's Host makes Host and Origin agree, as they do behind nginx.
const toRelay = { target: relay, changeOrigin: false };

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/socket.io": { ...toRelay, ws: true },
      "/message": toRelay,
      "/models": toRelay,
    },
  },
  test: {
    environment: "node",
    include: ["test/**/*.test.js"],
  },
});
