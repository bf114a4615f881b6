// The page's one Socket.IO connection, to the origin that served the page (no CORS needed).
import { io } from "socket.io-client";
import { socketAuth } from "./accessToken.js";

// The hook connects on mount and disconnects on unmount, so nothing connects merely by importing this.
// auth is a callback, read at each (re)connection, so a token typed later or a new one is what gets sent.
export const socket = io({ autoConnect: false, auth: (send) => send(socketAuth()) });
