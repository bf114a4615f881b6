// Vite: builds the page into dist/ (served by Flask at /), and in dev proxies the relay so the
// page keeps one origin: Socket.IO (with its websocket upgrade), the HTTP stream and /models.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

const relay = process.env.RELAY_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      "/socket.io": { target: relay, ws: true },
      "/message": relay,
      "/models": relay,
    },
  },
  test: {
    environment: "node",
    include: ["test/**/*.test.js"],
  },
});
