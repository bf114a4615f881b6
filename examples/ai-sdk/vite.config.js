// Vite: builds the example page into dist/ (served by server.py at /). `npm run dev` serves it with hot reload and
// proxies the relay at RELAY_URL (default http://127.0.0.1:8000), keeping the browser's Host as frontend/ does.
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const relay = process.env.RELAY_URL ?? "http://127.0.0.1:8000";
const toRelay = { target: relay, changeOrigin: false };
// The transport lives with the relay's own page (frontend/src), importable by any app; it imports nothing itself.
const transport = fileURLToPath(new URL("../../frontend/src/socketChatTransport.js", import.meta.url));

export default defineConfig({
  plugins: [react()],
  resolve: { alias: { "chat-relay-socket-transport": transport } },
  server: {
    fs: { allow: [fileURLToPath(new URL("../..", import.meta.url))] },
    proxy: { "/socket.io": { ...toRelay, ws: true }, "/api": toRelay },
  },
});
