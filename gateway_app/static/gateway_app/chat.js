// The chat page's entry module: a browser client of the gateway's JSON-RPC protocol over
// /api/ws. The modules under chat/ are loaded as they are (no build step).

import { ChatApp } from "./chat/app.js";

new ChatApp(document.getElementById("chat")).start();
