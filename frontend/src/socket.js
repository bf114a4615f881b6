// The page's one Socket.IO connection, to the origin that served the page (no CORS needed).
import { io } from "socket.io-client";

// The hook connects on mount and disconnects on unmount, so nothing connects merely by importing this.
export const socket = io({ autoConnect: false });
